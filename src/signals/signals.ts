import {
  COUNT_DAYS, FOLLOW_DAYS, LOGIN_RING, LONG_WINDOW_DAYS, NEVER_DAY,
  OFF_FOLLOW, OFF_HOUR, OFF_INTERACT, OFF_POST, OFF_UNFOLLOW, OFF_VIEW, type UserState
} from '../state/user-state.js'

/**
 * Signal math (README, "Time, signals and rules"): pure functions of a user's state and "today" (a local epoch-day).
 * No I/O, no allocation. An undefined signal is NaN, and every comparison with NaN is false, so
 * a rule over an undefined signal never fires.
 */

/** Tunables of the signals; the topology file sets them (topologies/default.yaml, `signals:`). */
export interface SignalParams {
  unfollowWindowDays: number
  minFollowBase: number
  drop: { recentDays: number, baselineDays: number, minWeeklyViews: number, minWeeklyInteractions: number, minWeeklyPosts: number }
  rfm: { highMonetary: number, highFrequency: number, midMonetary: number, midFrequency: number }
  response: { high: number, mid: number }
}

export const DEFAULT_SIGNAL_PARAMS: SignalParams = {
  unfollowWindowDays: 7,
  minFollowBase: 4,
  drop: { recentDays: 7, baselineDays: 28, minWeeklyViews: 5, minWeeklyInteractions: 3, minWeeklyPosts: 1 },
  rfm: { highMonetary: 500, highFrequency: 45, midMonetary: 50, midFrequency: 15 },
  response: { high: 0.3, mid: 0.1 }
}

/** Complete local days since the local date of the last LOGIN: Monday's login gives 0 on Tuesday, 7 on the next Tuesday. */
export function daysInactive (s: UserState, today: number): number {
  if (s.lastLoginDay === NEVER_DAY) return Number.NaN
  const d = today - s.lastLoginDay - 1
  return d > 0 ? d : 0
}

/** Sum of a daily ring over the days [today - toAgo, today - fromAgo]. */
export function ringSum (s: UserState, offset: number, size: number, today: number, fromAgo: number, toAgo: number): number {
  const head = s.headDay
  let sum = 0
  for (let ago = fromAgo; ago <= toAgo; ago++) {
    const day = today - ago
    if (day > head || day <= head - size) continue
    sum += s.words[offset + (day % size)]
  }
  return sum
}

/** Distinct local days with a LOGIN among the last `days` days (days ≤ 32). */
export function loginDays (s: UserState, today: number, days: number): number {
  const head = s.headDay
  let n = 0
  for (let ago = 0; ago < days; ago++) {
    const day = today - ago
    if (day > head || day <= head - LOGIN_RING) continue
    if ((s.loginBits & (1 << (day % LOGIN_RING))) !== 0) n++
  }
  return n
}

/**
 * UNFOLLOWs in the window ÷ creators followed at the window's start, which is
 * followed now + unfollowed in the window − followed in the window. NaN below minFollowBase.
 */
export function unfollowRatio (s: UserState, today: number, p: SignalParams): number {
  const w = p.unfollowWindowDays
  const unfollows = ringSum(s, OFF_UNFOLLOW, FOLLOW_DAYS, today, 0, w - 1)
  const follows = ringSum(s, OFF_FOLLOW, FOLLOW_DAYS, today, 0, w - 1)
  const base = s.followCount + unfollows - follows
  if (base < p.minFollowBase) return Number.NaN
  return unfollows / base
}

/**
 * 1 − recent count ÷ average weekly count of the baseline before it. NaN below the minimum baseline.
 * Windows are complete local days: the recent 7 are the days before today, the baseline the 28
 * before those. Counting today's partial day would make the drop jump at every midnight (a new,
 * empty day enters the window) and fall with the day's first view: the rule would flap daily.
 * So the drop is stable within a day and moves at the user's local midnight (the daily timer).
 */
export function drop (s: UserState, offset: number, today: number, p: SignalParams, minWeekly: number): number {
  const { recentDays, baselineDays } = p.drop
  const recent = ringSum(s, offset, COUNT_DAYS, today, 1, recentDays)
  const baseline = ringSum(s, offset, COUNT_DAYS, today, recentDays + 1, recentDays + baselineDays)
  const weekly = baseline * 7 / baselineDays
  if (weekly < minWeekly) return Number.NaN
  return 1 - (recent * 7 / recentDays) / weekly
}

export function consumptionDrop (s: UserState, today: number, p: SignalParams): number { return drop(s, OFF_VIEW, today, p, p.drop.minWeeklyViews) }
export function interactionDrop (s: UserState, today: number, p: SignalParams): number { return drop(s, OFF_INTERACT, today, p, p.drop.minWeeklyInteractions) }
export function postDrop (s: UserState, today: number, p: SignalParams): number { return drop(s, OFF_POST, today, p, p.drop.minWeeklyPosts) }

/** Days since the last PURCHASE; NaN when none was seen. */
export function rfmRecency (s: UserState, today: number): number {
  return s.lastPurchaseDay === NEVER_DAY ? Number.NaN : Math.max(0, today - s.lastPurchaseDay)
}

/** Active local days (any engagement event) in the last 90 days. */
export function rfmFrequency (s: UserState, today: number): number {
  let n = 0
  for (let ago = 0; ago < LONG_WINDOW_DAYS; ago++) if (s.isActive(today - ago)) n++
  return n
}

/** PURCHASE sum over the last 90 days. */
export function rfmMonetary (s: UserState, today: number): number {
  const p = s.purchases
  let sum = 0
  for (let i = 0; i < p.length; i += 2) if (p[i] > today - LONG_WINDOW_DAYS && p[i] <= today) sum += p[i + 1]
  return sum / 100 // stored in cents
}

export type ValueTier = 'HIGH' | 'MID' | 'LOW'
/** HIGH when 90-day spend or active days reach the high marks, MID at the mid marks, else LOW. */
export function valueTier (s: UserState, today: number, p: SignalParams): ValueTier {
  const m = rfmMonetary(s, today)
  const f = rfmFrequency(s, today)
  if (m >= p.rfm.highMonetary || f >= p.rfm.highFrequency) return 'HIGH'
  if (m >= p.rfm.midMonetary || f >= p.rfm.midFrequency) return 'MID'
  return 'LOW'
}

/** MESSAGE_OPENED ÷ MESSAGE_DELIVERED over 90 days; NaN when nothing was delivered. Capped at 1. */
export function responseRate (s: UserState, today: number): number {
  const m = s.messages
  let delivered = 0
  let opened = 0
  for (let i = 0; i < m.length; i += 3) {
    if (m[i] > today - LONG_WINDOW_DAYS && m[i] <= today) { delivered += m[i + 1]; opened += m[i + 2] }
  }
  if (delivered === 0) return Number.NaN
  return opened >= delivered ? 1 : opened / delivered
}

export type ResponseTier = 'HIGH' | 'MID' | 'LOW' | 'UNKNOWN'
export function responseTier (s: UserState, today: number, p: SignalParams): ResponseTier {
  const r = responseRate(s, today)
  if (Number.isNaN(r)) return 'UNKNOWN'
  return r >= p.response.high ? 'HIGH' : r >= p.response.mid ? 'MID' : 'LOW'
}

export function accountAgeDays (s: UserState, today: number): number {
  return s.firstDay === NEVER_DAY ? Number.NaN : Math.max(0, today - s.firstDay)
}

/** The local hour at which the user most often logs in (earliest hour on ties); NaN before any LOGIN. */
export function activeHour (s: UserState): number {
  let best = -1
  let max = 0
  for (let h = 0; h < 24; h++) {
    const c = s.words[OFF_HOUR + h]
    if (c > max) { max = c; best = h }
  }
  return best < 0 ? Number.NaN : best
}

/** "Today" for a user at an instant: never before the newest day already in their state. */
export function todayOf (s: UserState, ms: number): number {
  const d = s.zone.localDay(ms)
  return d > s.headDay ? d : s.headDay
}

export { OFF_INTERACT, OFF_POST, OFF_VIEW }
