import type { EvalReport } from './evaluate.js'

/**
 * The pictures `ebb eval` writes beside eval.md, as plain SVG (no browser, no library):
 * precision–recall, precision against lead time, lead time, calibration and the score histogram. One small chart helper draws
 * axes, grid, series and a legend; each plot says on which population and history it holds.
 */
const W = 720
const H = 460
const M = { left: 70, right: 230, top: 56, bottom: 56 }
const COLORS = { model: '#d62728', rule: '#1f77b4', yardstick: '#2ca02c', sweep: '#ff7f0e', stayed: '#1f77b4', churned: '#d62728', grey: '#888888' }

interface Axis { min: number, max: number, label: string, ticks: number[], format: (v: number) => string }
interface Series { name: string, color: string, points: Array<[number, number]>, line?: boolean, marker?: boolean, dash?: string, labels?: string[] }

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
const num = (v: number): string => (Math.round(v * 10) / 10).toString()

function chart (title: string, subtitle: string, x: Axis, y: Axis, series: Series[], bars?: { width: number, groups: Array<{ x: number, values: Array<{ v: number, color: string }> }> }): string {
  const pw = W - M.left - M.right
  const ph = H - M.top - M.bottom
  const sx = (v: number): number => M.left + (Math.min(Math.max(v, x.min), x.max) - x.min) / (x.max - x.min) * pw
  const sy = (v: number): number => M.top + ph - (Math.min(Math.max(v, y.min), y.max) - y.min) / (y.max - y.min) * ph
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`)
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`)
  out.push(`<text x="${M.left}" y="24" font-size="16" font-weight="bold">${esc(title)}</text>`)
  out.push(`<text x="${M.left}" y="42" fill="#555555">${esc(subtitle)}</text>`)
  for (const t of x.ticks) {
    out.push(`<line x1="${num(sx(t))}" y1="${M.top}" x2="${num(sx(t))}" y2="${M.top + ph}" stroke="#eeeeee"/>`)
    out.push(`<text x="${num(sx(t))}" y="${M.top + ph + 18}" text-anchor="middle">${esc(x.format(t))}</text>`)
  }
  for (const t of y.ticks) {
    out.push(`<line x1="${M.left}" y1="${num(sy(t))}" x2="${M.left + pw}" y2="${num(sy(t))}" stroke="#eeeeee"/>`)
    out.push(`<text x="${M.left - 8}" y="${num(sy(t) + 4)}" text-anchor="end">${esc(y.format(t))}</text>`)
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#333333"/>`)
  out.push(`<text x="${M.left + pw / 2}" y="${H - 14}" text-anchor="middle">${esc(x.label)}</text>`)
  out.push(`<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(y.label)}</text>`)
  if (bars !== undefined) {
    for (const g of bars.groups) {
      const n = g.values.length
      g.values.forEach((b, k) => {
        const x0 = sx(g.x) + (k - n / 2) * bars.width / n * pw / (x.max - x.min)
        const w = bars.width / n * pw / (x.max - x.min)
        out.push(`<rect x="${num(x0)}" y="${num(sy(b.v))}" width="${num(Math.max(0.5, w - 1))}" height="${num(sy(y.min) - sy(b.v))}" fill="${b.color}" fill-opacity="0.75"/>`)
      })
    }
  }
  for (const s of series) {
    const pts = s.points.filter(([a, b]) => Number.isFinite(a) && Number.isFinite(b))
    if (pts.length === 0) continue
    if (s.line !== false && pts.length > 1) {
      out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dash === undefined ? '' : ` stroke-dasharray="${s.dash}"`} points="${pts.map(([a, b]) => `${num(sx(a))},${num(sy(b))}`).join(' ')}"/>`)
    }
    if (s.marker === true || pts.length === 1) {
      pts.forEach(([a, b], k) => {
        out.push(`<circle cx="${num(sx(a))}" cy="${num(sy(b))}" r="5" fill="${s.color}" stroke="#ffffff"/>`)
        const label = s.labels?.[k]
        if (label !== undefined) out.push(`<text x="${num(sx(a) + 7)}" y="${num(sy(b) - 7)}" font-size="10" fill="${s.color}">${esc(label)}</text>`)
      })
    }
  }
  // legend
  series.concat([]).forEach((s, k) => {
    const ly = M.top + 10 + k * 20
    const lx = M.left + pw + 16
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="${s.color}" stroke-width="3"${s.dash === undefined ? '' : ` stroke-dasharray="${s.dash}"`}/>`)
    out.push(`<text x="${lx + 28}" y="${ly + 4}">${esc(s.name)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}

const pct = (v: number): string => `${Math.round(v * 100)}%`
const range = (lo: number, hi: number, step: number): number[] => { const r: number[] = []; for (let v = lo; v <= hi + 1e-9; v += step) r.push(Math.round(v * 1e6) / 1e6); return r }

/** What every plot says under its title: the population and how much history the numbers hold. */
function subtitle (r: EvalReport): string {
  return `${r.input}: ${r.data.users} users, ${r.data.days} days of history; labels ${r.labels.startsWith('label file') ? 'ground truth' : 'derived from LOGINs'}`
}

export function precisionRecallSvg (r: EvalReport): string {
  const model = r.sources[0]
  const rule = r.sources.find((s) => s.name === 'inactive_7d')
  const points = r.sweep.filter((s) => Number.isFinite(s.precision) && Number.isFinite(s.recall)).map((s) => [s.recall, s.precision] as [number, number])
  const yMax = Math.min(1, Math.max(0.1, ...points.map((p) => p[1]), model?.precision ?? 0, rule?.precision ?? 0) * 1.1)
  const series: Series[] = [{ name: 'fixed score thresholds', color: COLORS.sweep, points, marker: true, labels: r.sweep.filter((s) => Number.isFinite(s.precision) && Number.isFinite(s.recall)).map((s) => String(s.threshold)) }]
  if (model !== undefined && model.name !== 'inactive_7d') series.push({ name: `${model.name} (learned)`, color: COLORS.model, points: [[model.recall, model.precision]], marker: true })
  if (rule !== undefined) series.push({ name: 'inactive_7d', color: COLORS.rule, points: [[rule.recall, rule.precision]], marker: true })
  if (r.yardstick !== null) series.push({ name: 'yardstick (hindsight)', color: COLORS.yardstick, points: [[r.yardstick.recall, r.yardstick.precision]], marker: true })
  // Recall is near 1 for most thresholds (every silence that lasts crosses them sooner or later):
  // the x axis starts at a round value below the lowest recall, so the curve is readable.
  const recalls = [...points.map((p) => p[0]), model?.recall ?? 1, rule?.recall ?? 1, r.yardstick?.recall ?? 1].filter(Number.isFinite)
  const xMin = Math.max(0, Math.floor((Math.min(...recalls) - 0.02) * 10) / 10)
  return chart('Precision and recall per alert', subtitle(r),
    { min: xMin, max: 1, label: 'recall (churn points alerted within 30 days after the last LOGIN)', ticks: range(xMin, 1, (1 - xMin) > 0.5 ? 0.2 : (1 - xMin) > 0.2 ? 0.1 : 0.05), format: pct },
    { min: 0, max: yMax, label: 'precision (alerts not followed by a LOGIN in 30 days)', ticks: range(0, yMax, yMax > 0.5 ? 0.2 : yMax > 0.2 ? 0.1 : 0.05), format: pct },
    series)
}

export function leadTimeSvg (r: EvalReport): string {
  const churn = r.sources[0]?.churnEvents ?? 0
  const cdf = (leads: number[]): Array<[number, number]> => {
    const pts: Array<[number, number]> = [[0, 0]]
    leads.forEach((l, k) => { pts.push([l, k / Math.max(1, churn)]); pts.push([l, (k + 1) / Math.max(1, churn)]) })
    if (leads.length > 0) pts.push([30, leads.length / Math.max(1, churn)])
    return pts
  }
  const series: Series[] = [
    { name: r.sources[0]?.name ?? 'model', color: COLORS.model, points: cdf(r.leads.model) },
    { name: 'inactive_7d', color: COLORS.rule, points: cdf(r.leads.rule) }
  ]
  if (r.leads.yardstick.length > 0) series.push({ name: 'yardstick (hindsight)', color: COLORS.yardstick, points: cdf(r.leads.yardstick), dash: '6 4' })
  return chart('How early churners are caught', `${subtitle(r)}; ${churn} churn points`,
    { min: 0, max: 30, label: 'days from the last LOGIN to the first alert', ticks: range(0, 30, 5), format: (v) => String(v) },
    { min: 0, max: 1, label: 'share of churn points alerted by then', ticks: range(0, 1, 0.2), format: pct },
    series)
}

export function calibrationSvg (r: EvalReport): string {
  const bins = r.ranking.calibration.filter((b) => b.count > 0)
  // With a label file, both labels: the file's (left for good) and the question the model learns
  // (no LOGIN within 30 days), which a user who comes back after a month answers differently.
  const q = (r.ranking.question?.calibration ?? []).filter((b) => b.count > 0)
  return chart('Calibration of the churn score', `${subtitle(r)}; scored days`,
    { min: 0, max: 1, label: 'predicted probability of no LOGIN in 30 days (bin mean)', ticks: range(0, 1, 0.2), format: pct },
    { min: 0, max: 1, label: 'observed share that churned', ticks: range(0, 1, 0.2), format: pct },
    [
      { name: 'perfect calibration', color: COLORS.grey, points: [[0, 0], [1, 1]], dash: '4 4' },
      { name: q.length === 0 ? 'churn score' : 'churned (label file)', color: COLORS.model, points: bins.map((b) => [b.meanScore, b.churnRate]), marker: true, labels: bins.map((b) => `${b.count}`) },
      ...(q.length === 0 ? [] : [{ name: 'no LOGIN within 30 days', color: COLORS.rule, points: q.map((b): [number, number] => [b.meanScore, b.churnRate]), marker: true }])
    ])
}

export function scoreHistogramSvg (r: EvalReport): string {
  const h = r.ranking.histogram
  const stayed = h.reduce((a, b) => a + b[0], 0)
  const churned = h.reduce((a, b) => a + b[1], 0)
  const share = h.map(([s, c]) => [s / Math.max(1, stayed), c / Math.max(1, churned)])
  const yMax = Math.max(0.05, ...share.flat()) * 1.1
  return chart('Churn score of churners and stayers', `${subtitle(r)}; share of each group's scored days`,
    { min: 0, max: 1, label: 'churn score', ticks: range(0, 1, 0.2), format: pct },
    { min: 0, max: yMax, label: 'share of scored days', ticks: range(0, yMax, yMax > 0.5 ? 0.2 : 0.1), format: pct },
    [
      { name: `stayed (${stayed})`, color: COLORS.stayed, points: [], line: false },
      { name: `churned (${churned})`, color: COLORS.churned, points: [], line: false }
    ],
    { width: 0.05, groups: share.map(([s, c], k) => ({ x: k * 0.05 + 0.025, values: [{ v: s, color: COLORS.stayed }, { v: c, color: COLORS.churned }] })) })
}

/** Precision against median lead: what a threshold buys in earliness and costs in false alarms. */
export function precisionLeadSvg (r: EvalReport): string {
  const model = r.sources[0]
  const rule = r.sources.find((s) => s.name === 'inactive_7d')
  const sweep = r.sweep.filter((s) => Number.isFinite(s.precision) && Number.isFinite(s.leadDays.median))
  const yMax = Math.min(1, Math.max(0.1, ...sweep.map((s) => s.precision), model?.precision ?? 0, rule?.precision ?? 0) * 1.1)
  const series: Series[] = [{ name: 'fixed score thresholds', color: COLORS.sweep, points: sweep.map((s) => [s.leadDays.median, s.precision]), marker: true, labels: sweep.map((s) => String(s.threshold)) }]
  if (model !== undefined && model.name !== 'inactive_7d') series.push({ name: `${model.name} (learned)`, color: COLORS.model, points: [[model.leadDays.median, model.precision]], marker: true })
  if (rule !== undefined) series.push({ name: 'inactive_7d', color: COLORS.rule, points: [[rule.leadDays.median, rule.precision]], marker: true })
  if (r.yardstick !== null) series.push({ name: 'yardstick (hindsight)', color: COLORS.yardstick, points: [[r.yardstick.leadDays.median, r.yardstick.precision]], marker: true })
  const xMax = Math.max(10, ...series.flatMap((s) => s.points.map((p) => p[0])).filter(Number.isFinite))
  return chart('Precision against lead time', subtitle(r),
    { min: 0, max: Math.ceil(xMax / 5) * 5, label: 'median days from the last LOGIN to the alert (smaller is earlier)', ticks: range(0, Math.ceil(xMax / 5) * 5, 5), format: (v) => String(v) },
    { min: 0, max: yMax, label: 'precision per alert', ticks: range(0, yMax, yMax > 0.5 ? 0.2 : yMax > 0.2 ? 0.1 : 0.05), format: pct },
    series)
}

/** Every plot, by file name. */
export function evalPlots (r: EvalReport): Record<string, string> {
  return {
    'precision-recall.svg': precisionRecallSvg(r),
    'precision-lead.svg': precisionLeadSvg(r),
    'lead-time.svg': leadTimeSvg(r),
    'calibration.svg': calibrationSvg(r),
    'score-histogram.svg': scoreHistogramSvg(r)
  }
}
