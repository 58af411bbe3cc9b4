import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { EbbError, Errors } from '../errors.js'
import type { Reason } from '../io/records.js'
import type { SignalParams } from '../signals/signals.js'
import type { UserState } from '../state/user-state.js'
import type { FlatTree } from './gbt.js'
import { computeFeatures, FEATURE_COUNT, FEATURE_SET_VERSION, FEATURES, FEATURES_BY_NAME, featureDisplayValue, featureText, type FeatureDefinition } from './features.js'

/**
 * The churn model file (JSON, versioned) and the scorer the engine runs.
 *
 *   {
 *     "format": "ebb.churn-model", "version": 1, "kind": "logistic",
 *     "featureSetVersion": 1, "features": [names…], "labelHorizonDays": 30,
 *     "standardization": { "mean": […], "std": […] }, "intercept": b, "weights": […],
 *     "training": { data file, time ranges, sample counts, command }, "metrics": { train, validation },
 *     "sha256": hash of everything else (canonical JSON, keys sorted)
 *   }
 *
 * score = sigmoid(b + Σ wᵢ·(xᵢ − meanᵢ)/stdᵢ). The hash makes a hand-edited file fail to load
 * (EBB_MODEL_INVALID) instead of scoring with weights nobody trained and evaluated.
 */
export const MODEL_FORMAT = 'ebb.churn-model'
export const MODEL_VERSION = 1

export interface ModelMetrics { auc: number, logLoss: number, samples: number, positives: number }

interface ModelFileBase {
  format: typeof MODEL_FORMAT
  version: typeof MODEL_VERSION
  featureSetVersion: number
  features: string[]
  labelHorizonDays: number
  training: Record<string, unknown>
  metrics: Record<string, ModelMetrics | Record<string, unknown>>
  sha256: string
}

export interface LogisticModelFile extends ModelFileBase {
  kind: 'logistic'
  standardization: { mean: number[], std: number[] }
  intercept: number
  weights: number[]
}

/** Gradient-boosted trees (gbt.ts): log-odds = baseScore + Σ leaf values; tree features index `features`. */
export interface GbtModelFile extends ModelFileBase {
  kind: 'gbt'
  baseScore: number
  trees: FlatTree[]
}

export type ModelFile = LogisticModelFile | GbtModelFile
type Unsealed<T> = T extends unknown ? Omit<T, 'sha256'> : never

/** JSON with object keys sorted at every level: the bytes the hash is taken over. */
export function canonicalJson (v: unknown): string {
  if (Array.isArray(v)) return '[' + v.map(canonicalJson).join(',') + ']'
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>
    return '{' + Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => JSON.stringify(k) + ':' + canonicalJson(o[k])).join(',') + '}'
  }
  return JSON.stringify(v)
}

export function modelHash (m: Unsealed<ModelFile> & { sha256?: string }): string {
  const { sha256: _ignored, ...rest } = m
  return createHash('sha256').update(canonicalJson(rest)).digest('hex')
}

/** Seals a model: sets its hash. */
export function sealModel (m: Unsealed<ModelFile>): ModelFile {
  return { ...m, sha256: modelHash(m) } as ModelFile
}

export class ChurnModel {
  readonly file: ModelFile
  readonly path: string
  /** the FeatureId of each model input */
  private readonly ids: Int32Array
  // logistic
  private readonly mean: Float64Array
  private readonly invStd: Float64Array
  private readonly w: Float64Array
  private readonly b: number
  // trees, all in one set of typed arrays (node k of tree t is at roots[t] + k): monomorphic,
  // contiguous loads on the hot path instead of a walk through arrays of objects
  private readonly trees: readonly FlatTree[]
  private readonly roots: Int32Array
  private readonly tFeature: Int32Array
  private readonly tThreshold: Float64Array
  private readonly tLeft: Int32Array
  private readonly tRight: Int32Array
  private readonly tValue: Float64Array
  /** scratch: every feature of the user being scored, and the model's inputs in its order */
  private readonly x = new Float64Array(FEATURE_COUNT)
  private readonly input: Float64Array
  private readonly contrib: Float64Array

  constructor (file: ModelFile, path = '(memory)') {
    this.file = file
    this.path = path
    const k = file.features.length
    this.ids = new Int32Array(k)
    this.input = new Float64Array(k)
    this.contrib = new Float64Array(k)
    this.mean = new Float64Array(k)
    this.invStd = new Float64Array(k)
    this.w = new Float64Array(k)
    for (let i = 0; i < k; i++) this.ids[i] = (FEATURES_BY_NAME.get(file.features[i]) as FeatureDefinition).id
    if (file.kind === 'logistic') {
      for (let i = 0; i < k; i++) {
        this.mean[i] = file.standardization.mean[i]
        this.invStd[i] = 1 / file.standardization.std[i]
        this.w[i] = file.weights[i]
      }
      this.b = file.intercept
      this.trees = []
    } else {
      this.b = file.baseScore
      this.trees = file.trees
    }
    let nodes = 0
    for (const t of this.trees) nodes += t.feature.length
    this.roots = new Int32Array(this.trees.length)
    this.tFeature = new Int32Array(nodes)
    this.tThreshold = new Float64Array(nodes)
    this.tLeft = new Int32Array(nodes)
    this.tRight = new Int32Array(nodes)
    this.tValue = new Float64Array(nodes)
    let at = 0
    this.trees.forEach((t, ti) => {
      this.roots[ti] = at
      for (let k = 0; k < t.feature.length; k++) {
        this.tFeature[at + k] = t.feature[k]
        this.tThreshold[at + k] = t.threshold[k]
        this.tLeft[at + k] = at + t.left[k]
        this.tRight[at + k] = at + t.right[k]
        this.tValue[at + k] = t.value[k]
      }
      at += t.feature.length
    })
  }

  get kind (): ModelFile['kind'] { return this.file.kind }
  get version (): string { return `${this.file.kind}-${this.file.sha256.slice(0, 12)}` }

  /**
   * The churn probability of a user on local day `today` at instant `at`; NaN (no score) before
   * their first LOGIN: "no LOGIN in the next 30 days" is a question about users who have logged
   * in, and the model was trained on nothing else. No allocation.
   */
  score (s: UserState, today: number, at: number, p: SignalParams): number {
    if (s.lastLoginTs < 0) return Number.NaN
    computeFeatures(s, today, at, p, this.x)
    return this.scoreFeatures(this.x)
  }

  /** `score`, with "no score yet" as null (how state and the API hold it). */
  scoreOrNull (s: UserState, today: number, at: number, p: SignalParams): number | null {
    const v = this.score(s, today, at, p)
    return Number.isNaN(v) ? null : v
  }

  /** The probability for a full feature vector (indexed by FeatureId). */
  scoreFeatures (x: Float64Array): number {
    const ids = this.ids
    let z = this.b
    if (this.trees.length === 0) {
      for (let i = 0; i < ids.length; i++) z += this.w[i] * (x[ids[i]] - this.mean[i]) * this.invStd[i]
    } else {
      const input = this.input
      for (let i = 0; i < ids.length; i++) input[i] = x[ids[i]]
      const roots = this.roots
      const feature = this.tFeature
      const threshold = this.tThreshold
      const left = this.tLeft
      const right = this.tRight
      const value = this.tValue
      for (let t = 0; t < roots.length; t++) {
        let k = roots[t]
        let f = feature[k]
        while (f >= 0) {
          k = input[f] <= threshold[k] ? left[k] : right[k]
          f = feature[k]
        }
        z += value[k]
      }
    }
    return 1 / (1 + Math.exp(-z))
  }

  /**
   * Each input's contribution to the log-odds: for logistic regression weight × standardised
   * value; for trees the path-based attribution (Saabas): along each tree's path, the change in
   * node value at a split is credited to the split's feature. Both sum to log-odds − base.
   */
  contributions (x: Float64Array): Float64Array {
    const c = this.contrib
    const ids = this.ids
    if (this.trees.length === 0) {
      for (let i = 0; i < ids.length; i++) c[i] = this.w[i] * (x[ids[i]] - this.mean[i]) * this.invStd[i]
      return c
    }
    c.fill(0)
    for (let i = 0; i < ids.length; i++) this.input[i] = x[ids[i]]
    for (const tr of this.trees) {
      let k = 0
      while (tr.feature[k] >= 0) {
        const f = tr.feature[k]
        const next = this.input[f] <= tr.threshold[k] ? tr.left[k] : tr.right[k]
        c[f] += tr.value[next] - tr.value[k]
        k = next
      }
    }
    return c
  }

  /**
   * Reason codes of a score: the features that raise it most, each with its contribution to the
   * log-odds and its share of all raising contributions, largest first. Runs only when a model
   * alert fires.
   */
  reasons (s: UserState, today: number, at: number, p: SignalParams, top = 3): Reason[] {
    computeFeatures(s, today, at, p, this.x)
    return this.reasonsOf(this.x, top)
  }

  reasonsOf (x: Float64Array, top = 3): Reason[] {
    const c = this.contributions(x)
    const raising: Array<{ i: number, c: number }> = []
    let positive = 0
    for (let i = 0; i < c.length; i++) if (c[i] > 0) { raising.push({ i, c: c[i] }); positive += c[i] }
    // Ties broken by feature order, so reasons are deterministic.
    raising.sort((a, b) => b.c - a.c || a.i - b.i)
    return raising.slice(0, top).map(({ i, c }) => {
      const f = FEATURES[this.ids[i]]
      const v = x[this.ids[i]]
      return {
        code: f.code,
        signal: f.name,
        value: Math.round(featureDisplayValue(f.id, v) * 1e6) / 1e6,
        op: 'contribution',
        threshold: Math.round(c * 1e4) / 1e4,
        text: `${featureText(f, v)} (${Math.round(100 * c / positive)}% of what raises the score)`
      }
    })
  }
}

/** Reads, checks and builds a model; every problem is EBB_MODEL_INVALID naming the file and what to do. */
export function loadModel (path: string): ChurnModel {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
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
  const m = raw as Partial<Omit<LogisticModelFile, 'kind'> & Omit<GbtModelFile, 'kind'>> & { kind?: unknown }
  if (m.format !== MODEL_FORMAT) bad(`"format" is ${JSON.stringify(m.format)}, expected "${MODEL_FORMAT}"`)
  if (m.version !== MODEL_VERSION) bad(`model file version ${String(m.version)} is not supported (this Ebb reads version ${MODEL_VERSION})`)
  if (m.kind !== 'logistic' && m.kind !== 'gbt') bad(`kind ${JSON.stringify(m.kind)} is not supported (known: logistic, gbt)`)
  if (m.featureSetVersion !== FEATURE_SET_VERSION) bad(`it was trained on feature set ${String(m.featureSetVersion)}, this Ebb computes feature set ${FEATURE_SET_VERSION}`)
  const f = m.features
  if (!Array.isArray(f) || f.length === 0) return bad('"features" must be a non-empty list of feature names')
  for (const name of f) if (!FEATURES_BY_NAME.has(name)) bad(`unknown feature "${String(name)}" (known: ${[...FEATURES_BY_NAME.keys()].join(', ')})`)
  const k = f.length
  const nums = (v: unknown, what: string, positive = false): number[] => {
    if (!Array.isArray(v) || v.length !== k || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0))) return bad(`${what} must be ${k} finite numbers${positive ? ' above 0' : ''}`)
    return v as number[]
  }
  const finite = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x)
  if (m.kind === 'logistic') {
    nums(m.weights, '"weights"')
    nums(m.standardization?.mean, '"standardization.mean"')
    nums(m.standardization?.std, '"standardization.std"', true)
    if (!finite(m.intercept)) bad('"intercept" must be a finite number')
  } else {
    if (!finite(m.baseScore)) bad('"baseScore" must be a finite number')
    if (!Array.isArray(m.trees) || m.trees.length === 0) return bad('"trees" must be a non-empty list')
    m.trees.forEach((t, ti) => {
      const len = Array.isArray(t?.feature) ? t.feature.length : 0
      const ok = len > 0 && [t.threshold, t.left, t.right, t.value].every((a) => Array.isArray(a) && a.length === len)
      if (!ok) bad(`tree ${ti}: feature, threshold, left, right and value must be lists of the same, non-zero length`)
      for (let node = 0; node < len; node++) {
        const f = t.feature[node]
        if (!Number.isInteger(f) || f < -1 || f >= k) bad(`tree ${ti} node ${node}: feature must be −1 (leaf) or an index into "features"`)
        if (!finite(t.value[node])) bad(`tree ${ti} node ${node}: value must be a finite number`)
        if (f >= 0) {
          if (!finite(t.threshold[node])) bad(`tree ${ti} node ${node}: threshold must be a finite number`)
          // children after their parent: no cycles, every walk ends at a leaf
          for (const c of [t.left[node], t.right[node]]) if (!Number.isInteger(c) || c <= node || c >= len) bad(`tree ${ti} node ${node}: children must be later nodes of the same tree`)
        }
      }
    })
  }
  if (m.labelHorizonDays !== 30) bad('"labelHorizonDays" must be 30 (SPEC: churn = no LOGIN in the next 30 days)')
  if (typeof m.sha256 !== 'string') bad('"sha256" is missing: model files are written by `ebb train`')
  const want = modelHash(m as ModelFile)
  if (m.sha256 !== want) bad('its sha256 does not match its content: it was edited after `ebb train` wrote it. Retrain instead of editing weights by hand')
  return m as ModelFile
}
