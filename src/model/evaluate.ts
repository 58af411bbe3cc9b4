import { readConfigText } from '../config/yaml.js'
import { isMap, isSeq, parseDocument } from 'yaml'
import { EbbError, Errors } from '../errors.js'
import type { AlertRecord } from '../io/records.js'
import { MAX_RULES, parseTopology, type Topology } from '../rules/topology.js'
import { AlertsOnlySink, DAY_MS, type DailySnapshots, derivedLabels, type Labels, LABEL_HORIZON_MS, replayForModel, type ReplayResult } from './dataset.js'
import { sigmoid, thresholdSpecText } from './learner.js'
import { fitLogistic } from './logistic.js'
import { auc, calibration, type CalibrationBin, quartiles, roundTo } from './metrics.js'
import { FeatureId } from './spell.js'

/**
 * `ebb eval`: replays a labelled event file through the engine — the model learning from the
 * stream as it would in production — and measures what a growth team gets from each alert
 * source: the model rule, `inactive_7d` alone, and the whole topology:
 *
 *   precision   per alert: the share of alerts after which the user did not log in within 30
 *               days (an alert on a stayer, or on a churner before their last LOGIN, is false)
 *   recall      of the churn points (a LOGIN followed by 30 silent days), the share with an alert
 *               in [churn point, churn point + 30 d]
 *   lead time   for those, days from the last LOGIN to the first such alert (smaller is earlier)
 *   volume      alerts per 1,000 users per day
 *
 * With derived labels an alert (or a churn point) counts only when its 30 days are over by the
 * end of the data; with a ground-truth label file every one counts.
 *
 * Beside them: the model's ranking on the scored days (AUC against daysInactive alone, and a
 * calibration table), a sweep of fixed score thresholds (shadow rules: the precision–recall
 * curve), and a yardstick of what the data allows — the best simple detector tuned in hindsight
 * on this same population: the user's silence surprise plus β × their activity decline, β and
 * the threshold chosen knowing the answers, at inactive_7d's precision.
 */
export const SWEEP = [0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
const SWEEP_PREFIX = 'eval_score_'
/** the shadow rule of threshold θ, e.g. eval_score_0_35 */
const sweepRuleId = (th: number): string => SWEEP_PREFIX + th.toFixed(2).replace('.', '_')

export interface AlertSourceReport {
  name: string
  alerts: number
  /** alerts that can be judged (their 30 days are over by the end of the data, or ground truth) */
  judged: number
  truePositives: number
  precision: number
  churnEvents: number
  caught: number
  recall: number
  alertsPer1kUsersPerDay: number
  leadDays: { p25: number, median: number, p75: number }
}

export interface YardstickReport extends AlertSourceReport {
  /** the probability threshold chosen in hindsight */
  threshold: number
  /** the hindsight fit's standardised weights: silenceSurprise, daysInactive, fullWeek, viewDrop, loginTrend */
  weights: number[]
}

export interface EvalReport {
  input: string
  labels: string
  model: { version: string, sha256: string, threshold: string | null, learned: ReplayResult['learned'] }
  data: { from: string, to: string, days: number, users: number, events: number }
  ranking: {
    snapshots: number
    positives: number
    auc: number
    /** the same scored days ranked by daysInactive alone: what the model adds over counting days */
    aucDaysInactive: number
    /** scored days of users fewer than 7 days away: before inactive_7d can say anything */
    aucEarly: number
    /** AUC of the model and of daysInactive over the days scored once the partition had labels to learn from (after matureDays + 1) */
    aucLearned: number
    aucDaysInactiveLearned: number
    calibration: CalibrationBin[]
    /** scores of the scored days, 20 bins of 0.05: [stayed, churned] counts */
    histogram: Array<[number, number]>
    /**
     * With a label file: the same ranking and calibration against the question the model learns
     * from the stream (no LOGIN within 30 days, from the events), over the scored days with 30
     * days of data after them. The two differ where users come back after 30 silent days: the
     * file says they never churned, the stream's answer said they had (docs/churn-model.md,
     * "Limits"). null with --derive-labels, where the ranking above is that question already.
     */
    question: { snapshots: number, positives: number, auc: number, aucDaysInactive: number, calibration: CalibrationBin[] } | null
  }
  sources: AlertSourceReport[]
  sweep: Array<AlertSourceReport & { threshold: number }>
  /** the model at the precision of inactive_7d, from the sweep */
  samePrecision: { targetPrecision: number, threshold: number | null, model: AlertSourceReport | null, medianLeadDaysEarlier: number }
  yardstick: YardstickReport | null
  /** lead times (days) of every caught churn point, sorted: model rule, inactive_7d, yardstick */
  leads: { model: number[], rule: number[], yardstick: number[] }
  /**
   * Churn points both the model rule and inactive_7d caught, paired: how many the model caught
   * later than the rule (the silences its veto postponed), and the median of how much later (days).
   */
  laterThanRule: { both: number, later: number, share: number, medianDaysLater: number }
  /**
   * The same comparison per 30-day period of the history (churn points by their last LOGIN,
   * alerts by when they fired): the learning curve. The model learns from labels 32 days old,
   * and what it can learn depends on the churners the stream has shown it so far; a population
   * whose decliners leave late is warned early only from then on (docs/churn-model.md, "Limits").
   */
  byPeriod: PeriodReport[]
  verdict: Verdict
}

/** One 30-day period of the history (the last may be shorter): days from the data's start. */
export interface PeriodReport {
  fromDay: number
  toDay: number
  churnEvents: number
  /** median lead (days) of the churn points of the period caught by each */
  modelLead: number
  ruleLead: number
  modelAlerts: number
  ruleAlerts: number
  /** precision of the alerts fired in the period that can be judged */
  modelPrecision: number
  rulePrecision: number
}

/** The length of a period of EvalReport.byPeriod. */
export const PERIOD_DAYS = 30

/** The targets a population is held to (README, "The churn model"). */
export interface Verdict {
  precisionWithin2Points: boolean
  /** null: no churner to recall in the history (a history shorter than a churner's 30 silent days) */
  recallAtLeast90: boolean | null
  /** null: no churn point whose lead the model and the rule both have */
  notLaterThanRule: boolean | null
  /** where the yardstick is ≥ 3 days earlier than the rule, whether the model is too (null otherwise) */
  threeDaysEarlier: boolean | null
  aucBeatsDaysInactive: boolean
}

/** The topology of an evaluation: the user's rules and model, no recall tasks, plus the shadow score rules. */
export function evalTopology (topologyFile: string, modelFile: string | null): { topology: Topology, sweep: number[] } {
  const doc = parseDocument(readConfigText(topologyFile))
  if (modelFile !== null) doc.set('model', modelFile)
  doc.delete('intervention')
  const rules = doc.get('rules')
  const existing = isSeq(rules) ? rules.items.length : 0
  const sweep = SWEEP.slice(0, Math.max(0, MAX_RULES - existing))
  if (isSeq(rules)) {
    for (const th of sweep) {
      const rule = doc.createNode({ id: sweepRuleId(th), description: 'eval shadow rule', when: [{ signal: 'churnScore', op: '>=', threshold: th }] })
      rules.items.push(rule)
    }
  }
  if (!isMap(doc.contents)) throw new EbbError(Errors.TOPOLOGY_INVALID, topologyFile, 'the topology must be a YAML mapping')
  const topology = parseTopology(doc.toString(), topologyFile)
  if (topology.model === null) throw new EbbError(Errors.USAGE, 'ebb eval: no churn model: give --model F, or set `model:` in the topology')
  return { topology, sweep }
}

export interface EvalOptions {
  /** the name in the report */
  input: string
  inputPath: string
  topologyFile: string
  modelFile: string | null
  labels: (snap: DailySnapshots) => Labels
  warmupDays: number
}

/** Replays and measures; the report is deterministic for the same inputs. */
export async function evaluate (opts: EvalOptions): Promise<EvalReport> {
  const { topology, sweep } = evalTopology(opts.topologyFile, opts.modelFile)
  const sink = new AlertsOnlySink()
  const data = await replayForModel(opts.inputPath, topology, { label: 'eval', sink, from: (start) => start + opts.warmupDays * DAY_MS })
  const labels = opts.labels(data.snapshots)
  return report(opts.input, topology, sweep, data, labels, sink.alerts)
}

type Alert = { u: number, at: number }

export function report (input: string, topology: Topology, sweep: number[], data: ReplayResult, labels: Labels, alerts: readonly AlertRecord[]): EvalReport {
  const snap = data.snapshots
  const model = topology.model
  if (model === null) throw new Error('evaluate: the topology has no model')
  const days = (data.end - data.start) / DAY_MS
  const users = data.users
  const churn = labels.churnEvents(data.end)
  const ctx: MeasureContext = { labels, churn, end: data.end, users, days }

  // Alerts by source: each rule, and the topology as a whole (every rule that is not a shadow).
  const byRule = new Map<string, Alert[]>()
  const whole: Alert[] = []
  for (const a of alerts) {
    const u = snap.userIndex(a.userId)
    let list = byRule.get(a.rule)
    if (list === undefined) { list = []; byRule.set(a.rule, list) }
    list.push({ u, at: a.firedAt })
    if (!a.rule.startsWith(SWEEP_PREFIX)) whole.push({ u, at: a.firedAt })
  }
  const modelRule = topology.rules.find((r) => !r.id.startsWith(SWEEP_PREFIX) && r.enabled && r.when.some((c) => c.signal.needsModel))
  const modelAlerts = modelRule === undefined ? [] : byRule.get(modelRule.id) ?? []
  const ruleAlerts = byRule.get('inactive_7d') ?? []
  const sources: AlertSourceReport[] = []
  const pairedModel = firstLeads(modelAlerts, churn)
  const pairedRule = firstLeads(ruleAlerts, churn)
  const leadsModel = sortedLeads(pairedModel)
  const leadsRule = sortedLeads(pairedRule)
  const laterBy: number[] = []
  let both = 0
  for (let k = 0; k < churn.length; k++) {
    if (Number.isNaN(pairedModel[k]) || Number.isNaN(pairedRule[k])) continue
    both++
    if (pairedModel[k] > pairedRule[k]) laterBy.push(pairedModel[k] - pairedRule[k])
  }
  if (modelRule !== undefined) sources.push(measure(modelRule.id, modelAlerts, ctx))
  const inactive7 = measure('inactive_7d', ruleAlerts, ctx)
  sources.push(inactive7)
  sources.push(measure('topology (any rule)', whole, ctx))
  // Once the partition has had labels to learn from (the first buckets mature after 32 days):
  // the same two sources over the alerts and churn points after that.
  const learnedFrom = data.start + (model.prior.learning.matureDays + 1) * DAY_MS
  if (modelRule !== undefined && data.end - learnedFrom > 14 * DAY_MS) {
    const later = { ...ctx, churn: churn.filter((c) => c.at >= learnedFrom) }
    const after = (l: Alert[]): Alert[] => l.filter((a) => a.at >= learnedFrom)
    sources.push(measure(`${modelRule.id}, after day ${model.prior.learning.matureDays + 1}`, after(modelAlerts), later))
    sources.push(measure(`inactive_7d, after day ${model.prior.learning.matureDays + 1}`, after(ruleAlerts), later))
  }
  const sweepReports = sweep.map((th) => ({ threshold: th, ...measure(`churnScore ≥ ${th}`, byRule.get(sweepRuleId(th)) ?? [], ctx) }))

  // Ranking on the scored days whose label is known.
  const rows = rankedRows(snap, labels.truth, data.end)
  const score = new Float64Array(rows.length)
  const inactive = new Float64Array(rows.length)
  const y = new Uint8Array(rows.length)
  const early: number[] = []
  const histogram: Array<[number, number]> = Array.from({ length: 20 }, () => [0, 0])
  let positives = 0
  rows.forEach((i, k) => {
    score[k] = snap.score[i]
    inactive[k] = snap.inactive[i]
    y[k] = labels.label(snap.user[i], snap.ts[i])
    positives += y[k]
    if (snap.inactive[i] < 7) early.push(k)
    histogram[Math.min(19, Math.floor(score[k] * 20))][y[k]]++
  })
  const question = labels.truth ? questionRanking(snap, data.end) : null
  const earlyScore = Float64Array.from(early, (k) => score[k])
  const earlyY = Uint8Array.from(early, (k) => y[k])

  const target = inactive7.precision
  const match = sweepReports.find((s) => s.precision >= target && s.judged > 0) ?? null
  const yard = yardstick(snap, ctx, target)
  const modelReport = sources[0]
  const aucModel = round(auc(score, y))
  const aucDays = round(auc(inactive, y))
  // The same once the partition has labels to learn from: the first weeks run on the prior.
  const later: number[] = []
  rows.forEach((i, k) => { if (snap.ts[i] >= learnedFrom) later.push(k) })
  const laterY = Uint8Array.from(later, (k) => y[k])
  const aucLearned = round(auc(Float64Array.from(later, (k) => score[k]), laterY))
  const aucDaysLearned = round(auc(Float64Array.from(later, (k) => inactive[k]), laterY))
  const iso = (ms: number): string => new Date(ms).toISOString()
  const autoIndex = modelRule?.when.find((c) => c.signal.needsModel)
  const thresholdText = autoIndex === undefined ? null : autoIndex.auto >= 0 ? thresholdSpecText(topology.modelThresholds[autoIndex.auto].spec) : `fixed at ${autoIndex.threshold}`
  return {
    input,
    labels: labels.source,
    model: { version: model.version, sha256: model.file.sha256, threshold: thresholdText, learned: data.learned },
    data: { from: iso(data.start), to: iso(data.end), days: round(days, 2), users, events: data.events },
    ranking: {
      snapshots: rows.length,
      positives,
      auc: aucModel,
      aucDaysInactive: aucDays,
      aucEarly: round(auc(earlyScore, earlyY)),
      aucLearned,
      aucDaysInactiveLearned: aucDaysLearned,
      calibration: roundBins(calibration(score, y)),
      histogram,
      question
    },
    sources,
    sweep: sweepReports,
    samePrecision: {
      targetPrecision: target,
      threshold: match?.threshold ?? null,
      model: match,
      medianLeadDaysEarlier: match === null ? Number.NaN : round(inactive7.leadDays.median - match.leadDays.median, 3)
    },
    yardstick: yard?.report ?? null,
    leads: { model: leadsModel, rule: leadsRule, yardstick: yard?.leads ?? [] },
    laterThanRule: { both, later: laterBy.length, share: round(both === 0 ? Number.NaN : laterBy.length / both), medianDaysLater: medianOf(laterBy) },
    byPeriod: periods(data.start, data.end, churn, pairedModel, pairedRule, modelRule === undefined ? [] : modelAlerts, ruleAlerts, ctx),
    verdict: {
      precisionWithin2Points: modelRule !== undefined && modelReport.precision >= target - 0.02,
      recallAtLeast90: Number.isNaN(modelReport.recall) ? null : modelRule !== undefined && modelReport.recall >= 0.9,
      notLaterThanRule: Number.isNaN(modelReport.leadDays.median) || Number.isNaN(inactive7.leadDays.median) ? null : modelRule !== undefined && modelReport.leadDays.median <= inactive7.leadDays.median,
      threeDaysEarlier: yard === null || !(yard.report.leadDays.median <= inactive7.leadDays.median - 3) ? null : modelReport.leadDays.median <= inactive7.leadDays.median - 3,
      aucBeatsDaysInactive: aucModel > aucDays
    }
  }
}

/** The scored days a ranking judges: all with ground truth, else those with 30 days of data after them. */
function rankedRows (snap: DailySnapshots, truth: boolean, end: number): number[] {
  const rows: number[] = []
  for (let i = 0; i < snap.n; i++) if ((truth || snap.ts[i] + LABEL_HORIZON_MS <= end) && !Number.isNaN(snap.score[i])) rows.push(i)
  return rows
}

const roundBins = (bins: CalibrationBin[]): CalibrationBin[] => bins.map((b) => ({ ...b, meanScore: round(b.meanScore), churnRate: round(b.churnRate) }))

/** EvalReport.ranking.question: the scored days with 30 days of data after them, labelled from the LOGINs. */
function questionRanking (snap: DailySnapshots, end: number): NonNullable<EvalReport['ranking']['question']> {
  const asked = derivedLabels(snap)
  const rows = rankedRows(snap, asked.truth, end)
  const score = Float64Array.from(rows, (i) => snap.score[i])
  const y = Uint8Array.from(rows, (i) => asked.label(snap.user[i], snap.ts[i]))
  return {
    snapshots: rows.length,
    positives: y.reduce((a, b) => a + b, 0),
    auc: round(auc(score, y)),
    aucDaysInactive: round(auc(Float64Array.from(rows, (i) => snap.inactive[i]), y)),
    calibration: roundBins(calibration(score, y))
  }
}

interface MeasureContext { labels: Labels, churn: Alert[], end: number, users: number, days: number }

/** EvalReport.byPeriod: `paired*` are the lead times per churn point (NaN: not caught), in `churn`'s order. */
function periods (start: number, end: number, churn: readonly Alert[], pairedModel: Float64Array, pairedRule: Float64Array, modelAlerts: readonly Alert[], ruleAlerts: readonly Alert[], ctx: MeasureContext): PeriodReport[] {
  const out: PeriodReport[] = []
  const precision = (list: readonly Alert[], lo: number, hi: number): { n: number, p: number } => {
    const j = judge(list, ctx, lo, hi)
    return { n: j.alerts, p: round(j.judged === 0 ? Number.NaN : j.truePositives / j.judged) }
  }
  for (let from = 0; start + from * DAY_MS < end; from += PERIOD_DAYS) {
    const lo = start + from * DAY_MS
    // a tail shorter than a week joins the last period
    const hi = end - (lo + PERIOD_DAYS * DAY_MS) < 7 * DAY_MS ? end : lo + PERIOD_DAYS * DAY_MS
    const m: number[] = []
    const r: number[] = []
    let events = 0
    churn.forEach((c, k) => {
      if (c.at < lo || c.at >= hi) return
      events++
      if (!Number.isNaN(pairedModel[k])) m.push(pairedModel[k])
      if (!Number.isNaN(pairedRule[k])) r.push(pairedRule[k])
    })
    const pm = precision(modelAlerts, lo, hi)
    const pr = precision(ruleAlerts, lo, hi)
    out.push({ fromDay: from, toDay: round((hi - start) / DAY_MS, 1), churnEvents: events, modelLead: medianOf(m), ruleLead: medianOf(r), modelAlerts: pm.n, ruleAlerts: pr.n, modelPrecision: pm.p, rulePrecision: pr.p })
    if (hi === end) break
  }
  return out
}

/** Per churn point (in order), the lead time (days) of its first alert in [point, point + 30 d], NaN without one. */
function firstLeads (list: readonly Alert[], churn: readonly Alert[]): Float64Array {
  const perUser = new Map<number, number[]>()
  for (const a of list) { let l = perUser.get(a.u); if (l === undefined) { l = []; perUser.set(a.u, l) } l.push(a.at) }
  for (const l of perUser.values()) l.sort((a, b) => a - b)
  return Float64Array.from(churn, (c) => {
    const first = perUser.get(c.u)?.find((t) => t >= c.at && t <= c.at + LABEL_HORIZON_MS)
    return first === undefined ? Number.NaN : (first - c.at) / DAY_MS
  })
}

/** Lead times (days) of the churn points with an alert in [point, point + 30 d], sorted. */
function leadsOf (list: readonly Alert[], churn: readonly Alert[]): number[] {
  return sortedLeads(firstLeads(list, churn))
}

/** The lead times of the caught churn points (firstLeads without the NaNs), sorted. */
function sortedLeads (paired: Float64Array): number[] {
  return Array.from(paired).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b)
}

/**
 * The alerts fired in [lo, hi), those of them that can be judged (ground truth, or 30 days of data
 * after them) and those judged right.
 */
function judge (list: readonly Alert[], ctx: MeasureContext, lo = Number.NEGATIVE_INFINITY, hi = Number.POSITIVE_INFINITY): { alerts: number, judged: number, truePositives: number } {
  let alerts = 0
  let judged = 0
  let truePositives = 0
  for (const a of list) {
    if (a.at < lo || a.at >= hi) continue
    alerts++
    if (ctx.labels.truth || a.at + LABEL_HORIZON_MS <= ctx.end) { judged++; truePositives += ctx.labels.label(a.u, a.at) }
  }
  return { alerts, judged, truePositives }
}

function measure (name: string, list: readonly Alert[], ctx: MeasureContext): AlertSourceReport {
  const { judged, truePositives: tp } = judge(list, ctx)
  const leads = leadsOf(list, ctx.churn)
  const q = quartiles(leads)
  return {
    name,
    alerts: list.length,
    judged,
    truePositives: tp,
    precision: round(judged === 0 ? Number.NaN : tp / judged),
    churnEvents: ctx.churn.length,
    caught: leads.length,
    recall: round(ctx.churn.length === 0 ? Number.NaN : leads.length / ctx.churn.length),
    alertsPer1kUsersPerDay: round(ctx.users === 0 || ctx.days <= 0 ? Number.NaN : list.length / ctx.users / ctx.days * 1000, 3),
    leadDays: { p25: round(q.p25, 3), median: round(q.median, 3), p75: round(q.p75, 3) }
  }
}

/** The yardstick's inputs: silence (per-user surprise, days, a full week) and activity decline. */
const YARD_FEATURES = [FeatureId.silenceSurprise, FeatureId.daysInactive, FeatureId.fullWeek, FeatureId.viewDrop, FeatureId.loginTrend]
const YARD_THRESHOLDS = Array.from({ length: 161 }, (_, k) => -10 + k * 0.125)

/**
 * The yardstick of what the data allows: a logistic regression on the user's silence surprise,
 * days of silence and activity decline, fitted in hindsight on this very population (its labels
 * known); the first scored day of a silence over a threshold is an alert (as for the model rule),
 * and the threshold is chosen in hindsight too: the earliest median lead among those at
 * inactive_7d's precision or better with a recall of 90% or more (or, if none reaches that
 * recall, the best recall).
 */
function yardstick (snap: DailySnapshots, ctx: MeasureContext, targetPrecision: number): { report: YardstickReport, leads: number[] } | null {
  if (!Number.isFinite(targetPrecision)) return null
  const d = YARD_FEATURES.length
  const rows: number[] = []
  for (let i = 0; i < snap.n; i++) if (ctx.labels.truth || snap.ts[i] + LABEL_HORIZON_MS <= ctx.end) rows.push(i)
  const X = new Float64Array(rows.length * d)
  const y = new Uint8Array(rows.length)
  let pos = 0
  rows.forEach((i, k) => {
    YARD_FEATURES.forEach((f, j) => { X[k * d + j] = snap.feature(i, f) })
    y[k] = ctx.labels.label(snap.user[i], snap.ts[i])
    pos += y[k]
  })
  if (pos === 0 || pos === rows.length) return null
  const fit = fitLogistic(X, y, rows.length, d, { l2: 1 })
  const z = (i: number): number => {
    let v = fit.intercept
    YARD_FEATURES.forEach((f, j) => { v += fit.weights[j] * (snap.feature(i, f) - fit.mean[j]) / fit.std[j] })
    return v
  }
  const lists: Alert[][] = YARD_THRESHOLDS.map(() => [])
  for (const spell of snap.spells()) {
    let prev = Number.NEGATIVE_INFINITY
    for (const i of spell) {
      const s = z(i)
      if (s <= prev) continue
      for (let k = 0; k < YARD_THRESHOLDS.length; k++) if (YARD_THRESHOLDS[k] > prev && YARD_THRESHOLDS[k] <= s) lists[k].push({ u: snap.user[i], at: snap.ts[i] })
      prev = s
    }
  }
  let best: { report: YardstickReport, leads: number[] } | null = null
  const better = (a: YardstickReport, b: YardstickReport | undefined): boolean => {
    if (b === undefined) return true
    const okA = a.recall >= 0.9
    const okB = b.recall >= 0.9
    if (okA !== okB) return okA
    if (!okA) return a.recall > b.recall
    return a.leadDays.median < b.leadDays.median
  }
  lists.forEach((list, k) => {
    const r = measure('yardstick', list, ctx)
    if (!(r.precision >= targetPrecision) || r.caught === 0) return
    const yr: YardstickReport = { ...r, threshold: round(sigmoid(YARD_THRESHOLDS[k])), weights: fit.weights.map((w) => round(w, 3)) }
    if (better(yr, best?.report)) best = { report: yr, leads: leadsOf(list, ctx.churn) }
  })
  return best
}

const round = (x: number, digits = 4): number => roundTo(x, digits)
/** The median of `values` (sorted in place), to 3 decimals; NaN when empty. */
const medianOf = (values: number[]): number => round(quartiles(values.sort((a, b) => a - b)).median, 3)

/** The report as Markdown: what README and a pull request show. */
export function reportMarkdown (r: EvalReport): string {
  const f = (x: number, d = 3): string => Number.isFinite(x) ? x.toFixed(d) : '—'
  const pct = (x: number): string => Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : '—'
  const row = (s: AlertSourceReport): string => `| ${s.name} | ${s.alerts} | ${pct(s.precision)} | ${pct(s.recall)} | ${f(s.alertsPer1kUsersPerDay, 2)} | ${f(s.leadDays.p25, 2)} | ${f(s.leadDays.median, 2)} | ${f(s.leadDays.p75, 2)} |`
  const head = '| alert source | alerts | precision | recall | alerts /1k users /day | lead p25 (days) | lead median | lead p75 |\n|---|---:|---:|---:|---:|---:|---:|---:|'
  const sp = r.samePrecision
  const v = r.verdict
  const mark = (b: boolean | null): string => b === null ? 'n/a' : b ? 'yes' : 'NO'
  const learned = r.model.learned
  const q = r.ranking.question ?? null
  return [
    `# ebb eval — ${r.input}`,
    '',
    `Model prior ${r.model.version}; model rule threshold ${r.model.threshold ?? '—'}; labels: ${r.labels}.`,
    `Data ${r.data.from} … ${r.data.to} (${r.data.days} days of history), ${r.data.users} users, ${r.data.events} events.`,
    learned === null ? '' : `Learned from the stream: ${learned.examples} labelled scored days (${learned.churnExamples} churned), ${learned.folds} daily updates; final threshold ${learned.thresholds.map((t) => t.toFixed(3)).join(', ')}.`,
    '',
    '## Alerts (lead time = days from the last LOGIN to the first alert; smaller is earlier)',
    '',
    head,
    ...r.sources.map(row),
    ...(r.yardstick === null ? [] : [row({ ...r.yardstick, name: `yardstick: silence + decline, fitted and thresholded (${r.yardstick.threshold}) in hindsight` })]),
    '',
    `Targets: precision within 2 points of inactive_7d ${mark(v.precisionWithin2Points)}; recall ≥ 90% ${mark(v.recallAtLeast90)}; median lead not later than inactive_7d ${mark(v.notLaterThanRule)}; ` +
      `3 days earlier where the yardstick is ${mark(v.threeDaysEarlier)}; AUC above daysInactive's ${mark(v.aucBeatsDaysInactive)}.`,
    `Of the ${r.laterThanRule.both} churn points both caught, the model caught ${r.laterThanRule.later} (${pct(r.laterThanRule.share)}) later than inactive_7d (postponed by its veto), by ${f(r.laterThanRule.medianDaysLater, 2)} days at the median.`,
    '',
    `### By ${PERIOD_DAYS}-day period of the history (the learning curve: the model learns from labels 32 days old, from the churners the stream has shown it so far)`,
    '',
    '| days | churn points | median lead: model / inactive_7d (days) | alerts: model / inactive_7d | precision: model / inactive_7d |\n|---|---:|---|---|---|',
    ...r.byPeriod.map((p) => `| ${p.fromDay}–${p.toDay} | ${p.churnEvents} | ${f(p.modelLead, 2)} / ${f(p.ruleLead, 2)} | ${p.modelAlerts} / ${p.ruleAlerts} | ${pct(p.modelPrecision)} / ${pct(p.rulePrecision)} |`),
    '',
    '![precision and recall](precision-recall.svg) ![precision against lead time](precision-lead.svg) ![lead time](lead-time.svg)',
    '',
    '## Ranking (scored days)',
    '',
    q === null
      ? 'Churned: no LOGIN within the next 30 days (derived from the events), the question the model learns; scored days with 30 days of data after them.'
      : 'Churned: the label file says the user had left by then (at or after their last LOGIN). Below it, the question the model learns from the stream: no LOGIN within the next 30 days (from the events; scored days with 30 days of data after them). They differ where users come back after 30 silent days.',
    '',
    `| label | scored days | churn share | AUC model | AUC daysInactive alone | AUC model, users < 7 days away | AUC model / daysInactive once learning |\n|---|---:|---:|---:|---:|---:|---:|\n| ${q === null ? 'no LOGIN within 30 days' : 'label file'} | ${r.ranking.snapshots} | ${pct(r.ranking.positives / r.ranking.snapshots)} | ${f(r.ranking.auc, 4)} | ${f(r.ranking.aucDaysInactive, 4)} | ${f(r.ranking.aucEarly, 4)} | ${f(r.ranking.aucLearned, 4)} / ${f(r.ranking.aucDaysInactiveLearned, 4)} |`,
    ...(q === null ? [] : [`| no LOGIN within 30 days | ${q.snapshots} | ${pct(q.positives / q.snapshots)} | ${f(q.auc, 4)} | ${f(q.aucDaysInactive, 4)} | | |`]),
    '',
    `## Fixed thresholds on the score (shadow rules)`,
    '',
    `At inactive_7d's precision (${pct(sp.targetPrecision)}) a fixed threshold would be ${sp.threshold ?? '— (none reaches it)'}` +
      (sp.model === null ? '.' : `: median lead ${f(sp.medianLeadDaysEarlier, 2)} days earlier than inactive_7d.`),
    '',
    head,
    ...r.sweep.map(row),
    '',
    '## Calibration (scored days)',
    '',
    q === null
      ? '| score | scored days | mean score | churn rate |\n|---|---:|---:|---:|'
      : '| score | scored days | mean score | churn rate (label file) | scored days with 30 days after | their share with no LOGIN within 30 days |\n|---|---:|---:|---:|---:|---:|',
    ...r.ranking.calibration.map((b, i) => `| ${b.from.toFixed(1)}–${b.to.toFixed(1)} | ${b.count} | ${f(b.meanScore)} | ${f(b.churnRate)} |` + (q === null ? '' : ` ${q.calibration[i].count} | ${f(q.calibration[i].churnRate)} |`)),
    '',
    '![calibration](calibration.svg) ![score histogram](score-histogram.svg)',
    ''
  ].join('\n')
}
