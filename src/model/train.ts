import { fnv1a32 } from '../state/hash.js'
import { DAY_MS, type Labels, LABEL_HORIZON_DAYS, LABEL_HORIZON_MS, type ReplayResult } from './dataset.js'
import { alertsLikeTheta, countCrossings, sigmoid, THRESHOLD_GRID_SIZE, Z_SCALE } from './learner.js'
import { fitLogistic } from './logistic.js'
import { auc, logLoss, roundTo } from './metrics.js'
import { DEFAULT_LEARNING, MODEL_FORMAT, MODEL_KIND, MODEL_VERSION, type ModelFile, type ModelMetrics, sealModel } from './model.js'
import { FEATURE_COUNT, FEATURE_SET_VERSION, FEATURES, FeatureId } from './spell.js'

/**
 * `ebb train`: fits the prior of the churn model (the coefficients every partition starts from,
 * and refines on its own stream) on labelled scored days of one or more replays.
 *
 * It refuses to write a model that cannot mean anything — too few churned days or spells to
 * fit (TrainRefusal, exit 2) — and warns when the base rates of training and validation differ
 * widely (the model would be calibrated for the wrong population).
 */
export interface TrainOptions {
  /** training labels must be known by this instant; validation starts here (time split) */
  split: number | null
  l2: number
  /** with several inputs, each its own intercept in the fit (the prior keeps their average) */
  interceptPerInput?: boolean
  /** recorded in the model file */
  input: string
  onProgress?: (line: string) => void
  onWarning?: (line: string) => void
}

/** A training set that cannot give a model worth shipping: the message says what to change. */
export class TrainRefusal extends Error {}

/** The least a fit needs, per class, in the training part. */
export const MIN_CHURN_ROWS = 200
export const MIN_CHURN_SPELLS = 30
export const MIN_STAY_ROWS = 1000

export interface LabelledData { data: ReplayResult, labels: Labels }

interface Part { rows: number[], source: number[] }

export interface Split {
  kind: 'time' | 'users'
  describe: string
  train: Part
  validation: Part
}

/** Rows whose label is known: ground truth, or 30 days of data after them. */
function known (d: LabelledData, i: number): boolean {
  return d.labels.truth || d.data.snapshots.ts[i] + LABEL_HORIZON_MS <= d.data.end
}

function stats (sets: readonly LabelledData[], part: Part): { rows: number, churnRows: number, churnSpells: number } {
  let churnRows = 0
  const spells = new Set<string>()
  part.rows.forEach((i, k) => {
    const d = sets[part.source[k]]
    const s = d.data.snapshots
    if (d.labels.label(s.user[i], s.ts[i]) === 1) { churnRows++; spells.add(`${part.source[k]}:${s.user[i]}:${s.spell[i]}`) }
  })
  return { rows: part.rows.length, churnRows, churnSpells: spells.size }
}

/**
 * The split: by time when the data is long enough (training rows end 30 days before `split`, no
 * label of training looks past it; validation from `split`), else by user (a fifth of the users,
 * by a hash of their id, validate): on a short history a time split leaves one side without churn.
 */
export function chooseSplit (sets: readonly LabelledData[], split: number | null): Split {
  const time = (at: number): Split => {
    const train: Part = { rows: [], source: [] }
    const validation: Part = { rows: [], source: [] }
    sets.forEach((d, k) => {
      const s = d.data.snapshots
      for (let i = 0; i < s.n; i++) {
        if (!known(d, i)) continue
        const t = s.ts[i]
        if (t + LABEL_HORIZON_MS <= at) { train.rows.push(i); train.source.push(k) } else if (t >= at) { validation.rows.push(i); validation.source.push(k) }
      }
    })
    return { kind: 'time', describe: `by time at ${new Date(at).toISOString()}`, train, validation }
  }
  if (split !== null) return time(split)
  // The default time split keeps a quarter of the labelled span (at least 14 days) for validation.
  const end = Math.min(...sets.map((d) => d.labels.truth ? d.data.end : d.data.end - LABEL_HORIZON_MS))
  const start = Math.max(...sets.map((d) => d.data.start))
  const at = end - Math.max(14 * DAY_MS, 0.25 * (end - start))
  const byTime = time(at)
  const tr = stats(sets, byTime.train)
  const va = stats(sets, byTime.validation)
  if (tr.churnRows >= MIN_CHURN_ROWS && tr.churnSpells >= MIN_CHURN_SPELLS && va.churnRows > 0 && va.rows - va.churnRows > 0) return byTime
  const train: Part = { rows: [], source: [] }
  const validation: Part = { rows: [], source: [] }
  sets.forEach((d, k) => {
    const s = d.data.snapshots
    const fifth = s.users.map((id) => fnv1a32(id) % 5 === 0)
    for (let i = 0; i < s.n; i++) {
      if (!known(d, i)) continue
      const into = fifth[s.user[i]] ? validation : train
      into.rows.push(i)
      into.source.push(k)
    }
  })
  return { kind: 'users', describe: 'by user (a fifth of the users validate: the history is too short for a time split to leave churn on both sides)', train, validation }
}


/**
 * The rows of a part as a matrix: the features, then (`indicators`) one column per input after the
 * first, 1 on that input's rows.
 */
function matrix (sets: readonly LabelledData[], part: Part, indicators = false): { X: Float64Array, y: Uint8Array, d: number } {
  const d = FEATURE_COUNT + (indicators ? sets.length - 1 : 0)
  const X = new Float64Array(part.rows.length * d)
  const y = new Uint8Array(part.rows.length)
  part.rows.forEach((i, k) => {
    const src = part.source[k]
    const data = sets[src]
    const s = data.data.snapshots
    for (let f = 0; f < FEATURE_COUNT; f++) X[k * d + f] = s.X[i * FEATURE_COUNT + f]
    if (indicators && src > 0) X[k * d + FEATURE_COUNT + src - 1] = 1
    y[k] = data.labels.label(s.user[i], s.ts[i])
  })
  return { X, y, d }
}

const round = (x: number, digits = 6): number => roundTo(x, digits)

export function trainModel (sets: readonly LabelledData[], opts: TrainOptions): ModelFile {
  const say = opts.onProgress ?? (() => {})
  const warn = opts.onWarning ?? (() => {})
  const split = chooseSplit(sets, opts.split)
  const tr = stats(sets, split.train)
  const va = stats(sets, split.validation)
  const refuse = (what: string): never => { throw new TrainRefusal(`${what}; the model would be noise. Give more users or more days of data (or --labels with the ground truth)`) }
  if (tr.churnRows < MIN_CHURN_ROWS) refuse(`the training part holds ${tr.churnRows} churned scored days (at least ${MIN_CHURN_ROWS} are needed; split ${split.describe})`)
  if (tr.churnSpells < MIN_CHURN_SPELLS) refuse(`the training part holds ${tr.churnSpells} silences that ended in churn (at least ${MIN_CHURN_SPELLS} are needed)`)
  if (tr.rows - tr.churnRows < MIN_STAY_ROWS) refuse(`the training part holds ${tr.rows - tr.churnRows} scored days of users who stayed (at least ${MIN_STAY_ROWS} are needed)`)
  const warnings: string[] = []
  const rateTrain = tr.churnRows / tr.rows
  const rateValidation = va.rows === 0 ? Number.NaN : va.churnRows / va.rows
  if (va.rows === 0 || va.churnRows === 0) warnings.push(`the validation part holds ${va.rows} scored days and ${va.churnRows} churned ones: its metrics say nothing`)
  else if (rateValidation / rateTrain > 2 || rateValidation / rateTrain < 0.5) warnings.push(`churn is ${(rateTrain * 100).toFixed(2)}% of the training days and ${(rateValidation * 100).toFixed(2)}% of the validation days: the population changed across the split, and the prior is calibrated for the training part (each partition re-learns it from its stream)`)
  for (const w of warnings) warn(w)

  // interceptPerInput: with several inputs (populations), each has an intercept of its own in the
  // fit, so the prior carries how to rank users *within* a population, not how the populations'
  // churn rates differ (pooled, the features learn those differences too: a low login rate is
  // "churn" when the population of weekly users churns more than that of daily ones). A
  // deployment learns its own base rate from its stream; the ranking is what it starts from. The
  // prior's intercept is that of the inputs' average, each weighing the same. The shipped prior
  // is trained so (scripts/train-default-model.sh; docs/churn-model.md, "The prior").
  const indicators = opts.interceptPerInput === true && sets.length > 1
  const train = matrix(sets, split.train)
  const fitRows = indicators ? matrix(sets, split.train, true) : train
  const validation = matrix(sets, split.validation)
  say(`training on ${tr.rows} scored days (${tr.churnRows} churned, ${tr.churnSpells} silences that ended in churn), validating on ${va.rows} (${va.churnRows} churned); split ${split.describe}${indicators ? `; an intercept per input (${sets.length})` : ''}`)
  const full = fitLogistic(fitRows.X, fitRows.y, fitRows.y.length, fitRows.d, {
    l2: opts.l2,
    onIteration: (it, loss) => { say(`Newton step ${it}, training log loss ${loss.toFixed(5)}`) }
  })
  let intercept = full.intercept
  for (let k = 1; indicators && k < sets.length; k++) {
    const j = FEATURE_COUNT + k - 1
    intercept += full.weights[j] * (1 / sets.length - full.mean[j]) / full.std[j]
  }
  const fit = { intercept, weights: full.weights.slice(0, FEATURE_COUNT), mean: full.mean.slice(0, FEATURE_COUNT), std: full.std.slice(0, FEATURE_COUNT), iterations: full.iterations }
  const coef = (x: Float64Array, k: number): number => {
    let z = fit.intercept
    for (let f = 0; f < FEATURE_COUNT; f++) z += fit.weights[f] * (x[k * FEATURE_COUNT + f] - fit.mean[f]) / fit.std[f]
    return z
  }
  const metricsOf = (part: { X: Float64Array, y: Uint8Array }): ModelMetrics => {
    const n = part.y.length
    const p = new Float64Array(n)
    let positives = 0
    for (let k = 0; k < n; k++) { p[k] = sigmoid(coef(part.X, k)); positives += part.y[k] }
    return { auc: round(auc(p, part.y)), logLoss: round(logLoss(p, part.y)), samples: n, positives }
  }

  // The prior threshold: as many alerts as inactive_7d over all the scored days (no label needed).
  const crossings = new Float64Array(THRESHOLD_GRID_SIZE)
  const unused = new Float64Array(THRESHOLD_GRID_SIZE)
  let week = 0
  const x = new Float64Array(FEATURE_COUNT)
  for (const d of sets) {
    const s = d.data.snapshots
    for (const spell of s.spells()) {
      let prev = -2147483648
      for (const i of spell) {
        for (let f = 0; f < FEATURE_COUNT; f++) x[f] = s.X[i * FEATURE_COUNT + f]
        const zQ = Math.round(coef(x, 0) * Z_SCALE)
        countCrossings(prev, zQ, 0, crossings, unused)
        if (zQ > prev) prev = zQ
        if (x[FeatureId.daysInactive] === 7) week++
      }
    }
  }
  const thresholdLogit = alertsLikeTheta(crossings, week, 0)
  const loginRates = sets.map((d) => d.data.learned?.populationLoginRate).filter((q): q is number => q !== undefined && Number.isFinite(q))
  const loginRate = loginRates.length === 0 ? 0.5 : loginRates.reduce((a, b) => a + b, 0) / loginRates.length
  const iso = (ms: number): string => new Date(ms).toISOString()
  return sealModel({
    format: MODEL_FORMAT,
    version: MODEL_VERSION,
    kind: MODEL_KIND,
    featureSetVersion: FEATURE_SET_VERSION,
    features: FEATURES.map((f) => f.name),
    labelHorizonDays: LABEL_HORIZON_DAYS,
    standardization: { mean: fit.mean.map((v) => round(v, 9)), std: fit.std.map((v) => round(v, 9)) },
    prior: { intercept: round(fit.intercept, 9), weights: fit.weights.map((v) => round(v, 9)), thresholdLogit, loginRate: round(loginRate, 9) },
    learning: { ...DEFAULT_LEARNING },
    training: {
      input: opts.input,
      labels: [...new Set(sets.map((d) => d.labels.source))].join('; '),
      data: sets.map((d) => ({ from: iso(d.data.start), to: iso(d.data.end), users: d.data.users, events: d.data.events })),
      split: split.describe,
      ...(indicators ? { interceptPerInput: `an intercept per input (${sets.length}) in the fit; the prior's is their average` } : {}),
      l2: opts.l2,
      newtonSteps: fit.iterations,
      priorThreshold: `as many alerts as inactive_7d on the training data: probability ${round(sigmoid(thresholdLogit), 4)}`,
      warnings
    },
    // inside the hash: a file cannot claim other numbers than the ones it was trained with
    metrics: { train: metricsOf(train), validation: validation.y.length > 0 ? metricsOf(validation) : { auc: Number.NaN, logLoss: Number.NaN, samples: 0, positives: 0 } }
  })
}
