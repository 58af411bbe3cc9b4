import { readFileSync } from 'node:fs'
import { isMap, isSeq, parseDocument } from 'yaml'
import { EbbError, Errors } from '../errors.js'
import type { AlertRecord } from '../io/records.js'
import { MAX_RULES, parseTopology, type Topology } from '../rules/topology.js'
import { AlertsOnlySink, DAY_MS, type DailySnapshots, type Labels, LABEL_HORIZON_MS, replayForModel, type ReplayResult } from './dataset.js'
import { auc, calibration, type CalibrationBin, quartiles, roundTo } from './metrics.js'

/**
 * `ebb eval`: replays a labelled event file through the engine with the model, and measures what
 * a growth team gets from each alert source — the model rule, `inactive_7d` alone, and the whole
 * topology:
 *
 *   precision   of the alerts whose 30 days are over by the end of the data, the share after
 *               which the user did not log in within 30 days (the label at the alert's time)
 *   recall      of the churn points (a LOGIN followed by 30 silent days, judged by the end of the
 *               data), the share with an alert in [churn point, churn point + 30 d]
 *   lead time   for those, days from the last LOGIN to the first such alert: median and quartiles
 *               (smaller is earlier)
 *   volume      alerts per 1,000 users per day
 *
 * The model's ranking is measured on the daily snapshots (each user at each local midnight,
 * fewer than 30 days away): AUC, and a calibration table. To compare the model with inactive_7d
 * at the same precision, the replay also runs shadow rules `churnScore ≥ θ` for a sweep of θ
 * (rules are independent of each other, so shadows change nothing else), and the report picks
 * the lowest θ whose precision reaches inactive_7d's.
 */
export const SWEEP = [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
const SWEEP_PREFIX = 'eval_score_'
/** the shadow rule of threshold θ, e.g. eval_score_0_35 */
const sweepRuleId = (th: number): string => SWEEP_PREFIX + th.toFixed(2).replace('.', '_')

export interface AlertSourceReport {
  name: string
  alerts: number
  /** alerts whose 30-day window ends by the end of the data */
  judged: number
  truePositives: number
  precision: number
  churnEvents: number
  caught: number
  recall: number
  alertsPer1kUsersPerDay: number
  leadDays: { p25: number, median: number, p75: number }
}

export interface EvalReport {
  input: string
  labels: string
  model: { version: string, sha256: string, threshold: number | null }
  data: { from: string, to: string, days: number, users: number, events: number }
  ranking: {
    snapshots: number
    positives: number
    auc: number
    /** the same snapshots ranked by daysInactive alone: what the model adds over counting days */
    aucDaysInactive: number
    /** snapshots of users fewer than 7 days away: before inactive_7d can say anything */
    aucEarly: number
    calibration: CalibrationBin[]
  }
  sources: AlertSourceReport[]
  sweep: Array<AlertSourceReport & { threshold: number }>
  /** the model at the precision of inactive_7d */
  samePrecision: { targetPrecision: number, threshold: number | null, model: AlertSourceReport | null, medianLeadDaysEarlier: number }
}

/** The topology of an evaluation: the user's rules and model, no recall tasks, plus the shadow score rules. */
export function evalTopology (topologyFile: string, modelFile: string | null): { topology: Topology, sweep: number[] } {
  let text: string
  try { text = readFileSync(topologyFile, 'utf8') } catch (err) { throw new EbbError(Errors.INPUT_NOT_FOUND, topologyFile, (err as Error).message) }
  const doc = parseDocument(text)
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
  const data = await replayForModel(opts.inputPath, topology, { label: 'eval', withFeatures: false, sink, from: (start) => start + opts.warmupDays * DAY_MS })
  const labels = opts.labels(data.snapshots)
  return report(opts.input, topology, sweep, data, labels, sink.alerts)
}

export function report (input: string, topology: Topology, sweep: number[], data: ReplayResult, labels: Labels, alerts: readonly AlertRecord[]): EvalReport {
  const snap = data.snapshots
  const model = topology.model
  if (model === null) throw new Error('evaluate: the topology has no model')
  const days = (data.end - data.start) / DAY_MS
  const users = data.users
  const churn = labels.churnEvents(data.end)

  // Alerts by source: each rule, and the topology as a whole (every rule that is not a shadow).
  const byRule = new Map<string, Array<{ u: number, at: number }>>()
  const whole: Array<{ u: number, at: number }> = []
  for (const a of alerts) {
    const u = snap.userIndex(a.userId)
    let list = byRule.get(a.rule)
    if (list === undefined) { list = []; byRule.set(a.rule, list) }
    list.push({ u, at: a.firedAt })
    if (!a.rule.startsWith(SWEEP_PREFIX)) whole.push({ u, at: a.firedAt })
  }
  const source = (name: string, list: Array<{ u: number, at: number }>): AlertSourceReport => measure(name, list, labels, churn, data.end, users, days)
  const modelRule = topology.rules.find((r) => !r.id.startsWith(SWEEP_PREFIX) && r.enabled && r.when.some((c) => c.signal.needsModel))
  const sources: AlertSourceReport[] = []
  if (modelRule !== undefined) sources.push(source(modelRule.id, byRule.get(modelRule.id) ?? []))
  sources.push(source('inactive_7d', byRule.get('inactive_7d') ?? []))
  sources.push(source('topology (any rule)', whole))
  const sweepReports = sweep.map((th) => ({ threshold: th, ...source(`churnScore ≥ ${th}`, byRule.get(sweepRuleId(th)) ?? []) }))

  // Ranking on the daily snapshots whose label is known.
  const rows: number[] = []
  for (let i = 0; i < snap.n; i++) if (snap.ts[i] + LABEL_HORIZON_MS <= data.end && !Number.isNaN(snap.score[i])) rows.push(i)
  const score = new Float64Array(rows.length)
  const inactive = new Float64Array(rows.length)
  const y = new Uint8Array(rows.length)
  const early: number[] = []
  let positives = 0
  rows.forEach((i, k) => {
    score[k] = snap.score[i]
    inactive[k] = snap.inactive[i]
    y[k] = labels.label(snap.user[i], snap.ts[i])
    positives += y[k]
    if (snap.inactive[i] < 7) early.push(k)
  })
  const earlyScore = Float64Array.from(early, (k) => score[k])
  const earlyY = Uint8Array.from(early, (k) => y[k])

  const inactive7 = sources.find((s) => s.name === 'inactive_7d') as AlertSourceReport
  const target = inactive7.precision
  const match = sweepReports.find((s) => s.precision >= target && s.judged > 0) ?? null
  const iso = (ms: number): string => new Date(ms).toISOString()
  return {
    input,
    labels: labels.source,
    model: { version: model.version, sha256: model.file.sha256, threshold: modelRule?.when.find((c) => c.signal.needsModel)?.threshold ?? null },
    data: { from: iso(data.start), to: iso(data.end), days: round(days, 2), users, events: data.events },
    ranking: {
      snapshots: rows.length,
      positives,
      auc: round(auc(score, y)),
      aucDaysInactive: round(auc(inactive, y)),
      aucEarly: round(auc(earlyScore, earlyY)),
      calibration: calibration(score, y).map((b) => ({ ...b, meanScore: round(b.meanScore), churnRate: round(b.churnRate) }))
    },
    sources,
    sweep: sweepReports,
    samePrecision: {
      targetPrecision: target,
      threshold: match?.threshold ?? null,
      model: match,
      medianLeadDaysEarlier: match === null ? Number.NaN : round(inactive7.leadDays.median - match.leadDays.median, 3)
    }
  }
}

function measure (name: string, list: Array<{ u: number, at: number }>, labels: Labels, churn: Array<{ u: number, at: number }>, end: number, users: number, days: number): AlertSourceReport {
  let judged = 0
  let tp = 0
  const perUser = new Map<number, number[]>()
  for (const a of list) {
    if (a.at + LABEL_HORIZON_MS <= end) { judged++; tp += labels.label(a.u, a.at) }
    let l = perUser.get(a.u)
    if (l === undefined) { l = []; perUser.set(a.u, l) }
    l.push(a.at)
  }
  for (const l of perUser.values()) l.sort((a, b) => a - b)
  const leads: number[] = []
  for (const c of churn) {
    const l = perUser.get(c.u)
    if (l === undefined) continue
    const first = l.find((t) => t >= c.at && t <= c.at + LABEL_HORIZON_MS)
    if (first !== undefined) leads.push((first - c.at) / DAY_MS)
  }
  const q = quartiles(leads)
  return {
    name,
    alerts: list.length,
    judged,
    truePositives: tp,
    precision: round(judged === 0 ? Number.NaN : tp / judged),
    churnEvents: churn.length,
    caught: leads.length,
    recall: round(churn.length === 0 ? Number.NaN : leads.length / churn.length),
    alertsPer1kUsersPerDay: round(users === 0 || days <= 0 ? Number.NaN : list.length / users / days * 1000, 3),
    leadDays: { p25: round(q.p25, 3), median: round(q.median, 3), p75: round(q.p75, 3) }
  }
}

const round = (x: number, digits = 4): number => roundTo(x, digits)

/** The report as Markdown: what README and a pull request show. */
export function reportMarkdown (r: EvalReport): string {
  const f = (x: number, d = 3): string => Number.isFinite(x) ? x.toFixed(d) : '—'
  const pct = (x: number): string => Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : '—'
  const row = (s: AlertSourceReport): string => `| ${s.name} | ${s.alerts} | ${pct(s.precision)} | ${pct(s.recall)} | ${f(s.alertsPer1kUsersPerDay, 2)} | ${f(s.leadDays.p25, 2)} | ${f(s.leadDays.median, 2)} | ${f(s.leadDays.p75, 2)} |`
  const head = '| alert source | alerts | precision | recall | alerts /1k users /day | lead p25 (days) | lead median | lead p75 |\n|---|---:|---:|---:|---:|---:|---:|---:|'
  const sp = r.samePrecision
  return [
    `# ebb eval — ${r.input}`,
    '',
    `Model ${r.model.version} (rule threshold ${r.model.threshold ?? '—'}); labels: ${r.labels}.`,
    `Data ${r.data.from} … ${r.data.to} (${r.data.days} days), ${r.data.users} users, ${r.data.events} events.`,
    '',
    '## Ranking (daily snapshots, 30-day churn)',
    '',
    `| snapshots | churn share | AUC model | AUC daysInactive alone | AUC model, users < 7 days away |\n|---:|---:|---:|---:|---:|\n| ${r.ranking.snapshots} | ${pct(r.ranking.positives / r.ranking.snapshots)} | ${f(r.ranking.auc, 4)} | ${f(r.ranking.aucDaysInactive, 4)} | ${f(r.ranking.aucEarly, 4)} |`,
    '',
    '## Alerts (lead time = days from the last LOGIN to the first alert; smaller is earlier)',
    '',
    head,
    ...r.sources.map(row),
    '',
    `At inactive_7d's precision (${pct(sp.targetPrecision)}) the model needs threshold ${sp.threshold ?? '— (no threshold reaches it)'}:`,
    '',
    head,
    ...(sp.model === null ? [] : [row(sp.model)]),
    '',
    `Median lead time: ${f(sp.medianLeadDaysEarlier, 2)} days earlier than inactive_7d.`,
    '',
    '## Threshold sweep',
    '',
    head,
    ...r.sweep.map(row),
    '',
    '## Calibration (daily snapshots)',
    '',
    '| score | snapshots | mean score | churn rate |\n|---|---:|---:|---:|',
    ...r.ranking.calibration.map((b) => `| ${b.from.toFixed(1)}–${b.to.toFixed(1)} | ${b.count} | ${f(b.meanScore)} | ${f(b.churnRate)} |`),
    ''
  ].join('\n')
}
