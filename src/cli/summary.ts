import { EVENT_TYPES } from '../events/user-event.js'
import type { PartitionTask } from '../runtime/partition-task.js'
import { count, rate } from './progress.js'

export interface Summary {
  counts: {
    records: number
    /** whitespace-only input lines (files): lines = records + blankLines */
    blankLines: number
    eventsApplied: number
    eventsByType: Record<string, number>
    usersCreated: number
    usersErased: number
    /**
     * events dated too far ahead of stream time that wait for the next event to confirm their time
     * (at most one per partition; kept in the state, docs/time.md)
     */
    eventsWaiting: number
    alertsByRule: Record<string, number>
    disabledRules: Record<string, string>
    deadLettersByReason: Record<string, number>
    timersFired: number
    streamTime: string | null
    /** intervention stage: alert decisions, tasks and outcomes (absent without `intervention:`) */
    decisions?: Record<string, number>
    tasks?: number
    outcomes?: number
    /** the churn model: what each partition learned from the stream (absent without a model) */
    model?: Array<{ partition: number, labelledDays: number, churnedDays: number, dailyUpdates: number, thresholds: number[], coefficients: number[] }>
  }
  elapsedMs: number
}

/** The counts of a run: one partition task, or the partitions of one replay (their KPIs are shared). */
export function summaryOf (taskOrTasks: PartitionTask | readonly PartitionTask[], elapsedMs: number): Summary {
  const tasks = Array.isArray(taskOrTasks) ? taskOrTasks as readonly PartitionTask[] : [taskOrTasks as PartitionTask]
  const first = tasks[0]
  const sum = (f: (t: PartitionTask) => number): number => tasks.reduce((n, t) => n + f(t), 0)
  const alertsByRule: Record<string, number> = {}
  const disabledRules: Record<string, string> = {}
  for (const r of first.topology.rules) {
    if (r.enabled) alertsByRule[r.id] = sum((t) => t.stats.alertsByRule.get(r.id) ?? 0)
    else disabledRules[r.id] = r.disabledReason ?? 'disabled'
  }
  const eventsByType: Record<string, number> = {}
  EVENT_TYPES.forEach((name, i) => { const n = sum((t) => t.stats.byType[i]); if (n > 0) eventsByType[name] = n })
  const deadLettersByReason = { ...first.stats.deadLetters }
  for (const k of Object.keys(deadLettersByReason) as Array<keyof typeof deadLettersByReason>) deadLettersByReason[k] = sum((t) => t.stats.deadLetters[k])
  const k = first.intervention?.kpis
  const intervention = k === undefined ? {} : { decisions: k.report().decisions, tasks: k.tasks, outcomes: k.outcomes }
  const watermark = Math.max(...tasks.map((t) => t.watermark))
  const r6 = (x: number): number => Math.round(x * 1e6) / 1e6
  const learned = tasks.flatMap((t, partition) => {
    if (t.learner === null) return []
    const l = t.learner.summary()
    return [{ partition, labelledDays: l.examples, churnedDays: l.churnExamples, dailyUpdates: l.folds, thresholds: l.thresholds.map(r6), coefficients: l.coefficients.map(r6) }]
  })
  return {
    counts: {
      records: sum((t) => t.stats.recordsIn),
      blankLines: sum((t) => t.stats.blankLines),
      eventsApplied: sum((t) => t.stats.eventsApplied),
      eventsByType,
      usersCreated: sum((t) => t.stats.usersCreated),
      usersErased: sum((t) => t.stats.usersErased),
      eventsWaiting: sum((t) => t.heldEventTime === null ? 0 : 1),
      alertsByRule,
      disabledRules,
      deadLettersByReason,
      timersFired: sum((t) => t.timers.fired),
      streamTime: Number.isFinite(watermark) ? new Date(watermark).toISOString() : null,
      ...intervention,
      ...(learned.length === 0 ? {} : { model: learned })
    },
    elapsedMs
  }
}

export function printSummary (label: string, summary: Summary, out: NodeJS.WritableStream): void {
  const c = summary.counts
  const lines = [
    `${label}: ${count(c.records)} records${c.blankLines > 0 ? ` (and ${count(c.blankLines)} blank lines)` : ''} in ${(summary.elapsedMs / 1000).toFixed(1)} s (${rate(c.records, summary.elapsedMs)}), ${count(c.eventsApplied)} events applied, ${count(c.usersCreated)} users`,
    `stream time: ${c.streamTime ?? '-'}   timers fired: ${count(c.timersFired)}`,
    ...(c.eventsWaiting === 0 ? [] : [`${c.eventsWaiting} event(s) dated more than time.future.maxStep ahead of stream time wait for the next event to confirm their time (kept in the state)`]),
    'alerts by rule:',
    ...Object.entries(c.alertsByRule).map(([k, v]) => `  ${k.padEnd(20)} ${String(v).padStart(9)}`),
    ...Object.entries(c.disabledRules).map(([k, v]) => `  ${k.padEnd(20)} ${'disabled'.padStart(9)}  (${v})`),
    ...(c.decisions === undefined ? [] : [`recall tasks: ${count(c.tasks ?? 0)}   outcomes (recalls): ${count(c.outcomes ?? 0)}   decisions: ${Object.entries(c.decisions).map(([d, v]) => `${d} ${count(v)}`).join(', ')}`]),
    'dead letters by reason:',
    ...Object.entries(c.deadLettersByReason).map(([k, v]) => `  ${k.padEnd(20)} ${String(v).padStart(9)}`),
    ...(c.model ?? []).map((m) => `churn model, partition ${m.partition}: learned from ${count(m.labelledDays)} labelled days (${count(m.churnedDays)} churned) in ${m.dailyUpdates} daily updates; model_risk threshold ${m.thresholds.map((t) => t.toFixed(3)).join(', ')}`)
  ]
  out.write(lines.join('\n') + '\n')
}
