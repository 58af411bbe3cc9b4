import { EVENT_TYPES, type UserEvent } from '../events/user-event.js'
import { epochDayOf, zoneClock } from '../time/zones.js'

/**
 * What every population generator shares: options, the ground-truth label, and the plumbing that
 * turns generated rows into time-ordered event arrays. The generative processes themselves (who
 * logs in when, who leaves and how) are each generator's own code: `archetypes` (simulator.ts),
 * `habits`, `fades`, `cadence` and `bgnbd` (this folder). One model fitted to one of them would
 * not pass the others: that is their purpose (docs/populations.md).
 */
export interface PopulationOptions {
  users: number
  /** days of history written (day 0 … days − 1) */
  days: number
  seed: number
  /** ISO date of day 0, default 2026-01-05 (a Monday) */
  start?: string
  /** about this share of the users seen churns inside the written days (generators that take it) */
  churnRate?: number
  /**
   * Days simulated before day 0 and not written: users who joined before the stream starts, as
   * after a deployment. Generators that take it default to 60.
   */
  prehistoryDays?: number
}

/** Ground truth per user who appears in the data. */
export interface SimLabel {
  userId: string
  /** the generator's name for the user's kind (archetype, segment) */
  archetype: string
  tz: string
  /** left for good, with the last LOGIN inside the written days */
  churned: boolean
  /** epoch ms of the last LOGIN when churned (no LOGIN ever after), else null */
  churnAt: number | null
  lastLoginTs: number | null
}

export interface Population {
  /** yields the written days' events, one array per UTC day, each sorted by ts */
  days: () => Generator<UserEvent[]>
  /** valid after days() is exhausted */
  labels: () => SimLabel[]
  readonly archetypeShares?: Readonly<Record<string, number>>
}

export const DAY_MS = 86_400_000
export const HOUR_MS = 3_600_000

/** Event type codes (indices into EVENT_TYPES) for the row buffers. */
export const T = { LOGIN: 0, FOLLOW: 1, UNFOLLOW: 2, VIEW: 3, POST: 4, INTERACT: 5, PURCHASE: 6, DELIVERED: 7, OPENED: 8 } as const

/** mulberry32 (the simulator's PRNG), with the few distributions the generators draw from. */
export class Rng {
  private a: number
  constructor (seed: number) { this.a = (Math.imul((seed | 0) ^ 0x9e3779b9, 2246822519) + 7) >>> 0 }
  next (): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0
    let t = this.a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  uniform (lo: number, hi: number): number { return lo + (hi - lo) * this.next() }
  int (lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)) }
  chance (p: number): boolean { return this.next() < p }
  normal (): number {
    const u = 1 - this.next()
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next())
  }

  /** Exponential with the given mean. */
  exp (mean: number): number { return -mean * Math.log(1 - this.next()) }
  /** Gamma(shape, 1), Marsaglia–Tsang. */
  gamma (shape: number): number {
    if (shape < 1) return this.gamma(shape + 1) * this.next() ** (1 / shape)
    const d = shape - 1 / 3
    const c = 1 / Math.sqrt(9 * d)
    for (;;) {
      let x: number
      let v: number
      do { x = this.normal(); v = 1 + c * x } while (v <= 0)
      v = v * v * v
      const u = this.next()
      if (u < 1 - 0.0331 * x * x * x * x || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v
    }
  }

  beta (a: number, b: number): number { const x = this.gamma(a); return x / (x + this.gamma(b)) }
  poisson (mean: number): number {
    if (mean <= 0) return 0
    if (mean > 30) return Math.max(0, Math.round(mean + Math.sqrt(mean) * this.normal()))
    const l = Math.exp(-mean)
    let k = 0
    let p = this.next()
    while (p > l) { k++; p *= this.next() }
    return k
  }

  pick<X> (items: readonly X[], weights?: readonly number[]): X {
    if (weights === undefined) return items[Math.floor(this.next() * items.length)]
    let r = this.next() * weights.reduce((a, b) => a + b, 0)
    for (let i = 0; i < items.length; i++) { r -= weights[i]; if (r < 0) return items[i] }
    return items[items.length - 1]
  }
}

/**
 * Generated events as rows in per-UTC-day buffers (ts, user, type, num, duration: five doubles),
 * sorted by time when their day is written. eventIds are `${userId}-${n}` with n the user's
 * event counter in base 36, in written order.
 */
export class EventRows {
  private readonly byDay = new Map<number, { n: number, data: Float64Array }>()
  private readonly seq: Uint32Array
  readonly lastLogin: Float64Array
  readonly firstEvent: Float64Array

  constructor (readonly userIds: readonly string[], readonly zones: readonly string[], readonly from: number, readonly to: number, private readonly targetPrefix = 'c') {
    this.seq = new Uint32Array(userIds.length)
    this.lastLogin = new Float64Array(userIds.length).fill(-1)
    this.firstEvent = new Float64Array(userIds.length).fill(-1)
  }

  /** Adds an event when its time is inside the written span [from, to); returns whether it did. */
  add (ts: number, user: number, type: number, num = 0, durationMs = 0): boolean {
    if (ts < this.from || ts >= this.to) return false
    const day = Math.floor(ts / DAY_MS)
    let b = this.byDay.get(day)
    if (b === undefined) { b = { n: 0, data: new Float64Array(5 * 1024) }; this.byDay.set(day, b) }
    if (5 * (b.n + 1) > b.data.length) { const d = new Float64Array(b.data.length * 2); d.set(b.data); b.data = d }
    const o = 5 * b.n++
    b.data[o] = ts
    b.data[o + 1] = user
    b.data[o + 2] = type
    b.data[o + 3] = num
    b.data[o + 4] = durationMs
    if (type === T.LOGIN && ts > this.lastLogin[user]) this.lastLogin[user] = ts
    if (this.firstEvent[user] < 0 || ts < this.firstEvent[user]) this.firstEvent[user] = ts
    return true
  }

  * days (): Generator<UserEvent[]> {
    const first = Math.floor(this.from / DAY_MS)
    const last = Math.floor((this.to - 1) / DAY_MS)
    for (let day = first; day <= last; day++) {
      const b = this.byDay.get(day)
      this.byDay.delete(day)
      if (b === undefined) { yield []; continue }
      const order = Array.from({ length: b.n }, (_, i) => i)
      const d = b.data
      order.sort((x, y) => d[5 * x] - d[5 * y] || x - y)
      const out: UserEvent[] = new Array(b.n)
      for (let k = 0; k < b.n; k++) {
        const o = 5 * order[k]
        const u = d[o + 1]
        const type = d[o + 2]
        const num = d[o + 3]
        const userId = this.userIds[u]
        const e: UserEvent = {
          eventId: `${userId}-${(this.seq[u]++).toString(36)}`,
          userId,
          type: EVENT_TYPES[type],
          ts: Math.round(d[o]),
          tz: this.zones[u],
          targetId: null,
          durationMs: null,
          amount: null,
          channel: null,
          taskId: null
        }
        if (type === T.FOLLOW || type === T.UNFOLLOW) e.targetId = `${this.targetPrefix}${num}`
        else if (type === T.VIEW || type === T.INTERACT || type === T.POST) e.targetId = `v${num}`
        if (type === T.VIEW) e.durationMs = d[o + 4]
        if (type === T.PURCHASE) e.amount = num
        if (type === T.DELIVERED || type === T.OPENED) e.channel = 'PUSH'
        out[k] = e
      }
      yield out
    }
  }
}

/** The written span [from, to) of a population: day 0's UTC midnight minus the zones' lead … */
export function writtenSpan (opts: PopulationOptions): { day0: number, from: number, to: number } {
  const day0 = epochDayOf(opts.start ?? '2026-01-05')
  return { day0, from: day0 * DAY_MS - 14 * HOUR_MS, to: (day0 + opts.days) * DAY_MS + 14 * HOUR_MS }
}

/** The instant of a local time (day as epoch-day, hour as a fraction of 24) in a zone. */
export function localInstant (zone: string, day: number, hour: number): number {
  return zoneClock(zone).startOfDay(day) + hour * HOUR_MS
}

/** User ids `${prefix}000001`…, zero-padded so that they sort like their numbers. */
export function userIds (prefix: string, n: number): string[] {
  const w = Math.max(6, String(n).length)
  return Array.from({ length: n }, (_, u) => prefix + String(u + 1).padStart(w, '0'))
}

/** Labels of the users who appear in the written data, from the generator's truth per user. */
export function labelsOf (rows: EventRows, archetype: (u: number) => string, leftAt: (u: number) => number, writtenEnd: number): SimLabel[] {
  const out: SimLabel[] = []
  for (let u = 0; u < rows.userIds.length; u++) {
    if (rows.firstEvent[u] < 0) continue
    const last = rows.lastLogin[u] < 0 ? null : rows.lastLogin[u]
    const churned = last !== null && leftAt(u) < writtenEnd
    out.push({ userId: rows.userIds[u], archetype: archetype(u), tz: rows.zones[u], churned, churnAt: churned ? Math.round(last) : null, lastLoginTs: last === null ? null : Math.round(last) })
  }
  return out
}

/** Checks the options every generator takes. */
export function checkOptions (name: string, o: PopulationOptions): void {
  if (!Number.isInteger(o.users) || o.users < 0 || o.users > 10_000_000) throw new RangeError(`${name}: users must be an integer 0..10000000, got ${o.users}`)
  if (!Number.isInteger(o.days) || o.days < 1 || o.days > 3650) throw new RangeError(`${name}: days must be an integer 1..3650, got ${o.days}`)
  if (o.churnRate !== undefined && !(o.churnRate > 0 && o.churnRate < 1)) throw new RangeError(`${name}: churnRate must be in (0, 1), got ${o.churnRate}`)
  if (o.prehistoryDays !== undefined && !(Number.isInteger(o.prehistoryDays) && o.prehistoryDays >= 0 && o.prehistoryDays <= 3650)) throw new RangeError(`${name}: prehistoryDays must be an integer 0..3650`)
}
