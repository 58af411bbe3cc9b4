import { createHash } from 'node:crypto'
import { readSmallFile } from '../io/small-file.js'
import { EbbError, Errors } from '../errors.js'
import type { Reason } from '../io/records.js'
import type { LearningSettings } from './learner.js'
import { FEATURE_COUNT, FEATURE_SET_VERSION, FeatureId, FEATURES } from './spell.js'

/**
 * The churn model file (JSON, versioned): the prior the stream refines (learner.ts).
 *
 *   {
 *     "format": "ebb.churn-model", "version": 2, "kind": "online-logistic",
 *     "featureSetVersion": 2, "features": [names, in spell.ts order], "labelHorizonDays": 30,
 *     "standardization": { "mean": […], "std": […] },
 *     "prior": { "intercept": b, "weights": […], "thresholdLogit": θ, "loginRate": q },
 *     "learning": { "priorStrength", "decayPerDay", "floor", "maxStep", "matureDays", "thresholdDecayPerDay" },
 *     "training": { data, ranges, counts, command }, "metrics": { train, validation },
 *     "sha256": hash of everything else (canonical JSON, keys sorted)
 *   }
 *
 * score = sigmoid(b + Σ wᵢ·(xᵢ − meanᵢ)/stdᵢ) with the coefficients the partition has learned,
 * which start at the prior's. `thresholdLogit` is the threshold a relative one (alertsLike,
 * precisionLike) uses before the stream has said enough; `loginRate` the population's login
 * chance before the partition has measured its own. The hash makes a hand-edited file fail to
 * load (EBB_MODEL_INVALID) instead of scoring with coefficients nobody trained and evaluated.
 */
export const MODEL_FORMAT = 'ebb.churn-model'
export const MODEL_VERSION = 2
export const MODEL_KIND = 'online-logistic'

export interface ModelMetrics { auc: number, logLoss: number, samples: number, positives: number }

export interface ModelFile {
  format: typeof MODEL_FORMAT
  version: typeof MODEL_VERSION
  kind: typeof MODEL_KIND
  featureSetVersion: number
  features: string[]
  labelHorizonDays: number
  standardization: { mean: number[], std: number[] }
  prior: { intercept: number, weights: number[], thresholdLogit: number, loginRate: number }
  learning: LearningSettings
  training: Record<string, unknown>
  metrics: Record<string, ModelMetrics | Record<string, unknown>>
  sha256: string
}

/** The learning settings of a model trained today (`ebb train` writes them; docs/churn-model.md explains them). */
export const DEFAULT_LEARNING: LearningSettings = {
  priorStrength: 200,
  decayPerDay: 0.98,
  floor: 0.2,
  maxStep: 2,
  matureDays: 32,
  thresholdDecayPerDay: 0.93
}

/** JSON with object keys sorted at every level: the bytes the hash is taken over. */
export function canonicalJson (v: unknown): string {
  if (Array.isArray(v)) return '[' + v.map(canonicalJson).join(',') + ']'
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>
    return '{' + Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => JSON.stringify(k) + ':' + canonicalJson(o[k])).join(',') + '}'
  }
  return JSON.stringify(v)
}

export function modelHash (m: Omit<ModelFile, 'sha256'> & { sha256?: string }): string {
  const { sha256: _ignored, ...rest } = m
  return createHash('sha256').update(canonicalJson(rest)).digest('hex')
}

/** Seals a model: sets its hash. */
export function sealModel (m: Omit<ModelFile, 'sha256'>): ModelFile {
  return { ...m, sha256: modelHash(m) }
}

/** The prior as the engine uses it: coefficients with the intercept first, and the standardisation. */
export interface ModelPrior {
  mu: Float64Array
  mean: Float64Array
  invStd: Float64Array
  thresholdLogit: number
  loginRate: number
  learning: LearningSettings
}

export class ChurnModel {
  readonly prior: ModelPrior

  constructor (readonly file: ModelFile, readonly path = '(memory)') {
    const f = file
    this.prior = {
      mu: Float64Array.from([f.prior.intercept, ...f.prior.weights]),
      mean: Float64Array.from(f.standardization.mean),
      invStd: Float64Array.from(f.standardization.std, (s) => 1 / s),
      thresholdLogit: f.prior.thresholdLogit,
      loginRate: f.prior.loginRate,
      learning: { ...f.learning }
    }
  }

  get kind (): ModelFile['kind'] { return this.file.kind }
  /** `online-logistic-<sha256 prefix>`: the prior; what each partition learned is in GET /topology */
  get version (): string { return `${this.file.kind}-${this.file.sha256.slice(0, 12)}` }
}

const pct = (x: number): string => `${Math.round(x * 100)}%`

/** A feature in words, for a model alert's reasons ("no login for 4 full days"). */
export function featureText (id: FeatureId, x: Float64Array, loginRate: number, longestGap: number): string {
  const d = x[FeatureId.daysInactive]
  switch (id) {
    case FeatureId.silenceSurprise: return `${d} silent days are unusual for their rhythm (about 1 in ${Math.round(Math.min(1e6, Math.exp(x[id])))} when they are still around)`
    case FeatureId.daysInactive: return `no login for ${d} full days`
    case FeatureId.fullWeek: return 'a full week without a login'
    case FeatureId.recentSurprise: return `silent for longer than their last week's rhythm suggests (1 in ${Math.round(Math.min(1e6, Math.exp(x[id])))})`
    case FeatureId.loginRate: return `logged in on about ${pct(loginRate)} of days before this silence`
    case FeatureId.beyondLongestGap: return `silent ${x[id]} days longer than their longest gap in the 4 weeks before (${longestGap} days)`
    case FeatureId.loginTrend: return `login days in their last active week ${x[id] > 0 ? 'up' : 'down'} ${pct(Math.abs(1 - Math.exp(x[id])))} on the 3 weeks before`
    case FeatureId.viewDrop: return `views in their last active week ${x[id] < 0 ? 'up' : 'down'} ${pct(Math.abs(x[id]))} on the weeks before`
    case FeatureId.unfollowRatio: return `unfollowed ${pct(x[id])} of the creators they followed a week before`
    case FeatureId.interactionDrop: return `interactions in their last active week ${x[id] < 0 ? 'up' : 'down'} ${pct(Math.abs(x[id]))} on the weeks before`
    case FeatureId.logDaysInactive: return featureText(FeatureId.daysInactive, x, loginRate, longestGap)
    case FeatureId.logSilenceSurprise: return featureText(FeatureId.silenceSurprise, x, loginRate, longestGap)
    case FeatureId.steepViewDrop: return featureText(FeatureId.viewDrop, x, loginRate, longestGap)
    case FeatureId.steepInteractionDrop: return featureText(FeatureId.interactionDrop, x, loginRate, longestGap)
  }
}

/**
 * Reason codes of a score: the features that raise it most, each with its contribution to the
 * logit and its share of all raising contributions, largest first. Runs only when a model alert
 * fires or the API explains a user.
 */
export function modelReasons (contributions: Float64Array, x: Float64Array, loginRate: number, longestGap: number, top = 3): Reason[] {
  // A reshaping feature's share goes to the feature it reshapes (FeatureDefinition.partOf). Runs
  // once per model alert (a million at one midnight in the timers bench): no sort, no objects
  // but the reasons themselves.
  const merged = MERGED
  merged.set(contributions)
  for (let k = 0; k < PART_OF.length; k += 2) { merged[PART_OF[k + 1]] += merged[PART_OF[k]]; merged[PART_OF[k]] = 0 }
  let positive = 0
  for (let i = 0; i < FEATURE_COUNT; i++) if (merged[i] > 0) positive += merged[i]
  const reasons: Reason[] = []
  // The largest first; ties broken by feature order, so reasons are deterministic.
  while (reasons.length < top) {
    let best = -1
    for (let i = 0; i < FEATURE_COUNT; i++) if (merged[i] > 0 && (best < 0 || merged[i] > merged[best])) best = i
    if (best < 0) break
    const c = merged[best]
    merged[best] = 0
    const f = FEATURES[best]
    const rose = f.risingCode !== undefined && (f.risingBelow === true ? x[best] < 0 : x[best] > 0)
    reasons.push({
      code: rose ? f.risingCode as string : f.code,
      signal: f.name,
      value: Math.round(x[best] * 1e6) / 1e6,
      op: 'contribution',
      threshold: Math.round(c * 1e4) / 1e4,
      text: `${featureText(f.id, x, loginRate, longestGap)} (${Math.round(100 * c / positive)}% of what raises the score)`
    })
  }
  return reasons
}

const MERGED = new Float64Array(FEATURE_COUNT)
/** (reshaping feature, the feature it reshapes) pairs, flat */
const PART_OF = Int32Array.from(FEATURES.flatMap((f) => f.partOf === undefined ? [] : [f.id, f.partOf]))

/** Reads, checks and builds a model; every problem is EBB_MODEL_INVALID naming the file and what to do. */
export function loadModel (path: string): ChurnModel {
  let text: string
  try {
    text = readSmallFile(path).toString('utf8')
  } catch (err) {
    throw new EbbError(Errors.MODEL_INVALID, path, `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new EbbError(Errors.MODEL_INVALID, path, `is not JSON (${(err as Error).message})`)
  }
  return new ChurnModel(validateModel(raw, path), path)
}

export function validateModel (raw: unknown, path: string): ModelFile {
  const bad = (what: string): never => { throw new EbbError(Errors.MODEL_INVALID, path, what) }
  if (raw === null || typeof raw !== 'object') return bad('is not a JSON object')
  const m = raw as Partial<ModelFile>
  if (m.format !== MODEL_FORMAT) bad(`"format" is ${JSON.stringify(m.format)}, expected "${MODEL_FORMAT}"`)
  if (m.version !== MODEL_VERSION) bad(`model file version ${String(m.version)} is not supported (this Ebb reads version ${MODEL_VERSION}: retrain it with \`ebb train\`)`)
  if (m.kind !== MODEL_KIND) bad(`kind ${JSON.stringify(m.kind)} is not supported (known: ${MODEL_KIND})`)
  if (m.featureSetVersion !== FEATURE_SET_VERSION) bad(`it was trained on feature set ${String(m.featureSetVersion)}, this Ebb computes feature set ${FEATURE_SET_VERSION}: retrain it with \`ebb train\``)
  const names = FEATURES.map((f) => f.name)
  if (!Array.isArray(m.features) || m.features.join(',') !== names.join(',')) bad(`"features" must be ${names.join(', ')} in that order`)
  const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x)
  const nums = (v: unknown, what: string, positive = false): void => {
    if (!Array.isArray(v) || v.length !== FEATURE_COUNT || !v.every((x) => finite(x) && (!positive || x > 0))) bad(`${what} must be ${FEATURE_COUNT} finite numbers${positive ? ' above 0' : ''}`)
  }
  nums(m.standardization?.mean, '"standardization.mean"')
  nums(m.standardization?.std, '"standardization.std"', true)
  nums(m.prior?.weights, '"prior.weights"')
  if (!finite(m.prior?.intercept)) bad('"prior.intercept" must be a finite number')
  if (!finite(m.prior?.thresholdLogit)) bad('"prior.thresholdLogit" must be a finite number')
  if (!(finite(m.prior?.loginRate) && m.prior.loginRate > 0 && m.prior.loginRate < 1)) bad('"prior.loginRate" must be a number in (0, 1)')
  const l = m.learning
  const inRange = (x: unknown, lo: number, hi: number): boolean => finite(x) && x >= lo && x <= hi
  if (l === undefined || !inRange(l.priorStrength, 1e-6, 1e9) || !inRange(l.decayPerDay, 0.5, 1) || !inRange(l.floor, 0, 1) ||
    !inRange(l.maxStep, 0, 100) || !inRange(l.matureDays, 31, 60) || !Number.isInteger(l.matureDays) || !inRange(l.thresholdDecayPerDay, 0.5, 1)) {
    bad('"learning" must hold priorStrength > 0, decayPerDay and thresholdDecayPerDay in [0.5, 1], floor in [0, 1], maxStep ≥ 0 (0: never learn) and matureDays an integer in [31, 60]')
  }
  if (m.labelHorizonDays !== 30) bad('"labelHorizonDays" must be 30 (churn = no LOGIN in the next 30 days)')
  if (typeof m.sha256 !== 'string') bad('"sha256" is missing: model files are written by `ebb train`')
  const want = modelHash(m as ModelFile)
  if (m.sha256 !== want) bad('its sha256 does not match its content: it was edited after `ebb train` wrote it. Retrain instead of editing weights by hand')
  return m as ModelFile
}

/**
 * A model with every coefficient 0 (every score ½): what `ebb train` replays with, since the rows
 * it collects (spell features and labels) do not depend on the coefficients.
 */
export function neutralModel (): ChurnModel {
  const zeros = FEATURES.map(() => 0)
  return new ChurnModel(sealModel({
    format: MODEL_FORMAT,
    version: MODEL_VERSION,
    kind: MODEL_KIND,
    featureSetVersion: FEATURE_SET_VERSION,
    features: FEATURES.map((f) => f.name),
    labelHorizonDays: 30,
    standardization: { mean: zeros, std: FEATURES.map(() => 1) },
    prior: { intercept: 0, weights: zeros, thresholdLogit: 0, loginRate: 0.5 },
    learning: { ...DEFAULT_LEARNING },
    training: { neutral: true },
    metrics: {}
  }), '(neutral)')
}
