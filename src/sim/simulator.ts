import type { EventTypeName, UserEvent } from '../events/user-event.js'
import { epochDayOf, type ZoneClock, zoneClock } from '../time/zones.js'

/**
 * A synthetic population with ground truth, for the demo, tests and benchmarks.
 *
 * Archetypes (share of users) — what their days look like:
 *   steady          45%  logs in on most days (fewer on weekends), 3–15 views a day, some
 *                        interactions, occasional posts, follows and purchases
 *   weekender       10%  mostly active on local Saturdays and Sundays
 *   gradual_decline 15%  from a random day, views fall first and logins follow over 1–4
 *                        weeks, then nothing: churns
 *   unfollow_burst   8%  follows 6–20 creators in the first week; on a random day unfollows
 *                        more than half of them within two days, views drop, then leaves: churns
 *   abrupt_stop     10%  normal until a random day, then nothing, with no warning: churns
 *   returner         7%  silent for 8–20 days, then back as before: does not churn
 *   new_user         5%  joins after day 0; 60% stay, 40% leave within 1–3 weeks (churn)
 * Everyone skips days at random. Users live in seven zones (Asia/Shanghai most), and every event
 * carries the user's zone. Some users get push messages and open some; some revoke SMS consent.
 *
 * The stream is in event-time order (by UTC day, each day sorted), as a broker partition would
 * deliver it. With `noise`, about 0.2% of events are repeated (same eventId) a few seconds later
 * and 0.1% arrive 2–3 days late. Memory is O(users) plus one day of events.
 */
export type Archetype = 'steady' | 'weekender' | 'gradual_decline' | 'unfollow_burst' | 'abrupt_stop' | 'returner' | 'new_user'

export interface SimOptions { users: number, days: number, seed: number, start?: string, noise?: boolean }

export interface SimLabel {
  userId: string
  archetype: Archetype
  tz: string
  churned: boolean
  /** the user's last LOGIN before they left, when they churn */
  churnAt: number | null
  lastLoginTs: number | null
}

const ARCHETYPES: readonly Archetype[] = ['steady', 'weekender', 'gradual_decline', 'unfollow_burst', 'abrupt_stop', 'returner', 'new_user']
const SHARES: Readonly<Record<Archetype, number>> = { steady: 0.45, weekender: 0.10, gradual_decline: 0.15, unfollow_burst: 0.08, abrupt_stop: 0.10, returner: 0.07, new_user: 0.05 }
const ZONES: ReadonlyArray<readonly [string, number]> = [
  ['Asia/Shanghai', 0.55], ['America/New_York', 0.10], ['Europe/London', 0.08], ['Europe/Berlin', 0.08],
  ['Asia/Tokyo', 0.08], ['America/Los_Angeles', 0.06], ['Australia/Sydney', 0.05]
]
const DAY_MS = 86_400_000
const HOUR_MS = 3_600_000

/** mulberry32: small, fast, good enough for simulation; never Math.random. */
function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export class Simulator {
  readonly archetypeShares = SHARES
  private readonly rnd: () => number
  private readonly n: number
  private readonly dayCount: number
  private readonly noise: boolean
  private readonly firstDay: number
  private readonly ids: string[]
  private readonly archetype: Uint8Array
  private readonly zone: Uint8Array
  private readonly clocks: ZoneClock[]
  private readonly hour: Uint8Array
  private readonly activity: Float32Array
  private readonly views: Float32Array
  private readonly changeDay: Int32Array
  private readonly span: Int32Array
  private readonly leaves: Uint8Array
  private readonly follows: Uint16Array
  private readonly pushes: Uint8Array
  private readonly spender: Float32Array
  private readonly seq: Uint32Array
  private readonly lastLogin: Float64Array
  private readonly stoppedAfter: Float64Array
  private done = false

  constructor (opts: SimOptions) {
    this.n = opts.users
    this.dayCount = opts.days
    this.noise = opts.noise === true
    this.rnd = prng(opts.seed * 2654435761 + 1)
    this.firstDay = epochDayOf(opts.start ?? '2026-01-05')
    const n = this.n
    const width = Math.max(6, String(n).length)
    this.ids = new Array<string>(n)
    this.archetype = new Uint8Array(n)
    this.zone = new Uint8Array(n)
    this.clocks = ZONES.map(([z]) => zoneClock(z))
    this.hour = new Uint8Array(n)
    this.activity = new Float32Array(n)
    this.views = new Float32Array(n)
    this.changeDay = new Int32Array(n)
    this.span = new Int32Array(n)
    this.leaves = new Uint8Array(n)
    this.follows = new Uint16Array(n)
    this.pushes = new Uint8Array(n)
    this.spender = new Float32Array(n)
    this.seq = new Uint32Array(n)
    this.lastLogin = new Float64Array(n).fill(-1)
    this.stoppedAfter = new Float64Array(n).fill(-1)
    const r = this.rnd
    const D = this.dayCount
    for (let u = 0; u < n; u++) {
      this.ids[u] = 'u' + String(u + 1).padStart(width, '0')
      this.archetype[u] = pick(r(), ARCHETYPES.map((a) => SHARES[a]))
      this.zone[u] = pick(r(), ZONES.map(([, w]) => w))
      this.hour[u] = 7 + Math.floor(r() * 15)
      this.activity[u] = 0.6 + r() * 0.35
      this.views[u] = 3 + r() * 12
      // The day something changes: late enough that the baseline windows have filled.
      this.changeDay[u] = Math.floor(D * 0.35 + r() * D * 0.5)
      this.span[u] = 7 + Math.floor(r() * 21)
      this.pushes[u] = r() < 0.35 ? 1 : 0
      this.spender[u] = r() < 0.15 ? 20 + r() * 80 : 0
      const a = ARCHETYPES[this.archetype[u]]
      if (a === 'returner') this.span[u] = 8 + Math.floor(r() * 13)
      if (a === 'new_user') { this.changeDay[u] = 1 + Math.floor(r() * D * 0.6); this.leaves[u] = r() < 0.4 ? 1 : 0; this.span[u] = 7 + Math.floor(r() * 14) }
      if (a === 'unfollow_burst') this.follows[u] = 6 + Math.floor(r() * 15)
    }
  }

  /** Activity multiplier of user u on simulated day d (0 = gone), and the views multiplier. */
  private level (u: number, d: number, dow: number): [number, number] {
    const weekend = dow >= 5
    const c = this.changeDay[u]
    switch (ARCHETYPES[this.archetype[u]]) {
      case 'steady': return [weekend ? 0.8 : 1, 1]
      case 'weekender': return [weekend ? 1.2 : 0.12, 1]
      case 'gradual_decline': {
        if (d < c) return [weekend ? 0.85 : 1, 1]
        const k = (d - c) / this.span[u]
        if (k >= 1) return [0, 0]
        return [1 - k * 0.8, Math.max(0, 1 - k * 2)] // views fall twice as fast as logins
      }
      case 'unfollow_burst': {
        if (d < c) return [weekend ? 0.85 : 1, 1]
        if (d < c + 5) return [0.7, 0.3]
        return [0, 0]
      }
      case 'abrupt_stop': return d < c ? [weekend ? 0.85 : 1, 1] : [0, 0]
      case 'returner': return d >= c && d < c + this.span[u] ? [0, 0] : [weekend ? 0.85 : 1, 1]
      case 'new_user': {
        if (d < c) return [0, 0]
        if (this.leaves[u] === 1 && d >= c + this.span[u]) return [0, 0]
        return [1, 1]
      }
    }
  }

  * days (): Generator<UserEvent[]> {
    if (this.done) throw new Error('Simulator.days() runs once')
    const r = this.rnd
    // UTC-day buckets: a local day touches at most the UTC days before and after it.
    const buckets = new Map<number, UserEvent[]>()
    let nextToEmit = this.firstDay - 1
    const late: UserEvent[] = []
    for (let d = 0; d < this.dayCount; d++) {
      const day = this.firstDay + d
      const dow = (day + 3) % 7 // 1970-01-01 was a Thursday; Monday = 0
      for (let u = 0; u < this.n; u++) this.userDay(u, d, day, dow, r, buckets, late)
      // Every event of UTC day (day − 1) is known once local day `day` is generated.
      while (nextToEmit <= day - 1) {
        const out = buckets.get(nextToEmit) ?? []
        buckets.delete(nextToEmit)
        out.sort(byTs)
        if (late.length > 0) { out.push(...late.filter((e) => e.ts < (nextToEmit + 1) * DAY_MS)); removeEmitted(late, (nextToEmit + 1) * DAY_MS) }
        nextToEmit++
        yield out
      }
    }
    const rest = [...buckets.keys()].sort((a, b) => a - b)
    for (const k of rest) {
      const out = (buckets.get(k) ?? []).sort(byTs)
      yield out
    }
    this.done = true
  }

  private userDay (u: number, d: number, day: number, dow: number, r: () => number, buckets: Map<number, UserEvent[]>, late: UserEvent[]): void {
    const [act, viewLevel] = this.level(u, d, dow)
    const clock = this.clocks[this.zone[u]]
    const midnight = clock.startOfDay(day)
    const a = ARCHETYPES[this.archetype[u]]
    const emit = (type: EventTypeName, ms: number, extra?: Partial<UserEvent>): void => {
      const ts = midnight + Math.floor(Math.min(Math.max(ms, 0), DAY_MS - 1))
      const e: UserEvent = {
        eventId: `${this.ids[u]}-${(this.seq[u]++).toString(36)}`,
        userId: this.ids[u],
        type,
        ts,
        tz: clock.id,
        targetId: extra?.targetId ?? null,
        durationMs: extra?.durationMs ?? null,
        amount: extra?.amount ?? null,
        channel: extra?.channel ?? null,
        taskId: null
      }
      push(buckets, e)
      if (this.noise) {
        const x = r()
        if (x < 0.002) push(buckets, { ...e, ts: e.ts + 1000 + Math.floor(r() * 20_000) })
        else if (x < 0.003) late.push({ ...e, eventId: e.eventId + 'L', ts: e.ts - 2 * DAY_MS - Math.floor(r() * DAY_MS) })
      }
      if (type === 'LOGIN' && ts > this.lastLogin[u]) this.lastLogin[u] = ts
    }
    // Messages arrive whether or not the user is active; they open them when active.
    if (this.pushes[u] === 1 && r() < 0.3) {
      const at = (this.hour[u] - 1) * HOUR_MS
      emit('MESSAGE_DELIVERED', at, { channel: 'PUSH' })
      if (act > 0 && r() < 0.35) emit('MESSAGE_OPENED', at + 20 * 60_000, { channel: 'PUSH' })
    }
    if (act === 0) return
    if (r() >= this.activity[u] * Math.min(1, act)) return
    const h = this.hour[u]
    let t = (h + (r() - 0.5) * 3) * HOUR_MS
    emit('LOGIN', t)
    if (d === 0 || (a === 'new_user' && d === this.changeDay[u])) {
      // Someone new to Ebb already follows a few creators.
      const k = a === 'unfollow_burst' ? this.follows[u] : 2 + Math.floor(r() * 8)
      for (let i = 0; i < k; i++) emit('FOLLOW', t + (i + 1) * 60_000, { targetId: `c${Math.floor(r() * 5000)}` })
    }
    const nViews = Math.round(this.views[u] * viewLevel * (0.5 + r()))
    for (let i = 0; i < nViews; i++) {
      t += 60_000 + Math.floor(r() * 20 * 60_000)
      emit('VIEW', t, { targetId: `v${Math.floor(r() * 100_000)}`, durationMs: 5_000 + Math.floor(r() * 120_000) })
      if (r() < 0.3) emit('INTERACT', t + 30_000, { targetId: `v${Math.floor(r() * 100_000)}` })
    }
    if (r() < 0.08 * viewLevel) emit('POST', t + 5 * 60_000, { targetId: `p${Math.floor(r() * 100_000)}` })
    if (r() < 0.04) emit('FOLLOW', t + 6 * 60_000, { targetId: `c${Math.floor(r() * 5000)}` })
    if (a === 'unfollow_burst' && d >= this.changeDay[u] && d < this.changeDay[u] + 2) {
      // More than half of the creators followed, in two days.
      const k = Math.ceil(this.follows[u] * 0.35)
      for (let i = 0; i < k; i++) emit('UNFOLLOW', t + (i + 7) * 60_000, { targetId: `c${i}` })
    } else if (r() < 0.02) {
      emit('UNFOLLOW', t + 7 * 60_000, { targetId: `c${Math.floor(r() * 5000)}` })
    }
    if (this.spender[u] > 0 && r() < 0.08) emit('PURCHASE', t + 8 * 60_000, { amount: Math.round(this.spender[u] * (0.5 + r()) * 100) / 100 })
    if (r() < 0.0015) emit('CONSENT_REVOKED', t + 9 * 60_000, { channel: 'SMS' })
    this.stoppedAfter[u] = day
  }

  /** Ground truth, valid once days() is exhausted. */
  labels (): SimLabel[] {
    const out: SimLabel[] = []
    const end = this.firstDay + this.dayCount
    for (let u = 0; u < this.n; u++) {
      const a = ARCHETYPES[this.archetype[u]]
      const last = this.lastLogin[u] >= 0 ? this.lastLogin[u] : null
      const leaves = a === 'gradual_decline' || a === 'unfollow_burst' || a === 'abrupt_stop' || (a === 'new_user' && this.leaves[u] === 1)
      // Churned: left for good and the simulation saw them leave (their last login is before the end).
      const churned = leaves && last !== null && this.stoppedAfter[u] < end - 1
      out.push({ userId: this.ids[u], archetype: a, tz: this.clocks[this.zone[u]].id, churned, churnAt: churned ? last : null, lastLoginTs: last })
    }
    return out
  }
}

function pick (x: number, weights: readonly number[]): number {
  let acc = 0
  for (let i = 0; i < weights.length; i++) { acc += weights[i]; if (x < acc) return i }
  return weights.length - 1
}

function push (buckets: Map<number, UserEvent[]>, e: UserEvent): void {
  const k = Math.floor(e.ts / DAY_MS) // UTC day: a bucket key, not the user's day
  let b = buckets.get(k)
  if (b === undefined) { b = []; buckets.set(k, b) }
  b.push(e)
}

function byTs (a: UserEvent, b: UserEvent): number { return a.ts - b.ts }

function removeEmitted (late: UserEvent[], before: number): void {
  let w = 0
  for (const e of late) if (e.ts >= before) late[w++] = e
  late.length = w
}
