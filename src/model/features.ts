import * as S from '../signals/signals.js'
import { COUNT_DAYS, OFF_UNFOLLOW, OFF_VIEW, FOLLOW_DAYS, NEVER_DAY, type UserState } from '../state/user-state.js'

/**
 * The churn model's features: ONE definition, used by `ebb train` (daily snapshots of a replay)
 * and by the engine when it scores (each user's local-midnight timer, and the API on read), so training and
 * scoring cannot drift apart.
 *
 * Every feature is a number for every user: an undefined signal (NaN) is replaced by the value
 * that means "nothing to worry about" for it (`missing`), documented per feature, so a model never
 * sees NaN. Long-tailed counts are log1p'd; spans are capped so one outlier cannot dominate a weight.
 *
 * A model file names its features; the loader maps names to this table, so a feature can be
 * added here without breaking older model files (they just do not use it).
 */
export const enum FeatureId {
  daysInactive, hoursSinceLogin, missedLoginDays, silenceSurprise, loginDays7, loginDays28, loginTrend,
  consumptionDrop, interactionDrop, postDrop, viewsLast7, unfollowRatio7d, unfollowsLast7,
  activeDays7, activeDays90, spend90, purchaseRecency, responseRate, accountAgeDays
}

export interface FeatureDefinition {
  readonly id: FeatureId
  readonly name: string
  /** stable reason code of the feature in a model alert */
  readonly code: string
  /** how a growth team reads the feature; {v} is the value (and {v%} as a percentage) */
  readonly text: string
  /** what an undefined signal becomes, in words (docs and the model file) */
  readonly missing: string
}

export const FEATURES: readonly FeatureDefinition[] = [
  { id: FeatureId.daysInactive, name: 'daysInactive', code: 'DAYS_INACTIVE', text: 'no login for {v} full days', missing: 'account age when the user never logged in; capped at 60' },
  { id: FeatureId.hoursSinceLogin, name: 'hoursSinceLogin', code: 'HOURS_SINCE_LOGIN', text: 'last login {v} hours ago', missing: 'hours since the first event when the user never logged in; capped at 1440' },
  { id: FeatureId.missedLoginDays, name: 'missedLoginDays', code: 'MISSED_LOGIN_DAYS', text: 'missed about {v} of their usual login days', missing: '0' },
  { id: FeatureId.silenceSurprise, name: 'silenceSurprise', code: 'UNUSUAL_SILENCE', text: 'a silence this long is unusual for them (about 1 in {e})', missing: '0' },
  { id: FeatureId.loginDays7, name: 'loginDays7', code: 'LOGIN_DAYS_7', text: 'logged in on {v} of the last 7 days', missing: '—' },
  { id: FeatureId.loginDays28, name: 'loginDays28', code: 'LOGIN_DAYS_28', text: 'logged in on {v} of the last 28 days', missing: '—' },
  { id: FeatureId.loginTrend, name: 'loginTrend', code: 'LOGIN_TREND', text: 'login days this week {v} against their weekly average', missing: '—' },
  { id: FeatureId.consumptionDrop, name: 'consumptionDrop', code: 'CONSUMPTION_DROP', text: 'views this week down {v%} on their weekly average', missing: '0 (no baseline yet)' },
  { id: FeatureId.interactionDrop, name: 'interactionDrop', code: 'INTERACTION_DROP', text: 'interactions this week down {v%} on their weekly average', missing: '0 (no baseline yet)' },
  { id: FeatureId.postDrop, name: 'postDrop', code: 'POST_DROP', text: 'posts this week down {v%} on their weekly average', missing: '0 (no baseline yet)' },
  { id: FeatureId.viewsLast7, name: 'viewsLast7', code: 'VIEWS_7', text: '{n} views in the last 7 days', missing: '—' },
  { id: FeatureId.unfollowRatio7d, name: 'unfollowRatio7d', code: 'UNFOLLOW_RATIO', text: 'unfollowed {v%} of the creators they followed a week ago', missing: '0 (too few follows)' },
  { id: FeatureId.unfollowsLast7, name: 'unfollowsLast7', code: 'UNFOLLOWS_7', text: '{n} unfollows in the last 7 days', missing: '—' },
  { id: FeatureId.activeDays7, name: 'activeDays7', code: 'ACTIVE_DAYS_7', text: 'active on {v} of the last 7 days', missing: '—' },
  { id: FeatureId.activeDays90, name: 'activeDays90', code: 'ACTIVE_DAYS_90', text: 'active on {v} of the last 90 days', missing: '—' },
  { id: FeatureId.spend90, name: 'spend90', code: 'SPEND_90', text: 'spent {n} in the last 90 days', missing: '—' },
  { id: FeatureId.purchaseRecency, name: 'purchaseRecency', code: 'PURCHASE_RECENCY', text: 'last purchase {v} days ago', missing: '90 (no purchase seen)' },
  { id: FeatureId.responseRate, name: 'responseRate', code: 'RESPONSE_RATE', text: 'opened {v%} of the messages delivered in 90 days', missing: '0 (no message delivered)' },
  { id: FeatureId.accountAgeDays, name: 'accountAgeDays', code: 'ACCOUNT_AGE', text: 'account {v} days old', missing: '—; capped at 90' }
]

export const FEATURE_COUNT = FEATURES.length
export const FEATURES_BY_NAME: ReadonlyMap<string, FeatureDefinition> = new Map(FEATURES.map((f) => [f.name, f]))
/** Bumped when a feature's meaning changes; a model trained on another version is refused. */
export const FEATURE_SET_VERSION = 1

const HOUR_MS = 3_600_000

/**
 * Writes every feature of a user, on local day `today` at instant `at`, into `out` (length
 * FEATURE_COUNT). No allocation: the engine calls this at every user-midnight when a model is loaded.
 */
export function computeFeatures (s: UserState, today: number, at: number, p: S.SignalParams, out: Float64Array): void {
  const age = S.accountAgeDays(s, today)
  const ageDays = Number.isNaN(age) ? 0 : age
  let di = S.daysInactive(s, today)
  let hours: number
  if (Number.isNaN(di)) {
    di = ageDays
    hours = s.lastEventTs > 0 && at > s.lastEventTs ? (at - s.lastEventTs) / HOUR_MS + ageDays * 24 : ageDays * 24
  } else {
    hours = at > s.lastLoginTs ? (at - s.lastLoginTs) / HOUR_MS : 0
  }
  if (di > 60) di = 60
  if (hours > 1440) hours = 1440
  const l7 = S.loginDays(s, today, 7)
  const l28 = S.loginDays(s, today, 28)
  out[FeatureId.daysInactive] = di
  out[FeatureId.hoursSinceLogin] = hours
  // A daily user four days away has missed four login days; a weekly one, about half of one.
  out[FeatureId.missedLoginDays] = di * l28 / 28
  // How unlikely this silence is for someone who logs in on a share q of days: −ln (1 − q)^di.
  // The log-odds of "gone" against "just skipping days" grow with it (Bayes), which a linear
  // model can then weigh directly.
  const q = l28 / 28 < 0.95 ? l28 / 28 : 0.95
  out[FeatureId.silenceSurprise] = -di * Math.log(1 - q)
  out[FeatureId.loginDays7] = l7
  out[FeatureId.loginDays28] = l28
  out[FeatureId.loginTrend] = l7 - l28 / 4
  out[FeatureId.consumptionDrop] = orZero(S.consumptionDrop(s, today, p))
  out[FeatureId.interactionDrop] = orZero(S.interactionDrop(s, today, p))
  out[FeatureId.postDrop] = orZero(S.postDrop(s, today, p))
  out[FeatureId.viewsLast7] = Math.log1p(S.ringSum(s, OFF_VIEW, COUNT_DAYS, today, 0, 6))
  out[FeatureId.unfollowRatio7d] = orZero(S.unfollowRatio(s, today, p))
  out[FeatureId.unfollowsLast7] = Math.log1p(S.ringSum(s, OFF_UNFOLLOW, FOLLOW_DAYS, today, 0, 6))
  let a7 = 0
  for (let ago = 0; ago < 7; ago++) if (s.isActive(today - ago)) a7++
  out[FeatureId.activeDays7] = a7
  out[FeatureId.activeDays90] = S.rfmFrequency(s, today)
  out[FeatureId.spend90] = Math.log1p(S.rfmMonetary(s, today))
  const rec = s.lastPurchaseDay === NEVER_DAY ? 90 : today - s.lastPurchaseDay
  out[FeatureId.purchaseRecency] = rec > 90 ? 90 : rec < 0 ? 0 : rec
  out[FeatureId.responseRate] = orZero(S.responseRate(s, today))
  out[FeatureId.accountAgeDays] = ageDays > 90 ? 90 : ageDays
}

function orZero (v: number): number { return Number.isNaN(v) ? 0 : v }

/** The displayed value of a feature in a reason: the raw count for log1p'd ones. */
export function featureDisplayValue (id: FeatureId, v: number): number {
  return id === FeatureId.viewsLast7 || id === FeatureId.unfollowsLast7 || id === FeatureId.spend90 ? Math.round(Math.expm1(v) * 100) / 100 : v
}

/** A feature in words, e.g. "no login for 4 full days". */
export function featureText (f: FeatureDefinition, v: number): string {
  const shown = featureDisplayValue(f.id, v)
  const plain = Number.isInteger(shown) ? String(shown) : shown.toFixed(1)
  return f.text
    .replace('{v%}', `${Math.round(v * 100)}%`)
    .replace('{n}', plain)
    .replace('{e}', String(Math.round(Math.min(1e6, Math.exp(v)))))
    .replace('{v}', plain)
}
