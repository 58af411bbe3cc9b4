import { EVENT_TYPES } from '../events/user-event.js'
import type { PartitionTask } from '../runtime/partition-task.js'
import { count, rate } from './progress.js'

export interface Summary {
  counts: {
    records: number
    eventsApplied: number
    eventsByType: Record<string, number>
    usersCreated: number
    usersErased: number
    alertsByRule: Record<string, number>
    disabledRules: Record<string, string>
    deadLettersByReason: Record<string, number>
    timersFired: number
    streamTime: string | null
    /** intervention stage: alert decisions, tasks and outcomes (absent without `intervention:`) */
    decisions?: Record<string, number>
    tasks?: number
    outcomes?: number
  }
  elapsedMs: number
}

export function summaryOf (task: PartitionTask, elapsedMs: number): Summary {
  const s = task.stats
  const alertsByRule: Record<string, number> = {}
  const disabledRules: Record<string, string> = {}
  for (const r of task.topology.rules) {
    if (r.enabled) alertsByRule[r.id] = s.alertsByRule.get(r.id) ?? 0
    else disabledRules[r.id] = r.disabledReason ?? 'disabled'
  }
  const eventsByType: Record<string, number> = {}
  EVENT_TYPES.forEach((t, i) => { if (s.byType[i] > 0) eventsByType[t] = s.byType[i] })
  const k = task.intervention?.kpis
  const intervention = k === undefined ? {} : { decisions: k.report().decisions, tasks: k.tasks, outcomes: k.outcomes }
  return {
    counts: {
      records: s.recordsIn,
      eventsApplied: s.eventsApplied,
      eventsByType,
      usersCreated: s.usersCreated,
      usersErased: s.usersErased,
      alertsByRule,
      disabledRules,
      deadLettersByReason: { ...s.deadLetters },
      timersFired: task.timers.fired,
      streamTime: Number.isFinite(task.watermark) ? new Date(task.watermark).toISOString() : null,
      ...intervention
    },
    elapsedMs
  }
}

export function printSummary (label: string, summary: Summary, out: NodeJS.WritableStream): void {
  const c = summary.counts
  const lines = [
    `${label}: ${count(c.records)} records in ${(summary.elapsedMs / 1000).toFixed(1)} s (${rate(c.records, summary.elapsedMs)}), ${count(c.eventsApplied)} events applied, ${count(c.usersCreated)} users`,
    `stream time: ${c.streamTime ?? '-'}   timers fired: ${count(c.timersFired)}`,
    'alerts by rule:',
    ...Object.entries(c.alertsByRule).map(([k, v]) => `  ${k.padEnd(20)} ${String(v).padStart(9)}`),
    ...Object.entries(c.disabledRules).map(([k, v]) => `  ${k.padEnd(20)} ${'disabled'.padStart(9)}  (${v})`),
    ...(c.decisions === undefined ? [] : [`recall tasks: ${count(c.tasks ?? 0)}   outcomes (recalls): ${count(c.outcomes ?? 0)}   decisions: ${Object.entries(c.decisions).map(([d, v]) => `${d} ${count(v)}`).join(', ')}`]),
    'dead letters by reason:',
    ...Object.entries(c.deadLettersByReason).map(([k, v]) => `  ${k.padEnd(20)} ${String(v).padStart(9)}`)
  ]
  out.write(lines.join('\n') + '\n')
}
