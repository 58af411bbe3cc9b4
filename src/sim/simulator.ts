import { EVENT_TYPES, type UserEvent } from '../events/user-event.js'
import { epochDayOf, zoneClock } from '../time/zones.js'

/**
 * A synthetic population with ground truth, for `ebb simulate`, the demo, tests and benchmarks.
 *
 * Archetypes (share of users, `Simulator.archetypeShares`) and what their days look like:
 *
 *   steady          42%  logs in on most days (each user has a base probability 0.6–0.95 and
 *                        a weekend multiplier 0.75–1.2), 3–15 views a day, interactions on some
 *                        views, occasional posts, rare follows and unfollows, purchases for the
 *                        spenders; 8% of them take one short break of 3–6 days. Never churns.
 *   weekender       10%  active on most local Saturdays and Sundays, rarely on weekdays.
 *   gradual_decline 15%  from a random day (after the first quarter), views fall first (−60%
 *                        within about 40% of the decline) and logins follow, over 10–28 days,
 *                        then nothing: churns.
 *   unfollow_burst   8%  follows 6–20 creators in their first active days; from a random day
 *                        (≥ day 12) views drop, and within 1–3 days (logging in each of them) they
 *                        unfollow 60–90% of the creators they follow, linger 3–10 days at a
 *                        quarter of their viewing, then leave: churns.
 *   abrupt_stop     10%  normal until a random day, then nothing at all, with no warning: churns.
 *   returner         6%  silent for 8–20 days from a random day, then back as before: does not
 *                        churn.
 *   recalled         4%  silent for 6–14 days from a random day; on the last of them a push
 *                        message arrives (MESSAGE_DELIVERED), they open it (MESSAGE_OPENED), log
 *                        in and are back as before: a return after a recall. Does not churn.
 *   new_user         5%  joins after day 0 (first event on a random day in the first 70%);
 *                        55% stay, 45% fade out and leave after 3–21 days (those churn).
 *
 * Holidays: on the public holidays of the user's region (mainland China for Asia/Shanghai, Japan
 * for Asia/Tokyo, a Western calendar for the rest; `HOLIDAYS`), every user's chance of being
 * active is multiplied by their holiday factor (0.3–1.3: most are away, a few have more time).
 *
 * Every user skips days at random and has a preferred local hour (morning, noon, afternoon or
 * evening, 7:00–22:00; sessions start within ±1.5 h of it, a quarter of the active days have a
 * second session). Users live in seven zones (Asia/Shanghai 55%, America/New_York 10%,
 * Europe/London 8%, Europe/Berlin 8%, Asia/Tokyo 7%, America/Los_Angeles 7%, Australia/Sydney 5%);
 * local times are converted to instants with zones.ts, and every event carries the user's zone.
 * 40% of users receive PUSH messages (MESSAGE_DELIVERED on a quarter of the days, whether or not
 * they are active) and open some (MESSAGE_OPENED, which then starts their session); 3% revoke
 * SMS consent (CONSENT_REVOKED, channel SMS) on some day. 15% of users buy now and then (PURCHASE,
 * a few currency units to a few hundred) and 3% are big spenders, most of whom pass 500 within
 * 60 days. FOLLOW/UNFOLLOW carry a creator id (`c…`; a user only unfollows creators they follow,
 * oldest first), VIEW/INTERACT a content id (`v…`, an INTERACT is on the content just viewed),
 * POST the id of the new post; VIEW carries durationMs. About 7 events per user-day on average.
 *
 * Ground truth (`labels()`): `churned` for the users who leave for good (gradual_decline,
 * unfollow_burst, abrupt_stop, leaving new_user) and whose leaving happened inside the simulated
 * days; `churnAt` is then the ts of their last LOGIN: they never log in again, in particular not
 * within 30 days. No other user has a gap of 30 days (returners are back within 20).
 *
 * Output: `days()` yields one array per simulated day d = UTC day start + d, holding that UTC
 * day's events sorted by ts (ties in generation order, so a duplicate follows its original). The
 * first array also holds the events before day 0's UTC midnight (the morning of day 0 in zones
 * east of UTC), the last one the events after the last day's UTC midnight (the evening of the
 * last day west of UTC). Events are generated one local day at a time for all users into
 * compact row buffers (32 bytes an event) of the three UTC days a local day touches, and turned into UserEvent objects
 * only when their UTC day is complete: memory is O(users) plus about two days of events.
 *
 * Noise (`noise: true`): about 0.2% of events are delivered twice (the identical record, same
 * eventId, right after the original), and about 0.1% (never a LOGIN, so the labels stay what
 * the engine can see) are held back and delivered at the end of the array of the UTC day that
 * ends 2–3 days after their ts, out of order: with the default 1-day grace they are `late`.
 *
 * Deterministic: the same options give the same events, byte for byte (one mulberry32 stream;
 * no Math.random, no clock). eventIds are `${userId}-${n}` with n the user's event counter in
 * base 36.
 */
export type Archetype = 'steady' | 'weekender' | 'gradual_decline' | 'unfollow_burst' | 'abrupt_stop' | 'returner' | 'recalled' | 'new_user'

export interface SimOptions {
  users: number
  days: number
  seed: number
  /** ISO date of day 0 (local date in every zone), default '2026-01-05' (a Monday) */
  start?: string
  /** duplicates and late events, default false */
  noise?: boolean
}

export interface SimLabel {
  userId: string
  archetype: Archetype
  tz: string
  churned: boolean
  /** epoch ms of the user's last LOGIN when they churn (no LOGIN in the following 30 days, or never again), else null */
  churnAt: number | null
  lastLoginTs: number | null
}

const ARCHETYPES: readonly Archetype[] = ['steady', 'weekender', 'gradual_decline', 'unfollow_burst', 'abrupt_stop', 'returner', 'new_user', 'recalled']
const SHARES: Readonly<Record<Archetype, number>> = Object.freeze({
  steady: 0.42, weekender: 0.10, gradual_decline: 0.15, unfollow_burst: 0.08, abrupt_stop: 0.10, returner: 0.06, new_user: 0.05, recalled: 0.04
})
const A_STEADY = 0
const A_WEEKENDER = 1
const A_GRADUAL = 2
const A_UNFOLLOW = 3
const A_ABRUPT = 4
const A_RETURNER = 5
const A_NEW = 6
const A_RECALLED = 7

/** Public holidays (local dates) by region; zones map to a region in ZONE_REGION. */
const HOLIDAYS: Readonly<Record<string, readonly string[]>> = {
  CN: ['2026-01-01', '2026-01-02', '2026-01-03', '2026-02-15', '2026-02-16', '2026-02-17', '2026-02-18', '2026-02-19', '2026-02-20', '2026-02-21', '2026-02-22', '2026-02-23',
    '2026-04-04', '2026-04-05', '2026-04-06', '2026-05-01', '2026-05-02', '2026-05-03', '2026-05-04', '2026-05-05', '2026-06-19', '2026-06-20', '2026-06-21',
    '2026-09-25', '2026-09-26', '2026-09-27', '2026-10-01', '2026-10-02', '2026-10-03', '2026-10-04', '2026-10-05', '2026-10-06', '2026-10-07'],
  JP: ['2026-01-01', '2026-01-02', '2026-01-03', '2026-01-12', '2026-02-11', '2026-02-23', '2026-03-20', '2026-04-29', '2026-05-03', '2026-05-04', '2026-05-05', '2026-05-06',
    '2026-07-20', '2026-08-11', '2026-08-13', '2026-08-14', '2026-08-15', '2026-09-21', '2026-09-22', '2026-09-23', '2026-10-12', '2026-11-03', '2026-11-23', '2026-12-30', '2026-12-31'],
  WEST: ['2026-01-01', '2026-04-03', '2026-04-05', '2026-04-06', '2026-05-25', '2026-07-04', '2026-08-31', '2026-09-07', '2026-11-26', '2026-11-27',
    '2026-12-24', '2026-12-25', '2026-12-26', '2026-12-31']
}

const ZONES: readonly string[] = ['Asia/Shanghai', 'America/New_York', 'Europe/London', 'Europe/Berlin', 'Asia/Tokyo', 'America/Los_Angeles', 'Australia/Sydney']
const ZONE_SHARES: readonly number[] = [0.55, 0.10, 0.08, 0.08, 0.07, 0.07, 0.05]
const ZONE_REGION: readonly string[] = ['CN', 'WEST', 'WEST', 'WEST', 'JP', 'WEST', 'WEST']

// Event type codes: indices into EVENT_TYPES.
const LOGIN = 0
const FOLLOW = 1
const UNFOLLOW = 2
const VIEW = 3
const POST = 4
const INTERACT = 5
const PURCHASE = 6
const DELIVERED = 7
const OPENED = 8
const REVOKED = 10

const DAY_MS = 86_400_000
const HOUR_MS = 3_600_000
const MIN_MS = 60_000
const NEVER = -1

const DUP_RATE = 0.002
const LATE_RATE = 0.0011 // of all events; LOGINs are never held back, so about 0.1% overall
/** Creator ids: user u's j-th follow is creator (base + j·STRIDE) mod CREATORS, distinct for j < CREATORS. */
const CREATORS = 20_011
const STRIDE = 7_919
const CONTENT = 200_000
const SEQ_SPAN = 134_217_728 // 2^27: user·2^27 + seq is exact in a double for users < 2^26
const TYPE_SPAN = 4_294_967_296 // 2^32
const MAX_USERS = 67_108_864 // 2^26
/** within-minute sort key = ms into the minute · 2^32 + position in the minute */
const POS_SPAN = 4_294_967_296

/** mulberry32: small, fast and good enough for a simulation (and for tests' synthetic sets). */
export function mulberry32 (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * One UTC day of generated events as rows of four doubles: ts, num (content/creator number or
 * the PURCHASE amount), user·2^27 + seq, type·2^32 + durationMs. A row is 32 bytes, so the
 * sort moves whole rows with one memory access each; rows become UserEvent objects only when
 * their UTC day is complete.
 */
class Rows {
  n = 0
  data: Float64Array
  utcDay = 0

  constructor (cap: number) {
    this.data = new Float64Array(cap * 4)
  }

  push (ts: number, num: number, userSeq: number, typeDur: number): void {
    let o = this.n * 4
    if (o === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2)
      bigger.set(this.data)
      this.data = bigger
    }
    const d = this.data
    d[o++] = ts
    d[o++] = num
    d[o++] = userSeq
    d[o] = typeDur
    this.n++
  }
}

export class Simulator {
  /** The share of each archetype in the population (users are assigned at random with these weights). */
  readonly archetypeShares: Readonly<Record<Archetype, number>> = SHARES

  private readonly rnd: () => number
  private readonly n: number
  private readonly dayCount: number
  private readonly noise: boolean
  private readonly firstDay: number
  private readonly ids: string[]
  /** `${userId}-`, the eventId prefix */
  private readonly idPrefix: string[]
  // Per-user parameters and state, one typed array each: O(users) memory, no per-user objects.
  private readonly arch: Uint8Array
  private readonly zone: Uint8Array
  private readonly hour: Uint8Array
  private readonly pAct: Float32Array
  private readonly wkMul: Float32Array
  private readonly views: Float32Array
  private readonly interact: Float32Array
  private readonly post: Float32Array
  private readonly buyRate: Float32Array
  private readonly buyMean: Float32Array
  private readonly pushRate: Float32Array
  private readonly openRate: Float32Array
  /** the factor on the chance of an active day on a holiday of the user's region */
  private readonly holMul: Float32Array
  /** per zone: the holidays of its region, as local epoch days */
  private readonly zoneHolidays: Array<Set<number>>
  /** per zone: whether the local day being generated is a holiday there */
  private readonly zoneHoliday: Uint8Array
  private readonly revokeDay: Int16Array
  /** the day something changes (decline, burst, stop, silence, join, steady break), NEVER for none */
  private readonly change: Int16Array
  /** the length of the change (decline, linger after a burst, silence, stay of a leaving new user, break) */
  private readonly span: Int16Array
  /** unfollow_burst: burst days; new_user: 1 when they leave */
  private readonly aux: Uint8Array
  /** creators to follow in the first active days */
  private readonly follow0: Uint8Array
  /** unfollow_burst: creators unfollowed in the burst */
  private readonly burstUnfollows: Uint8Array
  private readonly creatorBase: Uint16Array
  private readonly followed: Uint16Array
  private readonly unfollowed: Uint16Array
  private readonly seq: Uint32Array
  private readonly lastLogin: Float64Array

  // The user and local day being generated.
  private curU = 0
  private curMid = 0
  private curLen = DAY_MS
  private curLocalDay = 0
  private readonly zoneMid: Float64Array
  private readonly zoneLen: Float64Array
  /** the UTC days curLocalDay − 1, curLocalDay, curLocalDay + 1 */
  private readonly open = new Map<number, Rows>()
  private readonly slots: Rows[] = []
  private readonly pool: Rows[] = []
  private keys = new Float64Array(1024)
  private scratch = new Float64Array(4096)
  private readonly minuteStarts = new Int32Array(1441)
  private readonly minuteNext = new Int32Array(1440)
  /** held-back (late) events by the UTC day at whose end they are delivered */
  private readonly late = new Map<number, UserEvent[]>()
  private started = false
  private finished = false

  constructor (opts: SimOptions) {
    if (!Number.isInteger(opts.users) || opts.users < 0 || opts.users > MAX_USERS) throw new RangeError(`Simulator: users must be an integer 0..${MAX_USERS}, got ${opts.users}`)
    if (!Number.isInteger(opts.days) || opts.days < 0 || opts.days > 30_000) throw new RangeError(`Simulator: days must be an integer 0..30000, got ${opts.days}`)
    this.n = opts.users
    this.dayCount = opts.days
    const n = this.n
    const D = this.dayCount
    this.noise = opts.noise === true
    this.firstDay = epochDayOf(opts.start ?? '2026-01-05')
    this.rnd = mulberry32(Math.imul((opts.seed | 0) ^ 0x5eed, 2654435761) + 1)
    const r = this.rnd
    const width = Math.max(6, String(n).length)
    this.ids = new Array<string>(n)
    this.idPrefix = new Array<string>(n)
    this.arch = new Uint8Array(n)
    this.zone = new Uint8Array(n)
    this.hour = new Uint8Array(n)
    this.pAct = new Float32Array(n)
    this.wkMul = new Float32Array(n)
    this.views = new Float32Array(n)
    this.interact = new Float32Array(n)
    this.post = new Float32Array(n)
    this.buyRate = new Float32Array(n)
    this.buyMean = new Float32Array(n)
    this.pushRate = new Float32Array(n)
    this.openRate = new Float32Array(n)
    this.holMul = new Float32Array(n)
    this.zoneHolidays = ZONES.map((_z, i) => new Set(HOLIDAYS[ZONE_REGION[i]].map(epochDayOf)))
    this.zoneHoliday = new Uint8Array(ZONES.length)
    this.revokeDay = new Int16Array(n)
    this.change = new Int16Array(n)
    this.span = new Int16Array(n)
    this.aux = new Uint8Array(n)
    this.follow0 = new Uint8Array(n)
    this.burstUnfollows = new Uint8Array(n)
    this.creatorBase = new Uint16Array(n)
    this.followed = new Uint16Array(n)
    this.unfollowed = new Uint16Array(n)
    this.seq = new Uint32Array(n)
    this.lastLogin = new Float64Array(n).fill(NEVER)
    this.zoneMid = new Float64Array(ZONES.length)
    this.zoneLen = new Float64Array(ZONES.length)
    for (const z of ZONES) zoneClock(z)

    const archWeights = ARCHETYPES.map((a) => SHARES[a])
    const int = (lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1))
    /** a change day in [lo, hi], or lo when the simulation is too short for the range */
    const dayIn = (lo: number, hi: number): number => hi <= lo ? lo : int(lo, hi)
    for (let u = 0; u < n; u++) {
      this.ids[u] = 'u' + String(u + 1).padStart(width, '0')
      this.idPrefix[u] = this.ids[u] + '-'
      const a = pick(r(), archWeights)
      this.arch[u] = a
      this.zone[u] = pick(r(), ZONE_SHARES)
      const h = r()
      this.hour[u] = h < 0.15 ? int(7, 9) : h < 0.35 ? int(11, 13) : h < 0.45 ? int(15, 17) : int(18, 22)
      this.pAct[u] = 0.6 + r() * 0.35
      this.wkMul[u] = 0.75 + r() * 0.45
      this.views[u] = 3 + r() * 12
      this.interact[u] = 0.05 + r() * 0.3
      this.post[u] = r() < 0.3 ? 0.05 + r() * 0.25 : r() * 0.03
      const spend = r()
      if (spend < 0.03) { this.buyRate[u] = 0.12 + r() * 0.15; this.buyMean[u] = 50 + r() * 100 } else if (spend < 0.18) { this.buyRate[u] = 0.03 + r() * 0.07; this.buyMean[u] = 5 + r() * 35 }
      if (r() < 0.4) { this.pushRate[u] = 0.15 + r() * 0.2; this.openRate[u] = r() * 0.5 }
      this.revokeDay[u] = r() < 0.03 ? int(0, Math.max(0, D - 1)) : NEVER
      this.holMul[u] = r() < 0.15 ? 1 + r() * 0.3 : 0.3 + r() * 0.5
      this.creatorBase[u] = Math.floor(r() * CREATORS)
      this.follow0[u] = int(0, 8)
      this.change[u] = NEVER
      switch (a) {
        case A_STEADY:
          if (r() < 0.08) { this.span[u] = int(3, 6); this.change[u] = dayIn(3, D - 1 - this.span[u]) }
          break
        case A_GRADUAL:
          this.span[u] = int(10, 28)
          this.change[u] = dayIn(Math.max(7, Math.floor(D * 0.25)), D - 2 - this.span[u])
          break
        case A_UNFOLLOW: {
          const f = int(6, 20)
          this.follow0[u] = f
          this.burstUnfollows[u] = Math.ceil(f * (0.6 + r() * 0.3))
          this.aux[u] = int(1, 3)
          this.span[u] = int(3, 10)
          this.change[u] = dayIn(Math.max(12, Math.floor(D * 0.25)), D - 2 - this.aux[u] - this.span[u])
          break
        }
        case A_ABRUPT:
          this.change[u] = dayIn(Math.max(7, Math.floor(D * 0.2)), Math.floor(D * 0.85))
          break
        case A_RETURNER:
          this.span[u] = int(8, 20)
          this.change[u] = dayIn(Math.max(5, Math.floor(D * 0.15)), D - 3 - this.span[u])
          break
        case A_RECALLED:
          this.span[u] = int(6, 14)
          this.change[u] = dayIn(Math.max(5, Math.floor(D * 0.15)), D - 3 - this.span[u])
          break
        case A_NEW:
          this.change[u] = dayIn(1, Math.max(1, Math.floor(D * 0.7)))
          this.follow0[u] = int(3, 10)
          this.pAct[u] = 0.65 + r() * 0.3
          if (r() < 0.45) { this.aux[u] = 1; this.span[u] = int(3, 21) }
          if (this.revokeDay[u] !== NEVER && this.revokeDay[u] < this.change[u]) this.revokeDay[u] = this.change[u]
          break
      }
    }
  }

  /** Generates day by day: each yielded array holds one simulated UTC day's events sorted by ts (stable tie order). */
  * days (): Generator<UserEvent[]> {
    if (this.started) throw new Error('Simulator.days() can run once; make a new Simulator with the same options for the same events')
    this.started = true
    const D = this.dayCount
    for (let d = 0; d < D; d++) {
      const day = this.firstDay + d
      this.generateDay(d, day)
      // UTC day `day − 1` is complete: no local day after `day` reaches back into it.
      if (d >= 1) yield this.emit(d === 1 ? [day - 2, day - 1] : [day - 1], false)
    }
    if (D >= 1) {
      const last = this.firstDay + D - 1
      yield this.emit(D === 1 ? [last - 1, last, last + 1] : [last, last + 1], true)
    }
    this.finished = true
  }

  /** Ground truth, valid after days() is exhausted. */
  labels (): SimLabel[] {
    if (!this.finished) throw new Error('Simulator.labels() is the ground truth of a finished run: exhaust days() first')
    const out: SimLabel[] = new Array(this.n)
    const D = this.dayCount
    for (let u = 0; u < this.n; u++) {
      const last = this.lastLogin[u] === NEVER ? null : this.lastLogin[u]
      const exit = this.exitDay(u)
      // Left for good, inside the simulated days: the last login seen is the last one ever.
      const churned = last !== null && exit <= D
      out[u] = { userId: this.ids[u], archetype: ARCHETYPES[this.arch[u]], tz: ZONES[this.zone[u]], churned, churnAt: churned ? last : null, lastLoginTs: last }
    }
    return out
  }

  /** The first simulated day from which user u is gone for good, or Infinity. */
  private exitDay (u: number): number {
    const c = this.change[u]
    switch (this.arch[u]) {
      case A_GRADUAL: return c + this.span[u]
      case A_UNFOLLOW: return c + this.aux[u] + this.span[u]
      case A_ABRUPT: return c
      case A_NEW: return this.aux[u] === 1 ? c + this.span[u] : Infinity
      default: return Infinity
    }
  }

  private generateDay (d: number, day: number): void {
    for (let z = 0; z < ZONES.length; z++) {
      const clock = zoneClock(ZONES[z])
      const mid = clock.startOfDay(day)
      this.zoneMid[z] = mid
      this.zoneLen[z] = clock.startOfDay(day + 1) - mid // 23 or 25 hours on DST days
      this.zoneHoliday[z] = this.zoneHolidays[z].has(day) ? 1 : 0
    }
    this.curLocalDay = day
    for (let k = day - 1; k <= day + 1; k++) {
      if (!this.open.has(k)) {
        const c = this.pool.pop() ?? new Rows(Math.max(4096, this.n * 4))
        c.n = 0
        c.utcDay = k
        this.open.set(k, c)
      }
      this.slots[k - day + 1] = this.open.get(k) as Rows
    }
    const dow = (day + 3) % 7 // 1970-01-01 was a Thursday; Monday = 0
    const weekend = dow >= 5
    for (let u = 0; u < this.n; u++) {
      const z = this.zone[u]
      this.curU = u
      this.curMid = this.zoneMid[z]
      this.curLen = this.zoneLen[z]
      this.userDay(u, d, weekend)
    }
  }

  private userDay (u: number, d: number, weekend: boolean): void {
    const r = this.rnd
    const c = this.change[u]
    const s = this.span[u]
    let act = this.pAct[u] * (weekend ? this.wkMul[u] : 1)
    let vl = 1
    let forced = false
    let unfollowsToday = 0
    let recall = false
    switch (this.arch[u]) {
      case A_STEADY:
        if (c !== NEVER && d >= c && d < c + s) act = 0
        break
      case A_WEEKENDER:
        act = weekend ? Math.min(0.95, this.pAct[u] + 0.1) : 0.08
        vl = weekend ? 1.4 : 0.6
        break
      case A_GRADUAL:
        if (d >= c) {
          const k = (d - c) / s
          if (k >= 1) act = 0
          else { act *= 1 - 0.85 * k; vl = Math.max(0.05, 1 - 1.6 * k) }
        }
        break
      case A_UNFOLLOW: {
        const burst = this.aux[u]
        if (d >= c + burst + s) act = 0
        else if (d >= c + burst) { act *= 0.6; vl = 0.25 } else if (d >= c) {
          forced = true
          vl = 0.3
          const m = this.burstUnfollows[u]
          const i = d - c
          unfollowsToday = Math.floor(m * (i + 1) / burst) - Math.floor(m * i / burst)
        } else if (d >= c - 2) vl = 0.6
        break
      }
      case A_ABRUPT:
        if (d >= c) act = 0
        break
      case A_RETURNER:
        if (d >= c && d < c + s) act = 0
        break
      case A_RECALLED:
        if (d >= c && d < c + s) act = 0
        else if (d === c + s) { recall = true; forced = true }
        break
      case A_NEW:
        if (d < c) return // not joined yet: no events at all
        if (d === c) forced = true
        else if (this.aux[u] === 1) {
          if (d >= c + s) act = 0
          else { const k = (d - c) / s; act *= 1 - 0.7 * k; vl = 1 - 0.6 * k }
        }
        break
    }
    if (this.zoneHoliday[this.zone[u]] === 1) act *= this.holMul[u]
    if (act > 0.97) act = 0.97

    // Push messages arrive whether or not the user is active; an opened one starts the session.
    let deliveredAt = -1
    if (recall || (this.pushRate[u] > 0 && r() < this.pushRate[u])) {
      deliveredAt = (9 + r() * 12) * HOUR_MS
      this.event(DELIVERED, deliveredAt, 0, 0)
    }
    if (!forced && !(act > 0 && r() < act)) return

    // An active day: one or two sessions.
    let start: number
    if (deliveredAt >= 0 && (recall || r() < this.openRate[u])) {
      const openedAt = deliveredAt + MIN_MS + r() * 30 * MIN_MS
      this.event(OPENED, openedAt, 0, 0)
      start = openedAt + 30_000
    } else {
      start = (this.hour[u] + (r() - 0.5) * 3) * HOUR_MS
    }
    const sessions = r() < 0.25 && !recall ? 2 : 1 // the recall's session comes first that day
    let viewsLeft = Math.floor(this.views[u] * vl * (0.6 + 0.8 * r()) + r())
    let t = 0
    for (let i = 0; i < sessions; i++) {
      if (i === 1) {
        // The second session at another time of the day, at least an hour away from the first.
        let t2 = (8 + r() * 14) * HOUR_MS
        if (Math.abs(t2 - start) < HOUR_MS) t2 = start + 2 * HOUR_MS
        start = t2
      }
      t = start
      this.event(LOGIN, t, 0, 0)
      if (i === 0) {
        // Creators to follow in the first active days: a new user picks them all when joining,
        // the bursty ones over two days, everyone else one or two a day.
        const left = this.follow0[u] - this.followed[u]
        if (left > 0) {
          const a = this.arch[u]
          const k = a === A_NEW ? left : a === A_UNFOLLOW ? Math.min(left, Math.ceil(this.follow0[u] / 2)) : Math.min(left, 2)
          for (let j = 0; j < k; j++) { t += 10_000 + r() * 30_000; this.follow(u, t) }
        }
      }
      const nv = i === sessions - 1 ? viewsLeft : Math.round(viewsLeft * 0.6)
      viewsLeft -= nv
      for (let j = 0; j < nv; j++) {
        t += 20_000 + r() * 160_000
        const content = Math.floor(r() * r() * CONTENT)
        const x = r()
        this.event(VIEW, t, content, 3_000 + Math.floor(x * x * x * 300_000))
        if (r() < this.interact[u]) this.event(INTERACT, t + 5_000 + r() * 40_000, content, 0)
      }
    }
    if (r() < this.post[u] * Math.min(1, vl)) { t += MIN_MS + r() * 4 * MIN_MS; this.event(POST, t, 0, 0) }
    if (r() < 0.03) { t += 30_000; this.follow(u, t) }
    if (unfollowsToday > 0) {
      for (let j = 0; j < unfollowsToday; j++) { t += 15_000 + r() * 60_000; this.unfollow(u, t) }
    } else if (r() < 0.008) {
      t += 30_000; this.unfollow(u, t)
    }
    if (this.buyRate[u] > 0 && r() < this.buyRate[u]) {
      const big = r() < 0.05 ? 4 : 1
      const amount = Math.round(this.buyMean[u] * big * (0.3 + 1.4 * r()) * 100) / 100
      t += 2 * MIN_MS
      this.event(PURCHASE, t, amount, 0)
    }
    const rv = this.revokeDay[u]
    if (rv >= 0 && d >= rv) {
      this.revokeDay[u] = NEVER // done
      this.event(REVOKED, t + MIN_MS, 0, 0)
    }
  }

  private follow (u: number, t: number): void {
    const j = this.followed[u]
    if (j >= 65_535) return
    this.followed[u] = j + 1
    this.event(FOLLOW, t, (this.creatorBase[u] + j * STRIDE) % CREATORS, 0)
  }

  /** Unfollows the creator followed longest ago that is still followed (nothing when none is). */
  private unfollow (u: number, t: number): void {
    const j = this.unfollowed[u]
    if (j >= this.followed[u]) return
    this.unfollowed[u] = j + 1
    this.event(UNFOLLOW, t, (this.creatorBase[u] + j * STRIDE) % CREATORS, 0)
  }

  /** One event of the current user at `localMs` into their current local day. */
  private event (type: number, localMs: number, num: number, dur: number): void {
    const u = this.curU
    let ms = Math.floor(localMs)
    if (ms < 0) ms = 0
    if (ms >= this.curLen) ms = this.curLen - 1
    const ts = this.curMid + ms
    const seq = this.seq[u]++
    if (type === LOGIN && ts > this.lastLogin[u]) this.lastLogin[u] = ts
    // The UTC day is a bucket key, not a count of the user's days: curLocalDay − 1, ±0 or + 1.
    const rows = this.slots[Math.floor(ts / DAY_MS) - this.curLocalDay + 1]
    if (rows === undefined) throw new Error(`simulator: ${ts} is outside the UTC days of local day ${this.curLocalDay}`)
    if (this.noise) {
      const x = this.rnd()
      // Held back: delivered at the end of the UTC day that ends 2–3 days after ts (when the
      // simulation lasts that long; the last array ends a little after that UTC day starts).
      const due = Math.ceil((ts + 2 * DAY_MS) / DAY_MS) - 1
      if (x < LATE_RATE && type !== LOGIN && due < this.firstDay + this.dayCount) {
        let list = this.late.get(due)
        if (list === undefined) { list = []; this.late.set(due, list) }
        list.push(this.materialize(ts, u, seq, type, num, dur))
        return
      }
      rows.push(ts, num, u * SEQ_SPAN + seq, type * TYPE_SPAN + dur)
      if (x >= LATE_RATE && x < LATE_RATE + DUP_RATE) rows.push(ts, num, u * SEQ_SPAN + seq, type * TYPE_SPAN + dur)
      return
    }
    rows.push(ts, num, u * SEQ_SPAN + seq, type * TYPE_SPAN + dur)
  }

  /** The events of complete UTC days `utcDays` (ascending), sorted, then the late events due by then. */
  private emit (utcDays: number[], final: boolean): UserEvent[] {
    const until = utcDays[utcDays.length - 1]
    const due = [...this.late.keys()].filter((k) => final || k <= until).sort((a, b) => a - b)
    const late: UserEvent[] = []
    for (const k of due) { for (const e of this.late.get(k) ?? []) late.push(e); this.late.delete(k) }
    late.sort((a, b) => a.ts - b.ts)
    let total = late.length
    for (const k of utcDays) total += this.open.get(k)?.n ?? 0
    // Preallocated: appending ten million elements one by one costs twice as much.
    const out = new Array<UserEvent>(total)
    let w = 0
    for (const k of utcDays) {
      const rows = this.open.get(k)
      if (rows === undefined) continue
      this.open.delete(k)
      w = this.sortInto(rows, out, w)
      rows.n = 0
      this.pool.push(rows)
    }
    for (const e of late) out[w++] = e
    return out
  }

  /**
   * Writes the rows of one UTC day to out[w…] in ts order, ties in row order. A stable counting
   * sort by minute of the day moves the rows into minute blocks (reading them in order, writing
   * to 1440 sequential streams), then each block (a few thousand rows, cache-resident) is sorted
   * by ms and position: no random access over the whole day, which is what costs at 10^7 rows.
   */
  private sortInto (rows: Rows, out: UserEvent[], w: number): number {
    const n = rows.n
    const src = rows.data
    const dayStart = rows.utcDay * DAY_MS
    const starts = this.minuteStarts
    starts.fill(0)
    for (let i = 0; i < n; i++) starts[Math.floor((src[i * 4] - dayStart) / MIN_MS) + 1]++
    for (let m = 1; m <= 1440; m++) starts[m] += starts[m - 1]
    const next = this.minuteNext
    next.set(starts.subarray(0, 1440))
    if (this.scratch.length < n * 4) this.scratch = new Float64Array(Math.max(n * 4, this.scratch.length * 2))
    const dst = this.scratch
    for (let i = 0; i < n; i++) {
      const s = i * 4
      const o = next[Math.floor((src[s] - dayStart) / MIN_MS)]++ * 4
      dst[o] = src[s]; dst[o + 1] = src[s + 1]; dst[o + 2] = src[s + 2]; dst[o + 3] = src[s + 3]
    }
    for (let m = 0; m < 1440; m++) {
      const from = starts[m]
      const len = starts[m + 1] - from
      if (len === 0) continue
      if (this.keys.length < len) this.keys = new Float64Array(Math.max(len, this.keys.length * 2))
      const keys = this.keys.subarray(0, len)
      const minuteStart = dayStart + m * MIN_MS
      for (let j = 0; j < len; j++) keys[j] = (dst[(from + j) * 4] - minuteStart) * POS_SPAN + j
      if (len > 1) keys.sort()
      for (let j = 0; j < len; j++) {
        const key = keys[j]
        const o = (from + (key - Math.floor(key / POS_SPAN) * POS_SPAN)) * 4
        const userSeq = dst[o + 2]
        const typeDur = dst[o + 3]
        const u = Math.floor(userSeq / SEQ_SPAN)
        const type = Math.floor(typeDur / TYPE_SPAN)
        out[w++] = this.materialize(dst[o], u, userSeq - u * SEQ_SPAN, type, dst[o + 1], typeDur - type * TYPE_SPAN)
      }
    }
    return w
  }

  private materialize (ts: number, u: number, seq: number, type: number, num: number, dur: number): UserEvent {
    const userId = this.ids[u]
    let targetId: string | null = null
    let durationMs: number | null = null
    let amount: number | null = null
    let channel: UserEvent['channel'] = null
    switch (type) {
      case FOLLOW: case UNFOLLOW: targetId = creatorId(num); break
      case VIEW: targetId = contentId(num); durationMs = dur; break
      case INTERACT: targetId = contentId(num); break
      case POST: targetId = 'p' + this.idPrefix[u] + base36(seq); break
      case PURCHASE: amount = num; break
      case DELIVERED: case OPENED: channel = 'PUSH'; break
      case REVOKED: channel = 'SMS'; break
    }
    return {
      eventId: this.idPrefix[u] + base36(seq),
      userId,
      type: EVENT_TYPES[type],
      ts,
      tz: ZONES[this.zone[u]],
      targetId,
      durationMs,
      amount,
      channel,
      taskId: null
    }
  }
}

// Shared strings for the ids that repeat (a day of a million users makes ten million events).
const B36: string[] = []
const CREATOR_IDS: string[] = []
const CONTENT_IDS: string[] = []

function base36 (n: number): string {
  if (n >= 65_536) return n.toString(36)
  let s = B36[n]
  if (s === undefined) { for (let i = B36.length; i <= n; i++) B36.push(i.toString(36)); s = B36[n] }
  return s
}

function creatorId (n: number): string {
  let s = CREATOR_IDS[n]
  if (s === undefined) { for (let i = CREATOR_IDS.length; i <= n; i++) CREATOR_IDS.push('c' + i); s = CREATOR_IDS[n] }
  return s
}

function contentId (n: number): string {
  let s = CONTENT_IDS[n]
  if (s === undefined) { for (let i = CONTENT_IDS.length; i <= n; i++) CONTENT_IDS.push('v' + i); s = CONTENT_IDS[n] }
  return s
}

function pick (x: number, weights: readonly number[]): number {
  let acc = 0
  for (let i = 0; i < weights.length; i++) { acc += weights[i]; if (x < acc) return i }
  return weights.length - 1
}
