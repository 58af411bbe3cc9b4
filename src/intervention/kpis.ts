/**
 * Running recall KPIs (README, "From alert to recall task"): tasks, recalls and recall rate per plan, channel,
 * churn type and arm, and the uplift of treatment over holdout.
 *
 * Uplift compares the first-step task of an episode across arms: a treatment user gets the
 * task; a holdout user gets nothing, but the task they would have got is kept as a shadow with
 * the same sendAt and attribution window. A LOGIN inside that window counts in either arm, so
 * the two rates measure the same thing and their difference is the effect of sending. Counts live in memory for the run (a restart starts them again; the Kafka
 * deployment exports them as Prometheus counters, which survive that the usual way).
 */

export interface KpiCounts {
  /** tasks emitted (treatment) or shadows kept (holdout) */
  assigned: number
  recalls: number
  delivered: number
  opened: number
  /** sum of recall cycle times, for the mean */
  cycleMsSum: number
}

export interface RateRow extends KpiCounts { key: string, recallRate: number | null, meanCycleHours: number | null }

export interface Uplift {
  treatmentRate: number | null
  holdoutRate: number | null
  /** treatmentRate − holdoutRate */
  uplift: number | null
  /** 95% interval of the difference (normal approximation) */
  ci95: [number, number] | null
  treatment: number
  holdout: number
}

export interface KpiReport {
  decisions: Record<string, number>
  followUps: number
  overall: Uplift
  byArm: RateRow[]
  byPlan: Array<RateRow & { uplift: Uplift }>
  byChannel: RateRow[]
  byChurnType: RateRow[]
}

const SEP = '\u0001'
const zero = (): KpiCounts => ({ assigned: 0, recalls: 0, delivered: 0, opened: 0, cycleMsSum: 0 })

/**
 * Two measures, kept apart so that neither biases the other:
 *  - uplift (intent to treat): per (plan, arm), the episode's first-step task or its holdout
 *    shadow, recalled when any LOGIN falls in that step's attribution window. A follow-up that
 *    takes the last touch does not move the treatment arm's number, and the holdout, which gets
 *    no follow-ups, is measured the same way.
 *  - attribution: per (plan, channel, churn type), every task sent (follow-ups included) and the
 *    outcomes it got by last touch. Treatment only: the holdout sent nothing.
 */
export class RecallKpis {
  private readonly itt = new Map<string, KpiCounts>()
  private readonly attr = new Map<string, KpiCounts>()
  readonly decisions = new Map<string, number>()
  followUps = 0
  /** records emitted: tasks (first steps and follow-ups) and outcomes */
  tasks = 0
  outcomes = 0

  decision (kind: string): void {
    this.decisions.set(kind, (this.decisions.get(kind) ?? 0) + 1)
  }

  /**
   * The cells again, found by their parts in nested maps: each part is a short string whose hash
   * V8 keeps, while a joined key is a new string to hash on every call (one per task emitted).
   */
  private readonly ittByParts = new Map<string, Map<string, KpiCounts>>()
  private readonly attrByParts = new Map<string, Map<string, Map<string, KpiCounts>>>()

  private ittCell (plan: string, arm: string): KpiCounts {
    let byArm = this.ittByParts.get(plan)
    if (byArm === undefined) { byArm = new Map(); this.ittByParts.set(plan, byArm) }
    let c = byArm.get(arm)
    if (c === undefined) { c = zero(); byArm.set(arm, c); this.itt.set(plan + SEP + arm, c) }
    return c
  }

  private attrCell (plan: string, channel: string, churnType: string): KpiCounts {
    let byChannel = this.attrByParts.get(plan)
    if (byChannel === undefined) { byChannel = new Map(); this.attrByParts.set(plan, byChannel) }
    let byType = byChannel.get(channel)
    if (byType === undefined) { byType = new Map(); byChannel.set(channel, byType) }
    let c = byType.get(churnType)
    if (c === undefined) { c = zero(); byType.set(churnType, c); this.attr.set(plan + SEP + channel + SEP + churnType, c) }
    return c
  }

  /** A first-step task or holdout shadow (the uplift denominator). */
  assigned (plan: string, arm: string): void { this.ittCell(plan, arm).assigned++ }
  /** A LOGIN inside a first step's attribution window, whichever task takes the last touch. */
  returned (plan: string, arm: string, cycleMs: number): void {
    const c = this.ittCell(plan, arm)
    c.recalls++
    c.cycleMsSum += cycleMs
  }

  sent (plan: string, channel: string, churnType: string): void { this.attrCell(plan, channel, churnType).assigned++ }
  recalled (plan: string, channel: string, churnType: string, cycleMs: number): void {
    const c = this.attrCell(plan, channel, churnType)
    c.recalls++
    c.cycleMsSum += cycleMs
  }

  delivered (plan: string, channel: string, churnType: string): void { this.attrCell(plan, channel, churnType).delivered++ }
  opened (plan: string, channel: string, churnType: string): void { this.attrCell(plan, channel, churnType).opened++ }

  /** Uplift cells: (plan, arm, counts); for metrics. */
  forEachAssignment (cb: (plan: string, arm: string, c: KpiCounts) => void): void {
    for (const [key, c] of this.itt) { const [plan, arm] = key.split(SEP); cb(plan, arm, c) }
  }

  /** Attribution cells: (plan, channel, churn type, counts); for metrics. */
  forEachSent (cb: (plan: string, channel: string, churnType: string, c: KpiCounts) => void): void {
    for (const [key, c] of this.attr) { const [plan, channel, churnType] = key.split(SEP); cb(plan, channel, churnType, c) }
  }

  /** Sums cells by one part of their key, optionally filtered. */
  private rollup (m: Map<string, KpiCounts>, dim: number, keep: (parts: string[]) => boolean = () => true): Map<string, KpiCounts> {
    const out = new Map<string, KpiCounts>()
    for (const [key, c] of m) {
      const parts = key.split(SEP)
      if (!keep(parts)) continue
      const t = out.get(parts[dim]) ?? zero()
      t.assigned += c.assigned
      t.recalls += c.recalls
      t.delivered += c.delivered
      t.opened += c.opened
      t.cycleMsSum += c.cycleMsSum
      out.set(parts[dim], t)
    }
    return out
  }

  private rows (m: Map<string, KpiCounts>): RateRow[] {
    return [...m.entries()].sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0).map(([key, c]) => ({
      key, ...c,
      recallRate: c.assigned > 0 ? round(c.recalls / c.assigned) : null,
      meanCycleHours: c.recalls > 0 ? round(c.cycleMsSum / c.recalls / 3_600_000) : null
    }))
  }

  report (): KpiReport {
    const byArm = this.rollup(this.itt, 1)
    const byPlan = this.rollup(this.attr, 0)
    for (const plan of this.rollup(this.itt, 0).keys()) if (!byPlan.has(plan)) byPlan.set(plan, zero())
    return {
      decisions: Object.fromEntries([...this.decisions.entries()].sort((a, b) => a[0] < b[0] ? -1 : 1)),
      followUps: this.followUps,
      overall: uplift(byArm.get('TREATMENT'), byArm.get('HOLDOUT')),
      byArm: this.rows(byArm),
      byPlan: this.rows(byPlan).map((r) => {
        const arms = this.rollup(this.itt, 1, (p) => p[0] === r.key)
        return { ...r, uplift: uplift(arms.get('TREATMENT'), arms.get('HOLDOUT')) }
      }),
      byChannel: this.rows(this.rollup(this.attr, 1)),
      byChurnType: this.rows(this.rollup(this.attr, 2))
    }
  }
}

function round (x: number): number { return Math.round(x * 1e6) / 1e6 }

/** Difference of two proportions with a 95% Wald interval. */
export function uplift (t: KpiCounts | undefined, h: KpiCounts | undefined): Uplift {
  const nT = t?.assigned ?? 0
  const nH = h?.assigned ?? 0
  const pT = nT > 0 ? (t as KpiCounts).recalls / nT : null
  const pH = nH > 0 ? (h as KpiCounts).recalls / nH : null
  if (pT === null || pH === null) return { treatmentRate: pT === null ? null : round(pT), holdoutRate: pH === null ? null : round(pH), uplift: null, ci95: null, treatment: nT, holdout: nH }
  const d = pT - pH
  const se = Math.sqrt(pT * (1 - pT) / nT + pH * (1 - pH) / nH)
  return { treatmentRate: round(pT), holdoutRate: round(pH), uplift: round(d), ci95: [round(d - 1.96 * se), round(d + 1.96 * se)], treatment: nT, holdout: nH }
}

const pct = (x: number | null): string => x === null ? '—' : `${(x * 100).toFixed(1)}%`

/** The short table `ebb replay` and `ebb demo` print after their summary. */
export function kpiTable (r: KpiReport): string {
  const lines: string[] = []
  const o = r.overall
  lines.push(`recall within the first task's window: treatment ${pct(o.treatmentRate)} of ${o.treatment}, holdout ${pct(o.holdoutRate)} of ${o.holdout}; uplift ${o.uplift === null ? '—' : `${(o.uplift * 100).toFixed(1)} pts`}${o.ci95 === null ? '' : ` (95% CI ${(o.ci95[0] * 100).toFixed(1)} to ${(o.ci95[1] * 100).toFixed(1)})`}`)
  // (the decisions are on the summary's line just above it: not printed twice)
  if (r.followUps > 0) lines.push(`follow-up tasks: ${r.followUps}`)
  const table = (title: string, rows: Array<RateRow & { uplift?: Uplift }>): void => {
    lines.push(`${title.padEnd(28)} ${'tasks'.padStart(7)} ${'recalls'.padStart(8)} ${'rate'.padStart(7)}${rows.some((x) => x.uplift !== undefined) ? ' ' + 'uplift'.padStart(8) : ''}`)
    for (const x of rows) {
      lines.push(`  ${x.key.padEnd(26)} ${String(x.assigned).padStart(7)} ${String(x.recalls).padStart(8)} ${pct(x.recallRate).padStart(7)}${x.uplift !== undefined ? ' ' + (x.uplift.uplift === null ? '—' : `${(x.uplift.uplift * 100).toFixed(1)}`).padStart(8) : ''}`)
    }
  }
  table('by plan (tasks sent)', r.byPlan)
  table('by channel', r.byChannel)
  table('by churn type', r.byChurnType)
  return lines.join('\n') + '\n'
}
