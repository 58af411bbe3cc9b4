import { fmix32, FNV_OFFSET, FNV_PRIME } from './hash.js'
import { type ZoneClock, zoneClock } from '../time/zones.js'

/**
 * Per-user state: everything the signals need, in a few hundred bytes.
 *
 * Windows are rings indexed by local epoch-day (README, "Time, signals and rules"): slot (day mod N) holds day `day` for
 * the N days up to `headDay`, the newest day written. Moving headDay forward clears the slots of
 * the days skipped, so an update is O(1) amortised and the state never grows with time.
 *
 *   words (one Uint16Array, so a user is three heap objects, not ten: GC cost grows with objects)
 *     counts               VIEW, INTERACT, POST: 36 days each (today + 7 complete days + 28-day baseline)
 *                          FOLLOW, UNFOLLOW: 7 days each; login hour-of-day histogram: 24
 *     active bits          96-day ring of days with any engagement (RFM frequency over 90 days)
 *     recent ids           the last 8 eventId hashes, 32 bits each as two words (duplicates)
 *   loginBits              32-day ring of days with a LOGIN (loginDays7 / loginDays28)
 *   purchases / messages   sparse (day, …) tuples within 90 days: rare events, kept as lists;
 *                          purchase amounts in integer cents, so sums are exact across restarts
 */
export const COUNT_DAYS = 36
/** complete days before today that the drop windows can span */
export const DROP_WINDOW_DAYS = COUNT_DAYS - 1
export const FOLLOW_DAYS = 7
export const OFF_VIEW = 0
export const OFF_INTERACT = OFF_VIEW + COUNT_DAYS
export const OFF_POST = OFF_INTERACT + COUNT_DAYS
export const OFF_FOLLOW = OFF_POST + COUNT_DAYS
export const OFF_UNFOLLOW = OFF_FOLLOW + FOLLOW_DAYS
export const OFF_HOUR = OFF_UNFOLLOW + FOLLOW_DAYS
export const COUNTS_LENGTH = OFF_HOUR + 24
export const OFF_ACTIVE = COUNTS_LENGTH
export const OFF_RECENT = OFF_ACTIVE + 6
/** words per remembered eventId: a 64-bit hash */
export const RECENT_ID_WORDS = 4
/** the churn model's spell record: 16 int16 words (src/model/spell.ts; states written before the 16th hold 15) */
export const OFF_SPELL = OFF_RECENT + RECENT_ID_WORDS * 8
export const SPELL_WORDS = 16
export const WORDS = OFF_SPELL + SPELL_WORDS
export const LOGIN_RING = 32
export const ACTIVE_RING = 96
export const LONG_WINDOW_DAYS = 90
export const RECENT_IDS = 8
export const NEVER_DAY = -2147483648
/**
 * 2: recall-task entries and explicit consent grants. 3: the churn model's spell (a silence since
 * the last LOGIN: its frozen record, which of its days were scored and which have their label).
 */
export const STATE_VERSION = 3

export class UserState {
  readonly userId: string
  zone: ZoneClock
  firstDay = NEVER_DAY
  lastEventTs = 0
  headDay = NEVER_DAY
  lastLoginTs = -1
  lastLoginDay = NEVER_DAY
  lastPurchaseDay = NEVER_DAY
  followCount = 0
  loginBits = 0
  readonly words = new Uint16Array(WORDS)
  /** (day, cents) pairs; the shared NO_TUPLES until the first purchase */
  purchases: number[] = NO_TUPLES
  /** (day, delivered, opened) triples; the shared NO_TUPLES until the first message */
  messages: number[] = NO_TUPLES
  recentPos = 0
  ruleCond = 0
  ruleFired = 0
  episodeOpenTs = 0
  timerDue = 0
  churnScore: number | null = null
  /**
   * The churn model's current spell: the local day of the LOGIN it follows (NEVER_DAY: none), the
   * silent days scored so far [spellFirst, spellScored), how many of them already have their
   * label "churned" (30 silent days after them: [spellFirst, spellResolved)), and the highest
   * score logit of the spell ×256 (rounded, so a stored state compares exactly as a cached one).
   */
  spellDay = NEVER_DAY
  spellFirst = 0
  spellScored = 0
  spellResolved = 0
  spellMax = SPELL_MAX_NONE
  /** bit per channel (PUSH, SMS, EMAIL, IN_APP): consent revoked and not granted again */
  consentRevoked = 0
  /** bit per channel: consent granted and not revoked since (opt-in channels need it) */
  consentGranted = 0
  /** recall tasks (and holdout shadows) of recent episodes: caps, dedup, outcomes; the shared NO_TASKS until the first */
  tasks: TaskEntry[] = NO_TASKS
  // Not persisted: cache bookkeeping.
  dirty = false
  /**
   * In a prepared commit whose encoding is deferred (StateCache.deferDirty): the commit still
   * needs this state as it is now, so the next change encodes it first (copy on write).
   */
  snapshotPending = false
  touched = 0
  erased = false

  constructor (userId: string, zone: ZoneClock) {
    this.userId = userId
    this.zone = zone
  }

  /** Moves the rings forward to `day`, clearing the slots of the days in between. */
  advanceTo (day: number): void {
    const head = this.headDay
    if (day <= head) return
    this.headDay = day
    if (head === NEVER_DAY) return
    const gap = day - head
    const w = this.words
    clearRing(w, OFF_VIEW, COUNT_DAYS, head, gap)
    clearRing(w, OFF_INTERACT, COUNT_DAYS, head, gap)
    clearRing(w, OFF_POST, COUNT_DAYS, head, gap)
    clearRing(w, OFF_FOLLOW, FOLLOW_DAYS, head, gap)
    clearRing(w, OFF_UNFOLLOW, FOLLOW_DAYS, head, gap)
    const loginGap = gap < LOGIN_RING ? gap : LOGIN_RING
    for (let i = 1; i <= loginGap; i++) this.loginBits &= ~(1 << ((head + i) % LOGIN_RING))
    const activeGap = gap < ACTIVE_RING ? gap : ACTIVE_RING
    for (let i = 1; i <= activeGap; i++) {
      const b = (head + i) % ACTIVE_RING
      w[OFF_ACTIVE + (b >>> 4)] &= ~(1 << (b & 15))
    }
    const oldest = day - LONG_WINDOW_DAYS
    if (this.purchases.length > 0 && this.purchases[0] <= oldest) this.purchases = pruneTuples(this.purchases, 2, oldest)
    if (this.messages.length > 0 && this.messages[0] <= oldest) this.messages = pruneTuples(this.messages, 3, oldest)
  }

  /** Adds one to a daily ring; days outside the ring (too old) are ignored. */
  addCount (offset: number, size: number, day: number): void {
    if (day > this.headDay || day <= this.headDay - size) return
    const i = offset + (day % size)
    if (this.words[i] !== 0xffff) this.words[i]++
  }

  markLogin (day: number): void {
    if (day > this.headDay || day <= this.headDay - LOGIN_RING) return
    this.loginBits |= 1 << (day % LOGIN_RING)
  }

  markActive (day: number): void {
    if (day > this.headDay || day <= this.headDay - ACTIVE_RING) return
    const b = day % ACTIVE_RING
    this.words[OFF_ACTIVE + (b >>> 4)] |= 1 << (b & 15)
  }

  isActive (day: number): boolean {
    if (day > this.headDay || day <= this.headDay - ACTIVE_RING) return false
    const b = day % ACTIVE_RING
    return (this.words[OFF_ACTIVE + (b >>> 4)] & (1 << (b & 15))) !== 0
  }

  addLoginHour (hour: number): void {
    const i = OFF_HOUR + hour
    const w = this.words
    if (w[i] === 0xffff) {
      // Halve the histogram: keeps the shape (which hour wins) and the counts bounded.
      for (let h = 0; h < 24; h++) w[OFF_HOUR + h] >>>= 1
    }
    w[i]++
  }

  /**
   * Adds a purchase to its local day. Tuples stay sorted by day even when a late event brings an
   * older day (pruning relies on the order). Amounts are capped by validation (MAX_AMOUNT); a
   * day's total is clamped so that it stays an exact integer in a double.
   */
  addPurchase (day: number, amount: number): void {
    if (day <= this.headDay - LONG_WINDOW_DAYS) return
    const cents = Math.round(amount * 100)
    if (this.purchases === NO_TUPLES) this.purchases = []
    const p = this.purchases
    const at = tupleSlot(p, 2, day)
    if (at < p.length && p[at] === day) p[at + 1] = Math.min(p[at + 1] + cents, MAX_DAY_CENTS)
    else if (at === p.length) p.push(day, Math.min(cents, MAX_DAY_CENTS))
    else p.splice(at, 0, day, Math.min(cents, MAX_DAY_CENTS))
  }

  addMessage (day: number, delivered: number, opened: number): void {
    if (day <= this.headDay - LONG_WINDOW_DAYS) return
    if (this.messages === NO_TUPLES) this.messages = []
    const m = this.messages
    const at = tupleSlot(m, 3, day)
    if (at < m.length && m[at] === day) {
      // Stored as Avro int: clamped far below 2^31.
      if (m[at + 1] < MAX_DAY_MESSAGES) m[at + 1] += delivered
      if (m[at + 2] < MAX_DAY_MESSAGES) m[at + 2] += opened
    } else if (at === m.length) m.push(day, delivered, opened)
    else m.splice(at, 0, day, delivered, opened)
  }

  /** Remembers an eventId's 64-bit hash (two 32-bit halves); returns true when it was already among the recent ones. */
  seen (h1: number, h2: number): boolean {
    const w = this.words
    const a = h1 & 0xffff
    const b = h1 >>> 16
    const c = h2 & 0xffff
    const d = h2 >>> 16
    for (let i = OFF_RECENT; i < OFF_RECENT + RECENT_ID_WORDS * RECENT_IDS; i += RECENT_ID_WORDS) if (w[i] === a && w[i + 1] === b && w[i + 2] === c && w[i + 3] === d) return true
    const at = OFF_RECENT + RECENT_ID_WORDS * this.recentPos
    w[at] = a
    w[at + 1] = b
    w[at + 2] = c
    w[at + 3] = d
    this.recentPos = (this.recentPos + 1) % RECENT_IDS
    return false
  }

  setZone (tz: string): void {
    if (tz !== this.zone.id) this.zone = zoneClock(tz)
  }
}

/**
 * One recall task Ebb emitted for the user, or the task a HOLDOUT user would have got (a shadow,
 * so that the holdout's recall rate is measured the same way). Kept while the episode is open,
 * or while caps or attribution still look at it.
 */
export interface TaskEntry {
  /** the episode's open time (episodeId = userId:episodeTs) */
  episodeTs: number
  planId: string
  step: number
  /** index of the rule whose alert led to the task (alertId = episodeId:rule) */
  rule: number
  /** CHANNELS index */
  channel: number
  /** TASK_* bits */
  flags: number
  sendAt: number
  attributionHours: number
  /** CHURN_TYPES index */
  churnType: number
}

/** spellMax before any score in the spell */
export const SPELL_MAX_NONE = -2147483648

export const TASK_HOLDOUT = 1
export const TASK_DELIVERED = 2
export const TASK_OPENED = 4
export const TASK_RECALLED = 8
/** attribution is over for this entry: a later task took the last touch, or its window passed */
export const TASK_CLOSED = 16
/** a LOGIN fell in this first step's window (the uplift measure, in both arms) */
export const TASK_RETURNED = 32

export const NO_TASKS: TaskEntry[] = Object.freeze([]) as unknown as TaskEntry[]

/** The empty tuple list shared by every user without purchases or messages; never mutated. */
export const NO_TUPLES: number[] = Object.freeze([]) as unknown as number[]

function clearRing (counts: Uint16Array, offset: number, size: number, head: number, gap: number): void {
  const n = gap < size ? gap : size
  for (let i = 1; i <= n; i++) counts[offset + ((head + i) % size)] = 0
}

/** Cents per local day: 2^48, far beyond any real spend and exact in a double. */
const MAX_DAY_CENTS = 2 ** 48
const MAX_DAY_MESSAGES = 1_000_000_000

/**
 * Where a tuple for `day` belongs in a day-sorted list: the index of that day's tuple, or of the
 * first later one (list.length when none). Searched from the end: new days are the common case.
 */
function tupleSlot (list: number[], width: number, day: number): number {
  let at = list.length
  while (at > 0 && list[at - width] > day) at -= width
  if (at > 0 && list[at - width] === day) return at - width
  return at
}

/** Drops tuples at or before `oldest`; the list is sorted by day. */
function pruneTuples (list: number[], width: number, oldest: number): number[] {
  if (list[list.length - width] <= oldest) return NO_TUPLES
  const out: number[] = []
  for (let i = 0; i < list.length; i += width) {
    if (list[i] > oldest) for (let k = 0; k < width; k++) out.push(list[i + k])
  }
  return out
}

/**
 * A 64-bit hash of an eventId as two independent 32-bit halves: FNV-1a, and a multiply–rotate
 * hash with murmur3's finaliser. Duplicate detection keeps the last RECENT_IDS hashes per user;
 * a false duplicate needs both halves to collide among 8 ids of one user (two ids built to
 * collide under FNV-1a alone, as a hostile corpus has, are told apart). A true duplicate older
 * than 8 events of the same user passes. The first half is never 0 (0 marks an empty slot).
 * Written to `eventIdHash.h1` / `.h2`: no allocation per event.
 */
export const eventIdHash = {
  h1: 0,
  h2: 0,
  of (id: string): void {
    let a = FNV_OFFSET
    let b = 0x9e3779b9
    for (let i = 0; i < id.length; i++) {
      const c = id.charCodeAt(i)
      a = Math.imul(a ^ c, FNV_PRIME)
      b = Math.imul((b ^ c) << 13 | (b ^ c) >>> 19, 0x5bd1e995) + 0x6b43a9b5 | 0
    }
    this.h1 = a === 0 ? 1 : a
    this.h2 = fmix32(b ^ id.length)
  }
}
