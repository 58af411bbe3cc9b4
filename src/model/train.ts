import { FEATURE_COUNT, FEATURE_SET_VERSION, FEATURES } from './features.js'
import { DAY_MS, type Labels, LABEL_HORIZON_DAYS, LABEL_HORIZON_MS, type ReplayResult } from './dataset.js'
import { fitGbt } from './gbt.js'
import { fitLogistic } from './logistic.js'
import { auc, logLoss, roundTo } from './metrics.js'
import { ChurnModel, MODEL_FORMAT, MODEL_VERSION, type ModelFile, type ModelMetrics, sealModel } from './model.js'

export interface TrainOptions {
  /** training labels must be known by this instant; validation starts here */
  split: number
  l2: number
  /** recorded in the model file */
  input: string
  labels: Labels
  onProgress?: (line: string) => void
}

export interface TimeSplit {
  /** rows whose label window (t, t + 30 d] ends by the split: the only ones training sees */
  train: Int32Array
  /** rows at or after the split whose label is known by the end of the data */
  validation: Int32Array
}

/**
 * The time split, with no leakage across it: a training row at t is labelled by the logins in
 * (t, t + 30 d], so it is used only when t + 30 d ≤ split; nothing training sees (features look
 * back, labels look at most to the split) comes from after the split. Validation rows start at
 * the split and need their own 30 days before the end of the data.
 */
export function timeSplit (data: ReplayResult, split: number): TimeSplit {
  const s = data.snapshots
  const train: number[] = []
  const validation: number[] = []
  for (let i = 0; i < s.n; i++) {
    const t = s.ts[i]
    if (t + LABEL_HORIZON_MS <= split) train.push(i)
    else if (t >= split && t + LABEL_HORIZON_MS <= data.end) validation.push(i)
  }
  return { train: Int32Array.from(train), validation: Int32Array.from(validation) }
}

/** The default split: a quarter of the labelled span (at least 14 days) is kept for validation. */
export function defaultSplit (data: ReplayResult): number {
  const lastLabelled = data.end - LABEL_HORIZON_MS
  return lastLabelled - Math.max(14 * DAY_MS, 0.25 * (lastLabelled - data.start))
}

function rowsOf (data: ReplayResult, rows: Int32Array, labels: Labels): { X: Float64Array, y: Uint8Array } {
  const s = data.snapshots
  const X = new Float64Array(rows.length * FEATURE_COUNT)
  const y = new Uint8Array(rows.length)
  for (let k = 0; k < rows.length; k++) {
    const i = rows[k]
    X.set(s.X.subarray(i * FEATURE_COUNT, (i + 1) * FEATURE_COUNT), k * FEATURE_COUNT)
    y[k] = labels.label(s.user[i], s.ts[i])
  }
  return { X, y }
}

function metricsOf (model: ChurnModel, X: Float64Array, y: Uint8Array): ModelMetrics {
  const n = y.length
  const p = new Float64Array(n)
  let positives = 0
  for (let i = 0; i < n; i++) {
    p[i] = model.scoreFeatures(X.subarray(i * FEATURE_COUNT, (i + 1) * FEATURE_COUNT))
    positives += y[i]
  }
  return { auc: round(auc(p, y)), logLoss: round(logLoss(p, y)), samples: n, positives }
}

const round = (x: number, digits = 6): number => roundTo(x, digits)

export type Algorithm = 'logistic' | 'gbt' | 'best'

/**
 * Fits on the rows before the split and measures on the rows after. `best` fits both kinds and
 * keeps the tree ensemble only when it beats logistic regression on validation AUC by at least
 * 0.005 (otherwise the simpler, cheaper model wins); both results are recorded in the file.
 */
export function trainModel (data: ReplayResult, opts: TrainOptions & { algorithm: Algorithm }): ModelFile {
  const say = opts.onProgress ?? (() => {})
  const split = timeSplit(data, opts.split)
  if (split.train.length === 0) throw new RangeError('no training rows: the data before the split is shorter than the 30-day label window plus the warm-up')
  const tr = rowsOf(data, split.train, opts.labels)
  let pos = 0
  for (let i = 0; i < tr.y.length; i++) pos += tr.y[i]
  if (pos === 0 || pos === tr.y.length) throw new RangeError(`the training rows hold only one class (${pos} churned of ${tr.y.length}): nothing to learn`)
  const va = rowsOf(data, split.validation, opts.labels)
  say(`training on ${tr.y.length} daily snapshots (${pos} labelled churn), validating on ${va.y.length}, ${FEATURE_COUNT} features`)
  const iso = (ms: number): string => new Date(ms).toISOString()
  const common = {
    format: MODEL_FORMAT,
    version: MODEL_VERSION,
    featureSetVersion: FEATURE_SET_VERSION,
    features: FEATURES.map((f) => f.name),
    labelHorizonDays: LABEL_HORIZON_DAYS,
    training: {
      input: opts.input,
      labels: opts.labels.source,
      dataFrom: iso(data.start),
      dataTo: iso(data.end),
      trainSnapshotsTo: iso(opts.split - LABEL_HORIZON_MS),
      split: iso(opts.split),
      validationTo: iso(data.end - LABEL_HORIZON_MS),
      users: data.users,
      events: data.events
    } as Record<string, unknown>,
    metrics: {} as ModelFile['metrics']
  } as const
  const measured = (m: ModelFile): ModelFile => {
    const cm = new ChurnModel(m)
    m.metrics.train = metricsOf(cm, tr.X, tr.y)
    m.metrics.validation = va.y.length > 0 ? metricsOf(cm, va.X, va.y) : { auc: Number.NaN, logLoss: Number.NaN, samples: 0, positives: 0 }
    return m
  }
  const candidates: ModelFile[] = []
  if (opts.algorithm !== 'gbt') {
    const fit = fitLogistic(tr.X, tr.y, tr.y.length, FEATURE_COUNT, {
      l2: opts.l2,
      onIteration: (it, loss) => { say(`logistic: Newton step ${it}, training log loss ${loss.toFixed(5)}`) }
    })
    candidates.push(measured({
      ...common,
      kind: 'logistic',
      standardization: { mean: fit.mean.map((x) => round(x, 9)), std: fit.std.map((x) => round(x, 9)) },
      intercept: round(fit.intercept, 9),
      weights: fit.weights.map((x) => round(x, 9)),
      training: { ...common.training, l2: opts.l2, newtonSteps: fit.iterations },
      metrics: {},
      sha256: ''
    }))
  }
  if (opts.algorithm !== 'logistic') {
    const gbt = { rounds: 120, depth: 4, learningRate: 0.2, lambda: 1, minChildWeight: 5, bins: 64 }
    const fit = fitGbt(tr.X, tr.y, tr.y.length, FEATURE_COUNT, { ...gbt, onRound: (r) => { if (r % 10 === 0) say(`gbt: ${r}/${gbt.rounds} trees`) } })
    const trees = fit.trees.map((t) => ({ ...t, threshold: t.threshold.map((x) => round(x, 9)), value: t.value.map((x) => round(x, 9)) }))
    candidates.push(measured({ ...common, kind: 'gbt', baseScore: round(fit.baseScore, 9), trees, training: { ...common.training, gbt }, metrics: {}, sha256: '' }))
  }
  const aucOf = (m: ModelFile): number => (m.metrics.validation as ModelMetrics).auc
  let chosen = candidates[0]
  if (candidates.length === 2) {
    const [lr, trees] = candidates
    chosen = aucOf(trees) >= aucOf(lr) + 0.005 ? trees : lr
    chosen.metrics.comparison = { logisticValidationAuc: aucOf(lr), gbtValidationAuc: aucOf(trees), chosen: chosen.kind, rule: 'gbt when its validation AUC beats logistic by ≥ 0.005' }
    say(`validation AUC: logistic ${aucOf(lr).toFixed(4)}, gbt ${aucOf(trees).toFixed(4)} → ${chosen.kind}`)
  }
  const { sha256: _unsealed, ...rest } = chosen
  return sealModel(rest)
}
