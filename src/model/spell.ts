import * as S from '../signals/signals.js'
import { COUNT_DAYS, NEVER_DAY, OFF_INTERACT, OFF_SPELL, OFF_VIEW, SPELL_WORDS, type UserState } from '../state/user-state.js'

/**
 * The churn model's view of a user: a silence spell.
 *
 * The question the model answers at a user's local midnight is "will this user log in within the
 * next 30 days?". Everything it knows about the user before the silence is frozen when the spell
 * starts — at the first midnight after the day of the last LOGIN — into a few numbers kept in the
 * user's state (the spell record: their login rhythm per day of the week, their recent rhythm,
 * and how their activity was trending). Each midnight of the silence then adds only the number
 * of silent days `d`: the features of day d are a pure function of (spell record, d).
 *
 * That makes every daily score reproducible later from the state alone, which is what lets the
 * engine learn from its own stream (learner.ts): when the label of a scored day arrives (a LOGIN,
 * or 30 silent days), the features of that day are rebuilt exactly, with no copy of past features
 * kept anywhere. It also keeps the silence out of the precursors: views "this week" fall because
 * the user is silent, which says nothing new; the spell record holds the week before the silence.
 *
 * The login rhythm is a per-day-of-week login chance (a weekend user is not surprising on a
 * Tuesday), estimated from the last 28 days before the silence and shrunk toward the user's own
 * overall chance, which is shrunk toward the population's (the partition's running mean): a user
 * seen on two days is judged mostly by the population, one seen for four weeks by themselves
 * (beta–binomial empirical Bayes, in the spirit of BG/NBD's P(alive)). How surprising d silent days
 * are for this user is then −ln Π (1 − q_dow) over those days.
 *
 * The record is 15 int16 words in UserState.words (quantised when frozen, so a state read back
 * from the store scores exactly as the cached one did).
 */
export const enum FeatureId {
  silenceSurprise, daysInactive, fullWeek, recentSurprise, loginRate, beyondLongestGap,
  loginTrend, viewDrop, unfollowRatio, interactionDrop, logDaysInactive, logSilenceSurprise,
  steepViewDrop, steepInteractionDrop
}

export interface FeatureDefinition {
  readonly id: FeatureId
  readonly name: string
  /** stable reason code of the feature in a model alert */
  readonly code: string
  /** how a growth team reads the feature (rendered by featureText) */
  readonly doc: string
  /**
   * A feature that only reshapes another (its logarithm) is not a reason of its own: its share of
   * the score is counted with that feature's in an alert's reasons.
   */
  readonly partOf?: FeatureId
  /**
   * For a change (a trend or a drop) that raises the score by going the other way: the code
   * when it rose, and on which side of 0 that is (`risingBelow`: a drop below 0 is a rise).
   */
  readonly risingCode?: string
  readonly risingBelow?: boolean
}

export const FEATURES: readonly FeatureDefinition[] = [
  { id: FeatureId.silenceSurprise, name: 'silenceSurprise', code: 'UNUSUAL_SILENCE', doc: '−ln P(this many silent days | their login chance per day of the week)' },
  { id: FeatureId.daysInactive, name: 'daysInactive', code: 'DAYS_INACTIVE', doc: 'complete local days since the day of the last LOGIN (capped at 30)' },
  { id: FeatureId.fullWeek, name: 'fullWeek', code: 'FULL_WEEK', doc: '1 from the seventh silent day on' },
  { id: FeatureId.recentSurprise, name: 'recentSurprise', code: 'UNUSUAL_FOR_RECENT_RHYTHM', doc: 'the same surprise against their login chance in the week before the silence' },
  { id: FeatureId.loginRate, name: 'loginRate', code: 'LOGIN_RATE', doc: 'ln of their login chance per day before the silence' },
  { id: FeatureId.beyondLongestGap, name: 'beyondLongestGap', code: 'LONGEST_GAP_EXCEEDED', doc: 'silent days beyond their longest gap between logins in the 4 weeks before' },
  { id: FeatureId.loginTrend, name: 'loginTrend', code: 'LOGINS_FALLING', risingCode: 'LOGINS_RISING', risingBelow: false, doc: 'ln of (login days per day in their last week + 0.05) ÷ (the same in the 3 weeks before + 0.05)' },
  { id: FeatureId.viewDrop, name: 'viewDrop', code: 'VIEWS_FALLING', risingCode: 'VIEWS_RISING', risingBelow: true, doc: '1 − views in their last week ÷ their weekly views in the 3 weeks before (0 below 3 a week)' },
  { id: FeatureId.unfollowRatio, name: 'unfollowRatio', code: 'UNFOLLOWS', doc: 'unfollowRatio7d on the day of the last LOGIN (0 when undefined)' },
  { id: FeatureId.interactionDrop, name: 'interactionDrop', code: 'INTERACTIONS_FALLING', risingCode: 'INTERACTIONS_RISING', risingBelow: true, doc: 'like viewDrop for INTERACT (0 below 2 a week)' },
  // The risk of a silence does not grow in a straight line with its length: the first silent days
  // say more than the twentieth. With only the linear terms, the model ranked scored days slightly
  // worse than daysInactive alone on daily users (in-sample AUC 0.9679 against 0.9707 on a year of
  // them); with these two it ranks them better (0.9722).
  { id: FeatureId.logDaysInactive, name: 'logDaysInactive', code: 'DAYS_INACTIVE', doc: 'ln(1 + daysInactive): the bend of risk over the silence', partOf: FeatureId.daysInactive },
  { id: FeatureId.logSilenceSurprise, name: 'logSilenceSurprise', code: 'UNUSUAL_SILENCE', doc: 'ln(1 + silenceSurprise)', partOf: FeatureId.silenceSurprise },
  // A fall in consumption says something about churn only when it is steep: on every population
  // measured (first three silent days), scored days with views down 1–50% on the weeks before
  // churned no more often than those with none (weekly noise), while those down 70% or more
  // churned 2.5–120 times as often (daily users 1.6% against 0.65%; slow faders 5% against
  // 0.12%; the archetype simulator 38% against 0.3%). A straight line through both made the
  // prior's weight a compromise.
  { id: FeatureId.steepViewDrop, name: 'steepViewDrop', code: 'VIEWS_FALLING', doc: 'how far viewDrop is beyond 50%: max(0, viewDrop − 0.5) × 2', partOf: FeatureId.viewDrop },
  { id: FeatureId.steepInteractionDrop, name: 'steepInteractionDrop', code: 'INTERACTIONS_FALLING', doc: 'the same for interactionDrop', partOf: FeatureId.interactionDrop }
]

export const FEATURE_COUNT = FEATURES.length
export const FEATURES_BY_NAME: ReadonlyMap<string, FeatureDefinition> = new Map(FEATURES.map((f) => [f.name, f]))
/** Bumped when a feature's meaning changes; a model file of another set is refused. */
export const FEATURE_SET_VERSION = 4

/** Silent days after which the question "back within 30 days?" is answered for every scored day. */
export const QUESTION_DAYS = 30

// Spell record layout (int16 words at OFF_SPELL) and scales.
const W_DOW = 0 // 7 words: −ln(1 − q_w) × SURPRISE_SCALE, w = 0 (Monday) … 6 (Sunday)
const W_RECENT = 7 // −ln(1 − q7) × SURPRISE_SCALE
const W_RATE = 8 // ln q × RATE_SCALE
const W_GAP = 9 // longest gap, days
const W_TREND = 10 // × TREND_SCALE
const W_VIEW = 11 // × DROP_SCALE
const W_UNFOLLOW = 12
const W_INTERACT = 13
const W_OBSERVED = 14 // days of the 28-day window the state holds (the evidence behind the rhythm)
const W_REF_Z = 15 // the score logit × Z_SCALE of the silent day an earlierThan threshold's reference alerts on (REF_Z_NONE until scored)
/** W_REF_Z before that day is scored */
export const REF_Z_NONE = -32768
const SURPRISE_SCALE = 8192
const RATE_SCALE = 4096
const TREND_SCALE = 8192
const DROP_SCALE = 16384
/** No day is certain: a login chance is capped so one silent day weighs at most −ln(0.03) ≈ 3.5. */
const MAX_Q = 0.97
/** Prior weight, in days, of the population's login chance on a user's own, and of the user's on a weekday's. */
const SHRINK_USER = 2
const SHRINK_DOW = 3

/** Day of the week of a local epoch-day, 0 = Monday (epoch-day 0, 1970-01-01, was a Thursday). */
export function dayOfWeek (day: number): number {
  return ((day + 3) % 7 + 7) % 7
}

function word (s: UserState, i: number): number {
  return (s.words[OFF_SPELL + i] << 16) >> 16 // int16 stored in a Uint16Array
}

function put (s: UserState, i: number, v: number): void {
  const q = Math.round(v)
  s.words[OFF_SPELL + i] = (q > 32767 ? 32767 : q < -32768 ? -32768 : q) & 0xffff
}

function loggedIn (s: UserState, day: number): boolean {
  if (day > s.headDay || day <= s.headDay - 32) return false
  return (s.loginBits & (1 << (day % 32))) !== 0
}

function ringDay (s: UserState, offset: number, day: number): number {
  if (day > s.headDay || day <= s.headDay - COUNT_DAYS) return 0
  return s.words[offset + (day % COUNT_DAYS)]
}

/** 1 − last week ÷ weekly baseline over [L−27, L−7] ∩ days seen; 0 when the baseline is thin. */
function activityDrop (s: UserState, offset: number, L: number, from: number, minWeekly: number): number {
  let recent = 0
  let before = 0
  let beforeDays = 0
  for (let day = L - 6; day <= L; day++) recent += ringDay(s, offset, day)
  for (let day = Math.max(L - 27, from); day <= L - 7; day++) { before += ringDay(s, offset, day); beforeDays++ }
  if (beforeDays < 7) return 0
  const weekly = before * 7 / beforeDays
  if (weekly < minWeekly) return 0
  const drop = 1 - recent / weekly
  return drop < -1 ? -1 : drop
}

export interface SpellStart {
  /** the user's raw login share over the days seen (for the population's running mean), NaN under 14 days */
  rawRate: number
}

/**
 * Freezes the spell record of a user whose last LOGIN was on local day L = s.lastLoginDay.
 * `q0` is the population's login chance (the learner's running mean). Returns what the learner
 * folds into that mean.
 */
export function freezeSpell (s: UserState, q0: number, p: S.SignalParams): SpellStart {
  const L = s.lastLoginDay
  // The 28 days up to the last login, within what the state holds (login ring: 32 days).
  let from = L - 27
  if (s.firstDay !== NEVER_DAY && s.firstDay > from) from = s.firstDay
  if (s.headDay - 31 > from) from = s.headDay - 31
  const nDow = [0, 0, 0, 0, 0, 0, 0]
  const kDow = [0, 0, 0, 0, 0, 0, 0]
  let n = 0
  let k = 0
  let n7 = 0
  let k7 = 0
  let prev = from - 1
  let longest = 0
  for (let day = from; day <= L; day++) {
    const w = dayOfWeek(day)
    const hit = loggedIn(s, day) || day === L
    n++
    nDow[w]++
    if (day > L - 7) n7++
    if (!hit) continue
    k++
    kDow[w]++
    if (day > L - 7) k7++
    if (day - prev - 1 > longest) longest = day - prev - 1
    prev = day
  }
  const q = (k + SHRINK_USER * q0) / (n + SHRINK_USER)
  for (let w = 0; w < 7; w++) {
    const qw = Math.min(MAX_Q, (kDow[w] + SHRINK_DOW * q) / (nDow[w] + SHRINK_DOW))
    put(s, W_DOW + w, -Math.log(1 - qw) * SURPRISE_SCALE)
  }
  const q7 = Math.min(MAX_Q, (k7 + SHRINK_DOW * q) / (n7 + SHRINK_DOW))
  put(s, W_RECENT, -Math.log(1 - q7) * SURPRISE_SCALE)
  put(s, W_RATE, Math.log(Math.min(MAX_Q, q)) * RATE_SCALE)
  put(s, W_GAP, longest)
  const nb = n - n7
  const trend = nb >= 7 ? Math.log((k7 / n7 + 0.05) / ((k - k7) / nb + 0.05)) : 0
  put(s, W_TREND, trend * TREND_SCALE)
  put(s, W_VIEW, activityDrop(s, OFF_VIEW, L, from, 3) * DROP_SCALE)
  put(s, W_INTERACT, activityDrop(s, OFF_INTERACT, L, from, 2) * DROP_SCALE)
  const u = S.unfollowRatio(s, L, p)
  put(s, W_UNFOLLOW, (Number.isNaN(u) ? 0 : u > 1 ? 1 : u) * DROP_SCALE)
  put(s, W_OBSERVED, n)
  put(s, W_REF_Z, REF_Z_NONE)
  s.spellDay = L
  return { rawRate: n >= 14 ? k / n : Number.NaN }
}

/** The score logit × Z_SCALE the model gave on the silent day its earlierThan reference alerts on, REF_Z_NONE before it (learner.ts). */
export function spellRefZ (s: UserState): number { return word(s, W_REF_Z) }
export function setSpellRefZ (s: UserState, zQ: number): void { put(s, W_REF_Z, zQ < REF_Z_NONE + 1 ? REF_Z_NONE + 1 : zQ) }

/** Clears the spell record (a LOGIN ended the spell, or the user's state is new). */
export function clearSpell (s: UserState): void {
  s.spellDay = NEVER_DAY
  s.words.fill(0, OFF_SPELL, OFF_SPELL + SPELL_WORDS)
}

/** A drop past 50%, rescaled to 0–1: max(0, drop − 0.5) × 2 (steepViewDrop, steepInteractionDrop). */
function steep (drop: number): number { return drop > 0.5 ? 2 * (drop - 0.5) : 0 }

/**
 * The model inputs of silent day `d` of the user's frozen spell, written into `out` (FEATURE_COUNT
 * numbers, by FeatureId). No allocation: the engine calls this at every scored midnight and when
 * a label arrives.
 */
export function spellFeatures (s: UserState, d: number, out: Float64Array): void {
  const days = d > QUESTION_DAYS ? QUESTION_DAYS : d
  // Σ over the silent days L+1 … L+d of their weekday's surprise: whole weeks, then the rest.
  let week = 0
  for (let w = 0; w < 7; w++) week += word(s, W_DOW + w)
  const weeks = Math.floor(days / 7)
  let sum = weeks * week
  const first = dayOfWeek(s.spellDay + 1)
  for (let j = 0; j < days - weeks * 7; j++) sum += word(s, W_DOW + (first + j) % 7)
  out[FeatureId.silenceSurprise] = sum / SURPRISE_SCALE
  out[FeatureId.daysInactive] = days
  out[FeatureId.fullWeek] = days >= 7 ? 1 : 0
  out[FeatureId.recentSurprise] = days * word(s, W_RECENT) / SURPRISE_SCALE
  out[FeatureId.loginRate] = word(s, W_RATE) / RATE_SCALE
  const beyond = days - word(s, W_GAP)
  out[FeatureId.beyondLongestGap] = beyond > 0 ? beyond : 0
  out[FeatureId.loginTrend] = word(s, W_TREND) / TREND_SCALE
  out[FeatureId.viewDrop] = word(s, W_VIEW) / DROP_SCALE
  out[FeatureId.unfollowRatio] = word(s, W_UNFOLLOW) / DROP_SCALE
  out[FeatureId.interactionDrop] = word(s, W_INTERACT) / DROP_SCALE
  out[FeatureId.logDaysInactive] = Math.log1p(days)
  out[FeatureId.logSilenceSurprise] = Math.log1p(sum / SURPRISE_SCALE)
  out[FeatureId.steepViewDrop] = steep(out[FeatureId.viewDrop])
  out[FeatureId.steepInteractionDrop] = steep(out[FeatureId.interactionDrop])
}

/**
 * Days of the user's life before the silence that the spell record was built from (at most 28).
 * The learner learns only from spells built on two weeks or more: at the start of a deployment
 * every rhythm is a guess shrunk toward the population, and learning from those guesses would
 * teach the model what an unknown user looks like, not what a churner does.
 */
export const MIN_EVIDENCE_DAYS = 14
export function spellEvidenceDays (s: UserState): number {
  return word(s, W_OBSERVED)
}

/** The user's login chance per day before the silence, for reason texts. */
export function spellLoginRate (s: UserState): number {
  return Math.exp(word(s, W_RATE) / RATE_SCALE)
}

/** The longest gap between logins in the 4 weeks before the silence, for reason texts. */
export function spellLongestGap (s: UserState): number {
  return word(s, W_GAP)
}
