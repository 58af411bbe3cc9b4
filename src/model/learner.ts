import { EbbError, Errors } from '../errors.js'
import type { KvStore, StoreBatch } from '../state/kv-store.js'
import { metaKey } from '../state/keys.js'
import { NEVER_DAY, SPELL_MAX_NONE, UserState } from '../state/user-state.js'
import { zoneClock } from '../time/zones.js'
import type { ChurnModel } from './model.js'
import { FEATURE_COUNT, freezeSpell, MIN_EVIDENCE_DAYS, REF_Z_NONE, spellEvidenceDays, spellFeatures, spellRefZ } from './spell.js'
import type { SignalParams } from '../signals/signals.js'
import { RecentReferenceAlerts } from './recent-alerts.js'

/**
 * What one partition learns from its own stream (docs/churn-model.md, "Learning from the stream").
 *
 * The model is a logistic regression on the spell features (spell.ts). The shipped model file is
 * the prior: a Gaussian N(μ₀, Λ₀⁻¹) on the coefficients. Every scored day of every user gets its
 * label from the stream — a LOGIN within 30 days (stayed), or 30 silent days (churned) — and its
 * gradient and curvature go into a bucket of the day it was scored. A bucket is folded into the
 * model once it is 32 days old, when every day in it has its label whichever way it went: labels
 * that arrive early (stays, at the next LOGIN) wait for the late ones (churn, after 30 days), so
 * the model never sees a sample biased toward stayers. At each UTC midnight of stream time the
 * matured buckets take one Newton step on the posterior (Laplace approximation, old evidence
 * decaying by `decayPerDay`), so the model follows a population that changes, and starts from the
 * prior when it knows nothing.
 *
 * The alert threshold is chosen the same way, per partition and per day, from what the operator
 * asked for in the topology (ThresholdSpec): a fixed probability, a precision, an alert budget,
 * or "as many alerts as rule R" (the default: as many as inactive_7d, to the users most at risk).
 * For that, each scored day counts the thresholds its score crosses for the first time in the
 * spell (a model alert at that threshold), with the predicted probability, over recent days.
 *
 * Everything here runs inside the partition's synchronous loop, at points fixed by event time
 * (LOGIN events, midnight timers, UTC midnights of the watermark): a replay learns the same
 * numbers whatever its batch sizes and commit points, and the state is in the partition's store
 * (and so its changelog): a restart or a restore continues exactly.
 */
export type ThresholdSpec =
  | { kind: 'probability', value: number }
  | { kind: 'precision', value: number }
  | { kind: 'alertsPer1kUsersPerDay', value: number }
  | { kind: 'alertsLike', rule: string }
  | { kind: 'precisionLike', rule: string }
  | { kind: 'earlierThan', rule: string, allowance: number }

/** How a spec reads in an alert's reason and in GET /topology. */
export function thresholdSpecText (t: ThresholdSpec): string {
  switch (t.kind) {
    case 'probability': return `fixed at ${t.value}`
    case 'precision': return `set for a precision of ${Math.round(t.value * 100)}%`
    case 'alertsPer1kUsersPerDay': return `set for ${t.value} alerts per 1,000 users a day`
    case 'alertsLike': return `set to send as many alerts as ${t.rule}`
    case 'precisionLike': return `set to be as precise as ${t.rule}`
    case 'earlierThan': return `set to alert before ${t.rule} within ${+(t.allowance * 100).toFixed(2)} points of its precision`
  }
}

/** Score thresholds the controller chooses among: logits GRID_MIN, GRID_MIN + 1/8, …, GRID_MAX. */
const GRID_MIN = -8
const GRID_STEP = 0.125
const GRID = 129
/** The logit of grid threshold j. */
const gridLogit = (j: number): number => GRID_MIN + j * GRID_STEP
const GRID_MAX_LOGIT = gridLogit(GRID - 1)
/** z quantum of spellMax and of the grid comparisons */
export const Z_SCALE = 256
const GRID_MIN_Q = GRID_MIN * Z_SCALE
const GRID_STEP_Q = GRID_STEP * Z_SCALE
/** reference alerts (decayed) below which a relative threshold keeps the prior's */
const MIN_REFERENCE = 20
/** first crossings (decayed) below which a grid threshold's precision is not trusted */
const MIN_CROSSINGS = 5
/**
 * earlierThan: the reference's precision is estimated from its labelled alerts plus this many
 * pseudo-alerts that were right — high (a small budget of early alerts) until the stream says
 * otherwise, because a precision estimated too high only costs earliness, one too low precision.
 */
const REFERENCE_PRIOR_ALERTS = 20
/** earlierThan: short silences (decayed) of known users below which no early alert is sent */
const MIN_SHORT_SILENCES = 100
/** earlierThan: the most the threshold's logit falls in a day (four grid steps) */
const THRESHOLD_FALL = 0.5
/**
 * earlierThan: the veto may postpone at most this share of the reference's right alerts (labelled
 * by the stream: true churners under the veto can be more, docs/churn-model.md). A postponed
 * silence alerts when its score reaches the threshold, at the latest at twice the reference's
 * day (conditions.ts): a share of churners told later, by at most a week, not lost. At 10% the
 * postponed churners of weekly users outnumbered the ones told early and moved their median lead
 * past the rule's (by ten minutes on cadence-120d); at 5% it is not, and slow faders and the
 * archetype simulator give up 0.3 day of earliness (docs/churn-model.md).
 */
const VETO_RECALL = 0.05
/** earlierThan: a reference alert counts in the pending estimate of its precision from this many days after it was raised */
const PENDING_FOLLOW_DAYS = 7
/** days after a reference alert its label is known: 30 silent days after it (right), or a LOGIN before (wrong) */
const LABEL_AGE = 30
/**
 * earlierThan: the threshold is the lowest whose recent short silences, plus this many, fit the
 * room for early false alarms. Scanning down to the last threshold whose count fits picks one
 * where the count was lucky-low; where the room is a couple of alarms (a rule 95% right) that sent
 * several times the alarms allowed. The veto assumes one right alert more than seen for the same reason.
 */
const SHORT_SLACK = 1
/**
 * earlierThan: the share of the precision the veto is estimated to buy that early alerts may
 * spend. The estimate comes from the reference's alerts of the last weeks scored with today's
 * coefficients, and runs ahead of what the replays show where the population changes (its churn
 * coming in waves, its coefficients turning): spending all of it left the archetype simulator 2.5
 * points under the rule's precision (outside the 2 allowed), three quarters 1.0
 * (docs/churn-model.md, "The veto"). Chosen on the project's populations.
 */
const VETO_CREDIT = 0.75
const DAY_MS = 86_400_000
/** earlierThan: the silent days whose score change after a fold moves the short silences' statistics (followShortSilences) */
const SHORT_DAYS = 3

export interface LearningSettings {
  /** Λ₀ = priorStrength · I on the standardised coefficients: the prior weighs like this many samples of unit curvature */
  priorStrength: number
  /** evidence kept per day (Λ ← decay · Λ) */
  decayPerDay: number
  /** the curvature never decays below this share of the prior's */
  floor: number
  /** largest Newton step (Euclidean, standardised units); 0 freezes the prior (tests, A/B comparisons) */
  maxStep: number
  /** a bucket of scored days is folded when it is this many days old (≥ 31: every label known) */
  matureDays: number
  /** the threshold statistics keep this much per day */
  thresholdDecayPerDay: number
}

/**
 * A day's labelled days: gradient g and curvature h (upper triangle) of their log-likelihood at the
 * coefficients in force when each label arrived, and k = Σ h_i μ_i. A stay's label arrives at the
 * LOGIN, up to 30 days before the bucket is folded, when the coefficients have moved since: the
 * fold uses each day's quadratic approximation around its own coefficients, whose gradient at
 * today's μ is g + k − h μ, so a late fold is not a stale gradient.
 */
interface Bucket {
  g: Float64Array
  h: Float64Array
  k: Float64Array
  n: number
  y: number
  /**
   * The reference alerts of this day that have their label, right and wrong, by grid index
   * (earlierThan; `refGrid` = 2 × GRID per controller, empty when none). They wait for the
   * bucket to mature like the gradients: a wrong alert is known at the LOGIN, a right one only
   * 30 days after it, and counting each as it came made the first weeks' reference look wrong.
   */
  ref: Float64Array
  /**
   * earlierThan: the reference alerts of this day (one per controller), counted as they are
   * raised. Until the bucket matures, those without a wrong label yet are counted as right: an
   * estimate of the reference's precision that can only be too high (NaN: unknown, see
   * pendingReference).
   */
  fired: Float64Array
}

/**
 * One learned threshold. A relative one (alertsLike, precisionLike) is `warm` once its reference
 * rule has alerted MIN_REFERENCE times on the partition; until then — the first week or so of a
 * deployment, when no user has a rhythm Ebb knows and the reference has nothing to compare with —
 * the model rule alerts exactly when the reference would (its daysInactive threshold, `refDays`),
 * so a new deployment is never worse than the rule it is measured against.
 */
export interface Controller {
  spec: ThresholdSpec
  /** the reference rule's index in the topology (to count its alerts) and its slot (what is stored: stable when rules are reordered) */
  refIndex: number
  refSlot: number
  refDays: number
  ref: number
  refP: number
  theta: number
  warm: boolean
  /** earlierThan: the logit under which the model does not alert with its reference (−∞: it always does) */
  veto: number
  /** earlierThan: silences that ended before the reference alerted, by the highest grid threshold their score reached (decayed) */
  short: Float64Array
  /** earlierThan: the reference's alerts labelled right (30 silent days followed) and wrong (a LOGIN came first), by the grid threshold at or below their score (decayed) */
  refT: Float64Array
  refF: Float64Array
  /**
   * earlierThan: the reference's alerts of the last weeks (RecentReferenceAlerts), by the grid
   * threshold at or below the score today's coefficients give them on the reference's day, less
   * the drift: a week old or more with no LOGIN yet (counted right), those a LOGIN proved wrong,
   * and of those the ones a veto would hold back for good (no day of their silence reached the
   * threshold, and it ended before twice the reference's day). Weighted by the model's memory;
   * rebuilt daily.
   */
  vetoT: Float64Array
  vetoF: Float64Array
  vetoGone: Float64Array
  /** earlierThan: the recent alerts a veto cannot hold back (users the model does not alert early for yet), weighted alike: they count in the total only */
  vetoOthers: number
  /**
   * earlierThan: of the recent right alerts (as vetoT), those whose silence reached today's
   * threshold before the reference's day: the churners the model tells early. The veto may hold
   * back no more right alerts than this (chooseEarlierThan). Rebuilt daily.
   */
  vetoEarly: number
  /**
   * earlierThan: for a reference alert a days old with no LOGIN yet, the chance it stays right
   * (no LOGIN before its 30th day), from the recent alerts' returns (Kaplan–Meier; ages the
   * recent alerts have not shown enough of count no return). Rebuilt daily with the veto's statistics.
   */
  stayRight: Float64Array
  /**
   * earlierThan: the learner's day the first short silence was counted (NaN before; −∞ in a state
   * written before it was kept). The early-alert statistics start then: the reference's alerts
   * count in `ref` from that day, so that the room for early false alarms (`ref` × a share) and the
   * short silences that spend it cover the same days, and no threshold is chosen before they
   * have run `refDays` days (chooseEarlierThan).
   */
  since: number
}

/** Logistic function and its inverse, the only place they are written. */
export function sigmoid (z: number): number { return 1 / (1 + Math.exp(-z)) }
export function logit (p: number): number { return Math.log(p / (1 - p)) }

const CORE_KEY = metaKey('learner')
const bucketKey = (day: number): Buffer => metaKey(`learner-b${day}`)
/**
 * 1: controllers of 5 numbers; 2: and the earlierThan statistics (veto, short, refT, refF); 3: the
 * same, their scores relative to the intercept's drift (a version-2 state's are shifted on load,
 * and so are its buckets' reference labels); 4: and the day those statistics started
 */
const CORE_VERSION = 4
const CONTROLLER_V1 = 5
const CONTROLLER_V2 = 6 + 3 * GRID
/** 4: and the day the earlierThan statistics started (Controller.since) */
const CONTROLLER_V3 = CONTROLLER_V2 + 1

export class ChurnLearner {
  readonly m: number
  readonly mu: Float64Array
  readonly lam: Float64Array
  private readonly x = new Float64Array(FEATURE_COUNT)
  private readonly xs: Float64Array
  private readonly contributions = new Float64Array(FEATURE_COUNT)
  private readonly explained = { contributions: this.contributions, features: this.x }
  /** UTC epoch-day of the last midnight rolled, NaN before the first */
  day = Number.NaN
  private readonly buckets = new Map<number, Bucket>()
  private readonly dirtyBuckets = new Set<number>()
  private readonly foldedBuckets: number[] = []
  /** first crossings per grid threshold, and the sum of their probabilities; scored days (decayed) */
  readonly crossings = new Float64Array(GRID)
  readonly crossingP = new Float64Array(GRID)
  scored = 0
  readonly controllers: Controller[]
  /** the population's login chance per day: a decayed mean over spell starts (spell.ts shrinks toward it) */
  q0Sum: number
  q0Weight: number
  /** lifetime counters (GET /topology, metrics, eval) */
  examples = 0
  churnExamples = 0
  /** the silent day whose score the spell record keeps (spellRefZ): the first earlierThan threshold's reference day, else −1 */
  readonly refRecordDay: number
  /** numbers per bucket for the reference alerts' labels: 2 × GRID per controller when any is earlierThan, else 0 */
  private readonly refGrid: number
  folds = 0
  private dirty = false
  /** earlierThan: the reference's recent alerts with their spell records (the veto's statistics) */
  readonly recent = new RecentReferenceAlerts()
  /** a user state that holds a recent alert's spell record (all spellFeatures reads), to score it */
  private readonly scratch = new UserState('', zoneClock('UTC'))

  constructor (readonly model: ChurnModel, specs: ReadonlyArray<{ spec: ThresholdSpec, refIndex: number, refDays: number, refSlot?: number }>) {
    const prior = model.prior
    this.m = FEATURE_COUNT + 1
    this.mu = Float64Array.from(prior.mu)
    this.lam = new Float64Array(this.m * this.m)
    for (let i = 0; i < this.m; i++) this.lam[i * this.m + i] = prior.learning.priorStrength
    this.xs = new Float64Array(this.m)
    this.controllers = specs.map(({ spec, refIndex, refDays, refSlot }) => ({
      spec, refIndex, refSlot: refSlot ?? refIndex, refDays, ref: 0, refP: 0, theta: initialTheta(spec, prior.thresholdLogit), warm: refIndex < 0,
      veto: Number.NEGATIVE_INFINITY, short: new Float64Array(GRID), refT: new Float64Array(GRID), refF: new Float64Array(GRID),
      vetoT: new Float64Array(GRID), vetoF: new Float64Array(GRID), vetoGone: new Float64Array(GRID), vetoOthers: 0, vetoEarly: 0, stayRight: new Float64Array(LABEL_AGE + 1).fill(1),
      since: Number.NaN
    }))
    this.q0Sum = prior.loginRate
    this.q0Weight = 1
    this.refRecordDay = this.controllers.find((c) => c.spec.kind === 'earlierThan')?.refDays ?? -1
    this.refGrid = this.controllers.some((c) => c.spec.kind === 'earlierThan') ? 2 * GRID * this.controllers.length : 0
  }

  /**
   * How far the learned intercept has moved from the prior's, × Z_SCALE, rounded. The earlierThan
   * statistics record scores relative to it (a score minus the drift when it was recorded): when
   * the stream moves the intercept (it learns its population's churn rate, typically in the weeks
   * after the first labels mature), every score moves with it, and a threshold chosen from scores
   * recorded before would be crossed far more often than they say.
   */
  driftQ (): number { return Math.round((this.mu[0] - this.model.prior.mu[0]) * Z_SCALE) }

  /** The population's login chance (the shrinkage target of every user's rhythm). */
  get q0 (): number { return this.q0Sum / this.q0Weight }

  /** Freezes a user's new spell record, and folds their login share into the population's. */
  freeze (s: UserState, p: SignalParams): void {
    const { rawRate } = freezeSpell(s, this.q0, p)
    if (!Number.isNaN(rawRate)) { this.q0Sum += rawRate; this.q0Weight += 1; this.dirty = true }
  }

  /** Standardised inputs (with the intercept first) of silent day d of the user's spell, in xs. */
  private inputs (s: UserState, d: number): Float64Array {
    spellFeatures(s, d, this.x)
    const xs = this.xs
    const mean = this.model.prior.mean
    const inv = this.model.prior.invStd
    xs[0] = 1
    for (let i = 0; i < FEATURE_COUNT; i++) xs[i + 1] = (this.x[i] - mean[i]) * inv[i]
    return xs
  }

  /** The score logit of silent day d of the user's spell, with today's coefficients. */
  z (s: UserState, d: number): number {
    const xs = this.inputs(s, d)
    let z = 0
    for (let i = 0; i < this.m; i++) z += this.mu[i] * xs[i]
    return z
  }

  /**
   * Each input's share of the logit (coefficient × standardised value), intercept excluded; and
   * the raw features. The learner's own buffers: valid until its next call (an alert reads them
   * at once).
   */
  explain (s: UserState, d: number): { contributions: Float64Array, features: Float64Array } {
    const xs = this.inputs(s, d)
    const c = this.contributions
    for (let i = 0; i < FEATURE_COUNT; i++) c[i] = this.mu[i + 1] * xs[i + 1]
    return this.explained
  }

  /**
   * A scored day: counts the thresholds its score crosses for the first time in the spell (those
   * a model alert would fire at), with its probability. `prevQ` and `zQ` are z × Z_SCALE, rounded.
   */
  scoredDay (prevQ: number, zQ: number, p: number): void {
    this.scored++
    this.dirty = true
    countCrossings(prevQ, zQ, p, this.crossings, this.crossingP)
  }

  /** An alert of rule `ruleIndex` (a reference of a relative threshold), with the model's probability for that user then. */
  referenceAlert (ruleIndex: number, p: number): void {
    for (const c of this.controllers) {
      if (c.refIndex !== ruleIndex) continue
      // earlierThan: the room for early false alarms counts the alerts of the days its short silences do
      if (c.spec.kind === 'earlierThan' && Number.isNaN(c.since)) continue
      c.ref++
      if (!Number.isNaN(p)) c.refP += p
      if (c.ref >= MIN_REFERENCE) c.warm = true
      this.dirty = true
    }
  }

  /**
   * A user's silence ends with a LOGIN (before the spell is cleared). For each earlierThan
   * threshold: a silence that ended before its reference alerted is where an early alert would
   * have been a false alarm the reference never raised — counted at the highest grid threshold its
   * score reached; one that ended after the reference alerted, before that alert's 30 days, made
   * the reference's alert wrong. Short silences count only for users the model alerts early for
   * (`known`: MIN_EVIDENCE_DAYS of their life): an unknown user's score is shrunk toward the
   * population's, and counting those underestimated how often known users' scores cross (a
   * deployment's first weeks then sent five times the early false alarms allowed).
   */
  silenceEnded (s: UserState, known: boolean): void {
    if (s.spellDay === NEVER_DAY) return
    for (const c of this.controllers) {
      if (c.spec.kind !== 'earlierThan') continue
      const r = c.refDays
      if (s.spellScored <= r) {
        if (known && s.spellMax > SPELL_MAX_NONE) {
          const top = gridIndexAtOrBelow(s.spellMax - this.driftQ())
          if (top >= 0) {
            c.short[top]++
            if (Number.isNaN(c.since)) c.since = this.day
            this.dirty = true
          }
        }
      } else if (s.spellFirst <= r && s.spellResolved <= r) {
        this.refLabelled(c, s, false)
        // A day with nothing filed is from before the recent alerts were kept: no alert to label.
        const day = this.alertDay(s, r)
        if (this.recent.has(day)) this.recent.add(day, c.refSlot, true, known, s)
      }
    }
  }

  /** Silent day `k` of the user's spell got its label "churned" (30 silent days after it): the reference's alert on that day, if any, was right. */
  churnedDay (s: UserState, k: number): void {
    for (const c of this.controllers) if (c.spec.kind === 'earlierThan' && c.refDays === k) this.refLabelled(c, s, true)
  }

  /** Silent day `k` of the user's spell was scored: the reference's alert on that day, if any, is counted in its day's bucket (Bucket.fired). */
  refScored (s: UserState, k: number): void {
    for (let i = 0; i < this.controllers.length; i++) {
      const c = this.controllers[i]
      if (c.spec.kind !== 'earlierThan' || c.refDays !== k) continue
      const day = this.alertDay(s, k)
      this.bucketOf(day).fired[i]++
      this.recent.add(day, c.refSlot, false, spellEvidenceDays(s) >= MIN_EVIDENCE_DAYS, s)
    }
  }

  /** The UTC day of the reference's alert on silent day k of the user's spell (the day of its bucket). */
  private alertDay (s: UserState, k: number): number { return Math.floor(s.zone.startOfDay(s.spellDay + 1 + k) / DAY_MS) }

  /**
   * A labelled reference alert, at the grid threshold at or below the score the model gave on its
   * day (kept in the spell record; recomputed with today's coefficients for a state written
   * before it was kept) less the drift when the label comes, into the bucket of the UTC day it was
   * raised: counted when that matures (Bucket.ref). Only the totals count now, in the reference's
   * precision p and the veto's gate; the veto's own statistics are the recent alerts rescored
   * every day (vetoStatistics). The grid is kept: it is what the stored state holds.
   */
  private refLabelled (c: Controller, s: UserState, right: boolean): void {
    const stored = c.refDays === this.refRecordDay ? spellRefZ(s) : REF_Z_NONE
    const j = gridIndexAtOrBelow((stored !== REF_Z_NONE ? stored : Math.round(this.z(s, c.refDays) * Z_SCALE)) - this.driftQ())
    const b = this.bucketOf(this.alertDay(s, c.refDays))
    b.ref[2 * GRID * this.controllers.indexOf(c) + (right ? 0 : GRID) + (j < 0 ? 0 : j)]++
  }

  /** The daysInactive at which an earlierThan threshold alerts with its reference (unless vetoed), else NaN. */
  latestDays (k: number): number {
    const c = this.controllers[k]
    return c.spec.kind === 'earlierThan' ? c.refDays : Number.NaN
  }

  /** The probability under which an earlierThan threshold does not alert with its reference but later (0: it always does). */
  vetoBelow (k: number): number {
    const c = this.controllers[k]
    return c.veto === Number.NEGATIVE_INFINITY ? 0 : sigmoid(c.veto)
  }

  /** Whether any threshold counts alerts of this rule. */
  isReference (ruleIndex: number): boolean {
    for (const c of this.controllers) if (c.refIndex === ruleIndex) return true
    return false
  }

  /**
   * A labelled day: silent day d of the user's spell, scored at instant `scoredAt`, churned (y = 1)
   * or not. Its gradient and curvature wait in the bucket of its UTC day until that matures.
   */
  label (s: UserState, d: number, scoredAt: number, y: 0 | 1): void {
    const xs = this.inputs(s, d)
    let z = 0
    for (let i = 0; i < this.m; i++) z += this.mu[i] * xs[i]
    const p = sigmoid(z)
    const day = Math.floor(scoredAt / DAY_MS)
    const b = this.bucketOf(day)
    const r = y - p
    const w = p * (1 - p)
    const m = this.m
    const wz = w * z
    for (let i = 0; i < m; i++) {
      b.g[i] += r * xs[i]
      b.k[i] += wz * xs[i]
      const wi = w * xs[i]
      for (let k = i; k < m; k++) b.h[i * m + k] += wi * xs[k]
    }
    b.n++
    b.y += y
    this.examples++
    this.churnExamples += y
    this.dirty = true
  }

  private bucketOf (day: number): Bucket {
    let b = this.buckets.get(day)
    if (b === undefined) {
      b = { g: new Float64Array(this.m), h: new Float64Array(this.m * this.m), k: new Float64Array(this.m), n: 0, y: 0, ref: new Float64Array(this.refGrid), fired: new Float64Array(this.refGrid === 0 ? 0 : this.controllers.length) }
      this.buckets.set(day, b)
    }
    this.dirtyBuckets.add(day)
    return b
  }

  /**
   * Stream time passed UTC midnight `toDay` × 1 day: every midnight since the last one folds the
   * buckets that matured, decays old evidence and the threshold statistics, and re-chooses the
   * thresholds.
   */
  roll (toDay: number): void {
    if (Number.isNaN(this.day)) { this.day = toDay; this.dirty = true; return }
    while (this.day < toDay) {
      this.day++
      this.fold(this.day - this.model.prior.learning.matureDays)
      this.decay()
      this.choose()
    }
    this.dirty = true
  }

  /** Folds every bucket scored on or before `upTo`: one Newton step on the posterior. */
  private fold (upTo: number): void {
    const m = this.m
    const G = new Float64Array(m)
    const H = new Float64Array(m * m)
    const K = new Float64Array(m)
    let n = 0
    const days = [...this.buckets.keys()].filter((d) => d <= upTo).sort((a, b) => a - b)
    for (const d of days) {
      const b = this.buckets.get(d) as Bucket
      for (let i = 0; i < m; i++) { G[i] += b.g[i]; K[i] += b.k[i] }
      for (let i = 0; i < m * m; i++) H[i] += b.h[i]
      n += b.n
      if (b.ref.length === this.refGrid) {
        this.controllers.forEach((c, k) => {
          if (c.spec.kind !== 'earlierThan') return
          const o = 2 * GRID * k
          for (let j = 0; j < GRID; j++) { c.refT[j] += b.ref[o + j]; c.refF[j] += b.ref[o + GRID + j] }
        })
      }
      this.buckets.delete(d)
      this.dirtyBuckets.delete(d)
      this.foldedBuckets.push(d)
    }
    const lam = this.lam
    if (n > 0 && this.model.prior.learning.maxStep > 0) {
      // H holds the upper triangle: mirror it, then A = Λ + H.
      for (let i = 0; i < m; i++) for (let k = i + 1; k < m; k++) H[k * m + i] = H[i * m + k]
      const A = new Float64Array(m * m)
      for (let i = 0; i < m * m; i++) A[i] = lam[i] + H[i]
      // The data's gradient at today's μ: g + k − H μ (see Bucket).
      const grad = new Float64Array(m)
      for (let i = 0; i < m; i++) {
        let hmu = 0
        for (let j = 0; j < m; j++) hmu += H[i * m + j] * this.mu[j]
        grad[i] = G[i] + K[i] - hmu
      }
      const step = solve(A, grad, m)
      let norm = 0
      for (let i = 0; i < m; i++) norm += step[i] * step[i]
      norm = Math.sqrt(norm)
      const max = this.model.prior.learning.maxStep
      const scale = norm > max ? max / norm : 1
      const before = this.refGrid > 0 ? this.earlyScores() : null
      const interceptBefore = this.mu[0]
      for (let i = 0; i < m; i++) this.mu[i] += scale * step[i]
      lam.set(A)
      this.folds++
      if (before !== null) this.followShortSilences(before, interceptBefore)
    }
  }

  /** Today's score logits of the recent reference alerts' silences on their first days (SHORT_DAYS), in order. */
  private earlyScores (): Float64Array {
    const out: number[] = []
    this.recent.forEach(this.scratch, (e) => {
      if (e.wrong) return // the alert's second entry: the same silence
      for (let d = 1; d <= SHORT_DAYS; d++) out.push(this.z(this.scratch, d))
    })
    return Float64Array.from(out)
  }

  /**
   * After a fold: the short silences were recorded with the coefficients of their days, relative
   * to the intercept's drift. Where the slopes moved too, their scores under today's coefficients
   * are elsewhere, and a threshold chosen on them lets through more (or fewer) early alarms than
   * they say until new ones are recorded. So the statistics move by the mean change the fold gave
   * the first silent days of the rule's recent alerts, less the intercept's: the silences the
   * learner has records of (docs/churn-model.md, "Scores relative to the intercept").
   */
  private followShortSilences (before: Float64Array, interceptBefore: number): void {
    const after = this.earlyScores()
    if (after.length === 0 || after.length !== before.length) return
    let sum = 0
    for (let i = 0; i < after.length; i++) sum += after[i] - before[i]
    const slopes = sum / after.length - (this.mu[0] - interceptBefore)
    const by = Math.round(slopes / GRID_STEP)
    if (by === 0) return
    for (const c of this.controllers) if (c.spec.kind === 'earlierThan') shiftGrid(c.short, 0, -by)
  }

  private decay (): void {
    const { decayPerDay, floor, priorStrength, thresholdDecayPerDay } = this.model.prior.learning
    const m = this.m
    const minDiag = floor * priorStrength
    for (let i = 0; i < m * m; i++) this.lam[i] *= decayPerDay
    for (let i = 0; i < m; i++) if (this.lam[i * m + i] < minDiag) this.lam[i * m + i] = minDiag
    for (let j = 0; j < GRID; j++) { this.crossings[j] *= thresholdDecayPerDay; this.crossingP[j] *= thresholdDecayPerDay }
    this.scored *= thresholdDecayPerDay
    for (const c of this.controllers) {
      c.ref *= thresholdDecayPerDay; c.refP *= thresholdDecayPerDay
      // The reference's labels are few (one per alert, 30 days late): they keep the model's
      // memory (decayPerDay), not the threshold statistics' two weeks.
      if (c.spec.kind === 'earlierThan') for (let j = 0; j < GRID; j++) { c.short[j] *= thresholdDecayPerDay; c.refT[j] *= decayPerDay; c.refF[j] *= decayPerDay }
    }
  }

  /** Re-chooses every threshold from the recent statistics (the prior's until there are enough). */
  private choose (): void {
    if (this.refGrid > 0) this.vetoStatistics()
    this.controllers.forEach((c, i) => {
      if (c.spec.kind !== 'earlierThan') { c.theta = chooseTheta(c, this.crossings, this.crossingP, this.scored); return }
      const [fired, wrong, right] = this.pendingReference(i)
      chooseEarlierThan(c, fired, wrong, this.driftQ() / Z_SCALE, right, this.day - c.since)
    })
  }

  /**
   * Rebuilds each earlierThan controller's veto statistics (Controller.vetoT) from the recent
   * reference alerts a week old or more: each scored with today's coefficients on the
   * reference's day, less the drift, and weighted by the model's memory from a week after the
   * alert. Those without a LOGIN yet count as right, those with one as wrong; a wrong one is held
   * back for good by a veto only when no day of its silence reached today's threshold (on or
   * before the reference's day the model alerts anyway, after it a postponed alert comes back)
   * and it ended before twice the reference's day. Alerts of users the model does not alert early
   * for cannot be held back: they count in the total only.
   */
  private vetoStatistics (): void {
    this.recent.expire(this.day)
    const bySlot = new Map<number, Controller>()
    for (const c of this.controllers) {
      c.vetoT.fill(0); c.vetoF.fill(0); c.vetoGone.fill(0); c.vetoOthers = 0; c.vetoEarly = 0
      if (c.spec.kind === 'earlierThan') bySlot.set(c.refSlot, c)
    }
    const decay = this.model.prior.learning.decayPerDay
    const dq = this.driftQ()
    const x = this.scratch
    // Kaplan–Meier of the reference alerts' returns by age: at risk (a difference array) and returned, per age.
    const atRisk = new Map<Controller, Float64Array>()
    const returned = new Map<Controller, Float64Array>()
    for (const c of bySlot.values()) { atRisk.set(c, new Float64Array(LABEL_AGE + 1)); returned.set(c, new Float64Array(LABEL_AGE)) }
    this.recent.forEach(x, (e) => {
      const c = bySlot.get(e.slot)
      if (c === undefined) return
      const age = this.day - e.day
      // the returns by age, every alert (the survival estimate of pending alerts, stayRight)
      const seen = Math.min(LABEL_AGE, age)
      const risk = atRisk.get(c) as Float64Array
      if (!e.wrong) { risk[0] += 1; risk[seen] -= 1 } else {
        // The alert's day scored silent day r (spellScored r + 1); a LOGIN j days later leaves r + 1 + j.
        // (a LOGIN dated on the day of the look, local and UTC days apart, counts on the day before)
        const returnedAt = Math.min(Math.max(0, e.scored - c.refDays - 1), Math.max(0, seen - 1))
        if (returnedAt < LABEL_AGE) {
          (returned.get(c) as Float64Array)[returnedAt] += 1
          if (returnedAt + 1 < seen) { risk[returnedAt + 1] -= 1; risk[seen] += 1 }
        }
      }
      if (age < PENDING_FOLLOW_DAYS) return
      const w = Math.pow(decay, age - PENDING_FOLLOW_DAYS)
      if (!e.known) { if (!e.wrong) c.vetoOthers += w; return }
      const r = c.refDays
      const j = Math.max(0, gridIndexAtOrBelow(Math.round(this.z(x, r) * Z_SCALE) - dq))
      const thetaQ = Math.round(c.theta * Z_SCALE)
      // told early: its silence reached the threshold before the reference's day
      let early = false
      for (let d = 0; !early && d < r; d++) early = Math.round(this.z(x, d) * Z_SCALE) >= thetaQ
      if (!e.wrong) { c.vetoT[j] += w; if (early) c.vetoEarly += w; return }
      // filed as an alert a week ago, counted right above: it moves to the wrong ones
      c.vetoT[j] -= w
      c.vetoF[j] += w
      if (early) c.vetoEarly -= w
      // back: a day of its silence reached the threshold (before the reference's day: early, above)
      let back = early || e.scored > 2 * r
      for (let d = r; !back && d < e.scored; d++) back = Math.round(this.z(x, d) * Z_SCALE) >= thetaQ
      if (!back) c.vetoGone[j] += w
    })
    // A wrong label whose alert was not filed (a day the user's timer skipped) has none to move from.
    for (const c of this.controllers) { for (let j = 0; j < GRID; j++) if (c.vetoT[j] < 0) c.vetoT[j] = 0; if (c.vetoEarly < 0) c.vetoEarly = 0 }
    // Kaplan–Meier: the chance an alert still silent at age a stays silent to LABEL_AGE; an age
    // with fewer than MIN_REFERENCE alerts seen through it counts no return (too high: the safe side).
    for (const c of bySlot.values()) {
      const risk = atRisk.get(c) as Float64Array
      const ret = returned.get(c) as Float64Array
      let n = 0
      const h = new Float64Array(LABEL_AGE)
      for (let a = 0; a < LABEL_AGE; a++) { n += risk[a]; h[a] = n >= MIN_REFERENCE ? Math.min(1, ret[a] / n) : 0 }
      c.stayRight[LABEL_AGE] = 1
      for (let a = LABEL_AGE - 1; a >= 0; a--) c.stayRight[a] = c.stayRight[a + 1] * (1 - h[a])
    }
  }

  /** An ERASE: the user's recent reference alerts go (the rest of the learner holds no one's data, only sums). */
  forget (userId: string): void { this.recent.forget(userId) }

  /**
   * Controller i's reference alerts of the buckets not matured yet, raised PENDING_FOLLOW_DAYS ago
   * or more (Bucket.fired), how many of them a LOGIN proved wrong already, and how many of the
   * others are expected right (each with Controller.stayRight of its age, from the last veto statistics). A bucket whose
   * count is unknown (NaN: written before alerts were counted, or by another topology) is left
   * out; one with more wrong labels than counted alerts (a day the user's timer skipped) counts
   * no more wrong than alerts.
   */
  pendingReference (i: number): [number, number, number] {
    let fired = 0
    let wrong = 0
    let right = 0
    const o = 2 * GRID * i + GRID
    const stay = this.controllers[i].stayRight
    for (const [d, b] of this.buckets) {
      if (this.day - d < PENDING_FOLLOW_DAYS || b.fired.length === 0 || Number.isNaN(b.fired[i])) continue
      let w = 0
      for (let j = 0; j < GRID; j++) w += b.ref[o + j]
      const bw = Math.min(b.fired[i], w)
      fired += b.fired[i]
      wrong += bw
      right += (b.fired[i] - bw) * (stay.length === 0 ? 1 : stay[Math.min(LABEL_AGE, this.day - d)])
    }
    return [fired, wrong, right]
  }

  /** The probability threshold of controller k today (above every score while a relative one with no daysInactive reference warms up). */
  threshold (k: number): number {
    const c = this.controllers[k]
    return c.warm || !Number.isNaN(c.refDays) ? sigmoid(c.theta) : Number.POSITIVE_INFINITY
  }

  /**
   * When the model rule should alert like its reference for this user: while controller k warms
   * up, and for a user whose spell rests on less than MIN_EVIDENCE_DAYS of their life (a user
   * Ebb does not know yet) — the reference's daysInactive threshold; else NaN (use the score).
   */
  fallbackDays (k: number, s: UserState): number {
    const c = this.controllers[k]
    if (!c.warm) return c.refDays
    if (!Number.isNaN(c.refDays) && s.spellDay !== NEVER_DAY && spellEvidenceDays(s) < MIN_EVIDENCE_DAYS) return c.refDays
    return Number.NaN
  }

  /** Whether controller k is still warming up (its reference has not alerted enough yet). */
  warming (k: number): boolean { return !this.controllers[k].warm }
  thetaOf (k: number): number { return this.controllers[k].theta }

  /** Writes what changed since the last commit into the store batch. */
  drain (batch: StoreBatch): void {
    for (const d of this.foldedBuckets) batch.del(bucketKey(d))
    this.recent.drain(batch)
    for (const d of this.dirtyBuckets) batch.put(bucketKey(d), encodeBucket(this.buckets.get(d) as Bucket, d, this.m))
    if (this.dirty || this.foldedBuckets.length > 0 || this.dirtyBuckets.size > 0) batch.put(CORE_KEY, this.encodeCore())
  }

  committed (): void {
    this.recent.committed()
    this.foldedBuckets.length = 0
    this.dirtyBuckets.clear()
    this.dirty = false
  }

  /** Loads what a previous run committed; a learner of another prior (a new model file) starts over. */
  async load (store: KvStore): Promise<void> {
    const [core] = await store.getMany([CORE_KEY])
    this.recent.load(store)
    const decoded = core === undefined ? null : this.decodeCore(core)
    // Another prior's learner starts over, and a topology with no earlierThan keeps no recent
    // alerts: they go at the next commit.
    if (decoded === null || this.refGrid === 0) this.recent.dropAll()
    if (decoded === null) return
    const { days, version } = decoded
    const values = await store.getMany(days.map(bucketKey))
    values.forEach((v, i) => {
      if (v === undefined) throw new EbbError(Errors.STATE_CORRUPT, `the churn model's bucket of day ${days[i]} is missing`)
      const { bucket, legacy } = decodeBucket(v, this.m, this.refGrid, this.controllers.length)
      this.buckets.set(days[i], bucket)
      // A bucket written before the alerts were counted holds absolute scores: shifted once, and
      // written back at the next commit (with the version-3 core), its count of alerts unknown.
      if (legacy) {
        for (let o = 0; o < bucket.ref.length; o += GRID) shiftGrid(bucket.ref, o, this.legacyShift)
        this.dirtyBuckets.add(days[i])
        this.dirty = true
      }
    })
    // After a version-2 state, the alerts of the days before are not counted: a bucket those days
    // get later (a label of an alert raised before) must not count as one that saw no alert.
    if (version === 2 && this.refGrid > 0) {
      for (let d = this.day - this.model.prior.learning.matureDays + 1; d <= this.day; d++) this.bucketOf(d).fired.fill(Number.NaN)
    }
  }

  private encodeCore (): Buffer {
    const m = this.m
    const days = [...this.buckets.keys()].sort((a, b) => a - b)
    const n = 12 + m + m * m + 2 * GRID + CONTROLLER_V3 * this.controllers.length + days.length
    const f = new Float64Array(n)
    let o = 0
    f[o++] = CORE_VERSION
    f[o++] = m
    f[o++] = GRID
    f[o++] = this.controllers.length
    f[o++] = days.length
    f[o++] = this.day
    f[o++] = this.scored
    f[o++] = this.q0Sum
    f[o++] = this.q0Weight
    f[o++] = this.examples
    f[o++] = this.churnExamples
    f[o++] = this.folds
    f.set(this.mu, o); o += m
    f.set(this.lam, o); o += m * m
    f.set(this.crossings, o); o += GRID
    f.set(this.crossingP, o); o += GRID
    for (const c of this.controllers) {
      f[o++] = c.refSlot; f[o++] = c.ref; f[o++] = c.refP; f[o++] = c.theta; f[o++] = c.warm ? 1 : 0; f[o++] = c.veto
      f.set(c.short, o); o += GRID
      f.set(c.refT, o); o += GRID
      f.set(c.refF, o); o += GRID
      f[o++] = c.since
    }
    for (const d of days) f[o++] = d
    const hash = Buffer.from(this.model.file.sha256, 'hex')
    return Buffer.concat([hash, Buffer.from(f.buffer, f.byteOffset, f.byteLength)])
  }

  /** Returns the bucket days to load, or null when the stored learner belongs to another model. */
  private decodeCore (buf: Buffer): { days: number[], version: number } | null {
    const hash = buf.subarray(0, 32).toString('hex')
    if (hash !== this.model.file.sha256) return null
    const body = buf.subarray(32)
    const f = new Float64Array(body.length / 8)
    for (let i = 0; i < f.length; i++) f[i] = body.readDoubleLE(i * 8)
    let o = 0
    const bad = (what: string): never => { throw new EbbError(Errors.STATE_CORRUPT, `the churn model's learned state: ${what}`) }
    const version = f[o++]
    if (version !== 1 && version !== 2 && version !== 3 && version !== CORE_VERSION) bad(`version ${version}`)
    const per = version === 1 ? CONTROLLER_V1 : version === CORE_VERSION ? CONTROLLER_V3 : CONTROLLER_V2
    const m = f[o++]
    const grid = f[o++]
    const nc = f[o++]
    const nd = f[o++]
    if (m !== this.m || grid !== GRID) bad(`holds ${m} coefficients and ${grid} thresholds, this Ebb ${this.m} and ${GRID}`)
    if (f.length !== 12 + m + m * m + 2 * GRID + per * nc + nd) bad(`${f.length} numbers`)
    this.day = f[o++]
    this.scored = f[o++]
    this.q0Sum = f[o++]
    this.q0Weight = f[o++]
    this.examples = f[o++]
    this.churnExamples = f[o++]
    this.folds = f[o++]
    this.mu.set(f.subarray(o, o + m)); o += m
    this.lam.set(f.subarray(o, o + m * m)); o += m * m
    this.crossings.set(f.subarray(o, o + GRID)); o += GRID
    this.crossingP.set(f.subarray(o, o + GRID)); o += GRID
    // Thresholds of the same reference rule continue; a changed topology starts the others over.
    // (A version-1 state has no earlierThan statistics: they start from zero.)
    // (A state before version 4 did not keep when the statistics started: they go on as they were.)
    const stored: Array<{ refSlot: number, ref: number, refP: number, theta: number, warm: boolean, v2: Float64Array | null, since: number }> = []
    for (let k = 0; k < nc; k++) {
      stored.push({ refSlot: f[o], ref: f[o + 1], refP: f[o + 2], theta: f[o + 3], warm: f[o + 4] === 1, v2: per === CONTROLLER_V1 ? null : f.subarray(o + 5, o + 6 + 3 * GRID), since: per === CONTROLLER_V3 ? f[o + per - 1] : Number.NEGATIVE_INFINITY })
      o += per
    }
    this.controllers.forEach((c, k) => {
      const s = stored[k]
      if (s === undefined || s.refSlot !== c.refSlot) return
      c.ref = s.ref; c.refP = s.refP; c.theta = s.theta; c.warm = s.warm
      if (s.v2 !== null && c.spec.kind === 'earlierThan') {
        c.since = s.since
        c.veto = s.v2[0]
        c.short.set(s.v2.subarray(1, 1 + GRID)); c.refT.set(s.v2.subarray(1 + GRID, 1 + 2 * GRID)); c.refF.set(s.v2.subarray(1 + 2 * GRID, 1 + 3 * GRID))
        if (version === 2) for (const h of [c.short, c.refT, c.refF]) shiftGrid(h, 0, this.legacyShift)
      }
    })
    const days: number[] = []
    for (let k = 0; k < nd; k++) days.push(f[o++])
    return { days, version }
  }

  /** Grid steps that a version-2 state's absolute scores move down by to be relative to the drift: the drift when it is loaded, in grid steps. */
  private get legacyShift (): number { return Math.round(this.driftQ() / GRID_STEP_Q) }

  /** What GET /topology and the metrics show. */
  summary (): { coefficients: number[], day: number, examples: number, churnExamples: number, folds: number, populationLoginRate: number, thresholds: number[], warm: boolean[] } {
    return {
      coefficients: Array.from(this.mu),
      day: this.day,
      examples: this.examples,
      churnExamples: this.churnExamples,
      folds: this.folds,
      populationLoginRate: this.q0,
      thresholds: this.controllers.map((c) => sigmoid(c.theta)),
      warm: this.controllers.map((c) => c.warm)
    }
  }
}

/** The highest grid index whose threshold is at or below a logit (tests, and the short-silence record). */
export function gridIndexOfLogit (z: number): number { return gridIndexAtOrBelow(Math.round(z * Z_SCALE)) }

/** Adds one to every grid threshold in (prevQ, zQ] (scores × Z_SCALE): the thresholds a score crosses for the first time. */
export function countCrossings (prevQ: number, zQ: number, p: number, crossings: Float64Array, crossingP: Float64Array): void {
  if (zQ <= prevQ) return
  for (let j = gridIndexAtOrBelow(prevQ) + 1; j < GRID; j++) {
    const g = GRID_MIN_Q + j * GRID_STEP_Q
    if (g > zQ) break
    crossings[j]++
    crossingP[j] += p
  }
}

/** The number of grid thresholds (for arrays of first-crossing counts). */
export const THRESHOLD_GRID_SIZE = GRID

/** The volume-parity threshold (logit) for a reference that sent `ref` alerts, from first-crossing counts. */
export function alertsLikeTheta (crossings: Float64Array, ref: number, fallback: number): number {
  const c: Controller = { spec: { kind: 'alertsLike', rule: '' }, refIndex: -1, refSlot: -1, refDays: Number.NaN, ref, refP: 0, theta: fallback, warm: true, veto: Number.NEGATIVE_INFINITY, short: new Float64Array(0), refT: new Float64Array(0), refF: new Float64Array(0), vetoT: new Float64Array(0), vetoF: new Float64Array(0), vetoGone: new Float64Array(0), vetoOthers: 0, vetoEarly: 0, stayRight: new Float64Array(0), since: Number.NaN }
  return chooseTheta(c, crossings, new Float64Array(GRID), 0)
}

function initialTheta (spec: ThresholdSpec, prior: number): number {
  if (spec.kind === 'probability') return logit(spec.value)
  // No early alert before chooseEarlierThan has set one: warm-up can end mid-day, before the next choice.
  if (spec.kind === 'earlierThan') return GRID_MAX_LOGIT
  if (spec.kind === 'precision') return logit(spec.value)
  return prior
}

/** The grid threshold for a controller, from the first-crossing statistics. */
export function chooseTheta (c: Controller, crossings: Float64Array, crossingP: Float64Array, scored: number): number {
  const g = gridLogit
  const spec = c.spec
  switch (spec.kind) {
    case 'probability': return logit(spec.value)
    case 'earlierThan': return c.theta // chosen with its veto by chooseEarlierThan
    case 'alertsLike': {
      // The lowest threshold whose first crossings are no more than the reference's alerts.
      if (c.ref < MIN_REFERENCE) return c.theta
      let j = GRID - 1
      while (j > 0 && crossings[j - 1] <= c.ref) j--
      return g(j)
    }
    case 'alertsPer1kUsersPerDay': {
      if (scored < 1000) return c.theta
      const max = spec.value / 1000 * scored
      let j = GRID - 1
      while (j > 0 && crossings[j - 1] <= max) j--
      return g(j)
    }
    case 'precision':
    case 'precisionLike': {
      let target = spec.kind === 'precision' ? spec.value : Number.NaN
      if (spec.kind === 'precisionLike') {
        if (c.ref < MIN_REFERENCE) return c.theta
        target = c.refP / c.ref
      }
      // The lowest threshold whose first crossings predict at least the target, scanning down
      // from the top while thresholds keep it (thin statistics do not stop the scan).
      let j = GRID - 1
      while (j > 0) {
        const k = j - 1
        if (crossings[k] >= MIN_CROSSINGS && crossingP[k] / crossings[k] < target) break
        j--
      }
      return g(j)
    }
  }
}

/**
 * earlierThan (docs/churn-model.md, "The threshold"): the model alerts at the latest when its
 * reference does (the same silences, so the same labels), unless its score then is under the
 * veto (then later: when the score reaches θ, a week after the reference at the latest); and
 * earlier once the score crosses θ. What its alerts cost in precision against the reference's p:
 * the early alerts on silences that ended before the reference alerted (E, all false), and what
 * they gain: vetoed wrong alerts that do not come back (a vetoed right one comes back, still
 * right). With qF that share of the reference's alerts (Controller.vetoGone), its precision is
 * pN / (N(1 − qF) + E) ≥ p − δ for E ≤ N(p/(p − δ) − 1 + qF), of which early alerts spend
 * VETO_CREDIT of qF. The veto is the one that allows the largest E while it postpones at most
 * VETO_RECALL of the reference's right alerts, and no more than the model tells early
 * (Controller.vetoEarly: else it is later than its reference); θ the lowest threshold that recent short silences crossed no more than E times
 * (SHORT_SLACK more). p counts the labelled alerts, the `pendingFired` alerts raised at least
 * PENDING_FOLLOW_DAYS ago whose labels have not matured (`pendingRight` of them expected right:
 * those not among the `pendingWrong` already answered by a LOGIN, each with the chance it stays
 * right, Controller.stayRight; all of them when not given), and REFERENCE_PRIOR_ALERTS right
 * ones: until the stream says otherwise p is high, and a precision estimated too high costs
 * earliness, one too low would cost precision. Scores in the statistics are relative to the intercept's `drift` (logits;
 * ChurnLearner.driftQ): θ and the veto are that plus the grid's. `shortDays`: the days the short
 * silences have been counted (Controller.since; NaN: not started).
 */
export function chooseEarlierThan (c: Controller, pendingFired = 0, pendingWrong = 0, drift = 0, pendingRight = pendingFired - pendingWrong, shortDays = Number.POSITIVE_INFINITY): void {
  if (c.ref < MIN_REFERENCE) return
  let right = 0
  let wrong = 0
  let shortTotal = 0
  for (let j = 0; j < GRID; j++) { right += c.refT[j]; wrong += c.refF[j]; shortTotal += c.short[j] }
  const labelled = right + wrong >= MIN_REFERENCE
  // No early alert before the reference has alerts with a week of answers (its first ones ~3
  // weeks into a deployment) and short silences say how often a score is crossed in vain: until
  // then the model alerts exactly with its reference. No veto before some are labelled (~6 weeks).
  // Nor before the short silences have run the reference's days: one is counted when it ends, up
  // to refDays after it began, so in their first days they miss the longest (the highest scores)
  // and a threshold chosen on them is too low (a 30-day history of daily users then lost 2.8
  // points of precision, docs/churn-model.md).
  if (right + wrong + pendingFired < MIN_REFERENCE || shortTotal < MIN_SHORT_SILENCES || !(shortDays >= c.refDays)) { c.veto = Number.NEGATIVE_INFINITY; c.theta = GRID_MAX_LOGIT; return }
  const d = (c.spec as { allowance: number }).allowance
  const total = right + wrong + REFERENCE_PRIOR_ALERTS
  // The reference's precision: its labelled alerts, its pending ones (those not wrong yet, with
  // the chance they stay right; where the stream has not shown enough of an age, as right: too
  // high, which costs earliness, not precision), and the pseudo-alerts.
  const p = (right + pendingRight + REFERENCE_PRIOR_ALERTS) / (total + pendingFired)
  // A vetoed right alert comes back (postponed: it is still right); a vetoed wrong one is gone
  // unless it comes back too. With qF the share of the reference's alerts held back for good, the
  // precision is pN / (N(1 − qF) + E) ≥ p − δ for E ≤ N(p/(p − δ) − 1 + qF), of which early
  // alerts spend VETO_CREDIT of qF.
  const room = (qF: number): number => Math.min(1, p / Math.max(p - d, d) - 1 + VETO_CREDIT * qF)
  let bestRoom = room(0)
  let veto = Number.NEGATIVE_INFINITY
  // What a veto holds back, from the reference's recent alerts scored with today's coefficients
  // (vetoStatistics), with one right alert assumed among those vetoed: a low-score bin that has
  // not seen one recently is not taken for one that cannot.
  let seenRight = 0
  let vetoTotal = REFERENCE_PRIOR_ALERTS + c.vetoOthers
  for (let j = 0; j < GRID; j++) { seenRight += c.vetoT[j]; vetoTotal += c.vetoT[j] + c.vetoF[j] }
  let heldRight = 1
  let qF = 0
  for (let v = 1; labelled && v < GRID; v++) {
    heldRight += c.vetoT[v - 1]
    qF += c.vetoGone[v - 1] / vetoTotal
    if (heldRight > VETO_RECALL * seenRight) break // the alerts seen right, not the pseudo-alerts: those make p high, not the veto cheap
    // Nor more churners told late than the model tells early: else the veto makes it later than its reference.
    if (heldRight > c.vetoEarly) break
    const r = room(qF)
    if (r > bestRoom) { bestRoom = r; veto = gridLogit(v) + drift }
  }
  c.veto = veto
  // The threshold rises at once but falls at most THRESHOLD_FALL a day: a silence is alerted at
  // the lowest threshold of its days, so a threshold that wanders down with the statistics'
  // noise alerts more often than the short silences' record of any one threshold says. From the
  // top of the grid (no early alert yesterday: the first choice, or a room that held none) there
  // are no lower days to add to, and it takes the chosen one at once: coming down from the top
  // half a logit a day held a deployment's first early alerts back for two to three weeks.
  const budget = c.ref * bestRoom
  let j = GRID - 1
  let above = 0
  while (j > 0 && above + c.short[j - 1] + SHORT_SLACK <= budget) { above += c.short[j - 1]; j-- }
  const floor = c.theta >= GRID_MAX_LOGIT ? Number.NEGATIVE_INFINITY : c.theta - THRESHOLD_FALL
  c.theta = Math.min(GRID_MAX_LOGIT, Math.max(gridLogit(j) + (j === GRID - 1 ? 0 : drift), floor))
}

/** Moves the GRID counts at `o` of `h` down by `by` grid steps (up when negative); what leaves the grid stays in its end bin. */
function shiftGrid (h: Float64Array, o: number, by: number): void {
  if (by === 0) return
  const moved = new Float64Array(GRID)
  for (let j = 0; j < GRID; j++) moved[Math.min(GRID - 1, Math.max(0, j - by))] += h[o + j]
  h.set(moved, o)
}

/** The highest grid index whose threshold is at or below z × Z_SCALE (−1: below the grid). */
function gridIndexAtOrBelow (zQ: number): number {
  if (zQ < GRID_MIN_Q) return -1
  return Math.min(GRID - 1, Math.floor((zQ - GRID_MIN_Q) / GRID_STEP_Q))
}

/** Solves A x = b (A m×m, copied) by Gaussian elimination with partial pivoting. */
export function solve (Ain: Float64Array, b: Float64Array, m: number): Float64Array {
  const A = Float64Array.from(Ain)
  const x = Float64Array.from(b)
  for (let c = 0; c < m; c++) {
    let piv = c
    for (let r = c + 1; r < m; r++) if (Math.abs(A[r * m + c]) > Math.abs(A[piv * m + c])) piv = r
    if (piv !== c) {
      for (let k = 0; k < m; k++) { const t = A[c * m + k]; A[c * m + k] = A[piv * m + k]; A[piv * m + k] = t }
      const t = x[c]; x[c] = x[piv]; x[piv] = t
    }
    const v = A[c * m + c]
    if (Math.abs(v) < 1e-12) continue
    for (let r = c + 1; r < m; r++) {
      const f = A[r * m + c] / v
      if (f === 0) continue
      for (let k = c; k < m; k++) A[r * m + k] -= f * A[c * m + k]
      x[r] -= f * x[c]
    }
  }
  for (let c = m - 1; c >= 0; c--) {
    let s = x[c]
    for (let k = c + 1; k < m; k++) s -= A[c * m + k] * x[k]
    x[c] = Math.abs(A[c * m + c]) < 1e-12 ? 0 : s / A[c * m + c]
  }
  return x
}

function encodeBucket (b: Bucket, day: number, m: number): Buffer {
  const base = 3 + 2 * m + m * m
  const f = new Float64Array(base + b.ref.length + b.fired.length)
  f[0] = day
  f[1] = b.n
  f[2] = b.y
  f.set(b.g, 3)
  f.set(b.k, 3 + m)
  f.set(b.h, 3 + 2 * m)
  f.set(b.ref, base)
  f.set(b.fired, base + b.ref.length)
  return Buffer.from(f.buffer, f.byteOffset, f.byteLength)
}

/**
 * A stored bucket; its reference labels are kept when they fit this topology's thresholds
 * (refGrid numbers, then `controllers` counts of alerts raised), else they start from zero and the
 * counts are unknown (NaN). `legacy`: stored before the alerts were counted (unknown too).
 */
function decodeBucket (buf: Buffer, m: number, refGrid: number, controllers: number): { bucket: Bucket, legacy: boolean } {
  const base = 3 + 2 * m + m * m
  if (buf.length % 8 !== 0 || buf.length < 8 * base) throw new EbbError(Errors.STATE_CORRUPT, `the churn model's bucket holds ${buf.length} bytes`)
  const f = new Float64Array(buf.length / 8)
  for (let i = 0; i < f.length; i++) f[i] = buf.readDoubleLE(i * 8)
  const nFired = refGrid === 0 ? 0 : controllers
  let ref = new Float64Array(refGrid)
  let fired = new Float64Array(nFired).fill(Number.NaN)
  const legacy = nFired > 0 && f.length === base + refGrid
  if (f.length === base + refGrid + nFired) { ref = f.slice(base, base + refGrid); fired = f.slice(base + refGrid) } else if (legacy) ref = f.slice(base)
  return { bucket: { n: f[1], y: f[2], g: f.slice(3, 3 + m), k: f.slice(3 + m, 3 + 2 * m), h: f.slice(3 + 2 * m, base), ref, fired }, legacy }
}
