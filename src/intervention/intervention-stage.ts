import { fmix32, fnv1a32, FNV_OFFSET, FNV_PRIME, hex32 } from '../state/hash.js'
import { CHANNELS } from '../events/user-event.js'
import type { AlertRecord } from '../io/records.js'
import type { OutputSink } from '../io/sinks.js'
import { conditionsHold } from '../rules/conditions.js'
import type { Rule } from '../rules/topology.js'
import { activeHour, daysInactive, type SignalParams, valueTier } from '../signals/signals.js'
import { NO_TASKS, TASK_CLOSED, TASK_DELIVERED, TASK_HOLDOUT, TASK_OPENED, TASK_RECALLED, TASK_RETURNED, type TaskEntry, type UserState } from '../state/user-state.js'
import { CHURN_TYPES, type ChurnType, type InterventionConfig, MAX_CAP_DAYS, type Plan, render, VALUE_TIERS } from './config.js'
import { RecallKpis } from './kpis.js'
import type { RuleSlots } from '../rules/slots.js'

const HOUR_MS = 3_600_000
const DAY_MS = 86_400_000

type Decision = NonNullable<AlertRecord['decision']>

/**
 * The intervention stage (README, "From alert to recall task"): from an alert to at most one recall task per
 * (user, episode, plan step), and from a LOGIN to the outcome of the task that brought the user
 * back. Runs inside the partition task's synchronous loop; every decision is a function of the
 * user's state and the event time, so replays and restarts decide the same.
 *
 * Per alert, in order:
 *   churn type (topology rules, first match) · value tier · arm (hash of userId and experiment)
 *   plan: win-back when daysInactive > winbackAfterDays, else the first plan for (type, tier)
 *   already a task for (episode, plan, step 0)?            → ALREADY_TASKED (HOLDOUT in that arm)
 *   no consented channel among the plan's                  → NO_CONSENT
 *   first instant outside quiet hours (the user's activeHour when the alert falls in quiet hours)
 *   first channel in plan order whose caps allow that local day → TASK (WINBACK for win-back plans)
 *   else the first later local day, inside the golden window, on which one does → DEFERRED
 *   else                                                    → CAPPED
 *   arm HOLDOUT: the task is kept as a shadow, not sent     → HOLDOUT
 */
export class InterventionStage {
  /** the run's recall KPIs (one object shared by the partitions of a `replay --partitions N`) */
  readonly kpis: RecallKpis
  private readonly plansById: Map<string, Plan>
  private readonly channelVars = { link: '', days: '', hook: '' }

  /** rule ids by the slot a task entry records (rules/slots.ts): a reordered topology still names the right rule */
  private readonly ruleIds: readonly string[]

  constructor (readonly config: InterventionConfig, rules: readonly Rule[], private readonly params: SignalParams, private readonly sink: OutputSink,
    kpis: RecallKpis = new RecallKpis(), private readonly slots: RuleSlots | null = null) {
    this.kpis = kpis
    this.ruleIds = slots === null ? rules.map((r) => r.id) : slots.ids
    this.plansById = new Map(config.plans.plans.map((p) => [p.id, p]))
  }

  /** Decides an alert in place (churnType, arm, decision, taskId) and emits its task, if any. */
  decide (s: UserState, alert: AlertRecord, rule: Rule, today: number, at: number): void {
    const cfg = this.config
    const typeIndex = this.classify(s, today)
    const churnType = CHURN_TYPES[typeIndex]
    const arm = armOf(s.userId, cfg.experiment, cfg.holdoutShare)
    alert.churnType = churnType
    alert.arm = arm
    const inactive = daysInactive(s, today)
    const winback = inactive > cfg.winbackAfterDays
    const plan = (winback ? cfg.plans.winback : cfg.plans.regular)[typeIndex * VALUE_TIERS.length + VALUE_TIERS.indexOf(alert.valueTier)]
    const episodeTs = s.episodeOpenTs
    this.prune(s, at)
    const existing = findEntry(s, episodeTs, plan.id, 0)
    if (existing !== undefined) {
      // The holdout arm stays HOLDOUT for every alert of the episode; treatment names its task.
      if ((existing.flags & TASK_HOLDOUT) !== 0) { this.decided(alert, 'HOLDOUT'); return }
      alert.taskId = taskIdOf(s.userId, episodeTs, plan.id, 0)
      this.decided(alert, 'ALREADY_TASKED')
      return
    }
    const step = plan.steps[0]
    const channels = this.consentedChannels(s, step.channelIndexes)
    if (channels.length === 0) { this.decided(alert, 'NO_CONSENT'); return }
    const open = s.zone.localDay(episodeTs)
    const windowEnd = winback ? at + plan.expiresAfterMs : episodeTs + (cfg.holidays.has(open) ? cfg.holidayWindowMs : cfg.goldenWindowMs)
    const slot = this.chooseSlot(s, channels, at, windowEnd)
    if (slot === null) { this.decided(alert, 'CAPPED'); return }
    const entry: TaskEntry = {
      episodeTs, planId: plan.id, step: 0, rule: this.slots === null ? rule.index : this.slots.slotOf[rule.index], channel: slot.channel, flags: arm === 'HOLDOUT' ? TASK_HOLDOUT : 0,
      sendAt: slot.sendAt, attributionHours: plan.attributionWindowHours, churnType: typeIndex
    }
    addEntry(s, entry)
    this.kpis.assigned(plan.id, arm)
    if (arm === 'HOLDOUT') { this.decided(alert, 'HOLDOUT'); return }
    alert.taskId = this.emit(s, entry, plan, alert.alertId, alert.episodeId, alert.valueTier, inactive)
    this.decided(alert, slot.deferred ? 'DEFERRED' : winback ? 'WINBACK' : 'TASK')
  }

  private decided (alert: AlertRecord, d: Decision): void {
    alert.decision = d
    this.kpis.decision(d)
  }

  /** Index into CHURN_TYPES: the first churn-type rule whose conditions all hold, else LOW_ACTIVITY. */
  classify (s: UserState, today: number): number {
    for (const r of this.config.churnTypes) if (conditionsHold(r.when, s, today, this.params)) return CHURN_TYPES.indexOf(r.type)
    return CHURN_TYPES.indexOf('LOW_ACTIVITY' satisfies ChurnType)
  }

  /**
   * The step's channels (indexes, in the plan's order) that the user consents to, in a scratch
   * array reused by every call: valid until the next call (one decision at a time, no allocation).
   */
  private consentedChannels (s: UserState, channels: readonly number[]): number[] {
    const out = this.channelScratch
    out.length = 0
    for (let i = 0; i < channels.length; i++) if (this.consented(s, channels[i])) out.push(channels[i])
    return out
  }

  private readonly channelScratch: number[] = []

  private consented (s: UserState, ch: number): boolean {
    const bit = 1 << ch
    if ((s.consentGranted & bit) !== 0) return true
    if ((s.consentRevoked & bit) !== 0) return false
    return this.config.consentByDefault[ch]
  }

  private quiet (hour: number): boolean {
    const { quietFrom: from, quietTo: to } = this.config
    return from > to ? hour >= from || hour < to : hour >= from && hour < to
  }

  /**
   * The first instant ≥ `at` outside quiet hours: `at` itself when allowed; else the user's
   * activeHour if that hour is allowed and comes before `latest`, else the end of quiet hours.
   */
  private allowedFrom (s: UserState, at: number, latest: number): number {
    const z = s.zone
    if (!this.quiet(z.localHour(at))) return at
    const day = z.localDay(at)
    const ah = activeHour(s)
    if (!Number.isNaN(ah) && !this.quiet(ah)) {
      for (let d = day; d <= day + 1; d++) {
        const t = z.atLocalHour(d, ah)
        if (t > at) { if (t <= latest) return t; break }
      }
    }
    for (let d = day; d <= day + 1; d++) {
      const t = z.atLocalHour(d, this.config.quietTo)
      if (t > at) return t
    }
    return z.atLocalHour(day + 2, this.config.quietTo)
  }

  /** The first (channel, sendAt) that consent, caps, quiet hours and the window allow. */
  private chooseSlot (s: UserState, channels: number[], at: number, windowEnd: number): { channel: number, sendAt: number, deferred: boolean } | null {
    const z = s.zone
    const first = this.allowedFrom(s, at, windowEnd)
    if (first > windowEnd) return null
    const day0 = z.localDay(first)
    for (const ch of channels) if (this.capsAllow(s, ch, day0)) return { channel: ch, sendAt: first, deferred: false }
    const lastDay = z.localDay(windowEnd)
    for (let d = day0 + 1; d <= lastDay; d++) {
      const t = this.allowedFrom(s, z.startOfDay(d), windowEnd)
      if (t > windowEnd) break
      for (const ch of channels) if (this.capsAllow(s, ch, z.localDay(t))) return { channel: ch, sendAt: t, deferred: true }
    }
    return null
  }

  /**
   * Whether one more send on `channel` on local day `day` keeps every cap: per channel and
   * across channels, in every window of `days` consecutive local days that contains `day`
   * (already scheduled later sends count too, so a deferred task cannot break a cap later).
   */
  private capsAllow (s: UserState, channel: number, day: number): boolean {
    const c = this.config.channelCaps[channel]
    if (c !== null && !fits(s, day, c.max, c.days, channel)) return false
    const all = this.config.allCap
    return all === null || fits(s, day, all.max, all.days, -1)
  }

  private emit (s: UserState, e: TaskEntry, plan: Plan, alertId: string, episodeId: string, valueTier: string, inactive: number): string {
    const taskId = taskIdOf(s.userId, e.episodeTs, plan.id, e.step)
    const channel = CHANNELS[e.channel]
    const template = plan.steps[e.step].templates.get(this.config.locale)?.get(channel)
    if (template === undefined) throw new Error(`plan ${plan.id} has no ${channel} template for ${this.config.locale}`) // checked at load
    const link = this.config.plans.linkBase + taskId
    const vars = this.channelVars
    vars.link = link
    vars.days = Number.isNaN(inactive) ? '0' : String(Math.min(999, inactive))
    vars.hook = plan.hook.value
    this.kpis.tasks++
    this.kpis.sent(plan.id, channel, CHURN_TYPES[e.churnType])
    this.sink.task({
      taskId,
      userId: s.userId,
      episodeId,
      alertId,
      planId: plan.id,
      churnType: CHURN_TYPES[e.churnType],
      valueTier,
      channel,
      title: template.title === null ? null : render(template.title, vars),
      body: render(template.body, vars),
      link,
      sendAt: e.sendAt,
      expiresAt: e.sendAt + plan.expiresAfterMs,
      attributionWindowHours: e.attributionHours,
      experiment: this.config.experiment,
      arm: 'TREATMENT'
    })
    return taskId
  }

  /**
   * A LOGIN: the open entries whose attribution window holds it are candidates; the one sent
   * last takes the recall (last touch) and gets the one Outcome it can ever have; the others
   * are closed without one. A holdout shadow counts a holdout recall and emits nothing.
   */
  onLogin (s: UserState, ts: number): void {
    const tasks = s.tasks
    if (tasks.length === 0) return
    let best = -1
    for (let i = 0; i < tasks.length; i++) {
      const t = tasks[i]
      if (!inWindow(t, ts)) continue
      // Uplift (both arms): the first step's window saw the user return.
      if (t.step === 0 && (t.flags & TASK_RETURNED) === 0) {
        t.flags |= TASK_RETURNED
        this.kpis.returned(t.planId, (t.flags & TASK_HOLDOUT) !== 0 ? 'HOLDOUT' : 'TREATMENT', ts - t.sendAt)
      }
      if ((t.flags & (TASK_CLOSED | TASK_RECALLED | TASK_HOLDOUT)) !== 0) continue
      if (best < 0 || t.sendAt > tasks[best].sendAt || (t.sendAt === tasks[best].sendAt && t.step > tasks[best].step)) best = i
    }
    if (best < 0) return
    for (let i = 0; i < tasks.length; i++) {
      const t = tasks[i]
      if (!inWindow(t, ts) || (t.flags & (TASK_CLOSED | TASK_RECALLED | TASK_HOLDOUT)) !== 0) continue
      if (i !== best) { t.flags |= TASK_CLOSED; continue } // another task took the last touch
      t.flags |= TASK_RECALLED
      const channel = CHANNELS[t.channel]
      this.kpis.recalled(t.planId, channel, CHURN_TYPES[t.churnType], ts - t.sendAt)
      this.kpis.outcomes++
      this.sink.outcome({ taskId: taskIdOf(s.userId, t.episodeTs, t.planId, t.step), userId: s.userId, planId: t.planId, channel, sentAt: t.sendAt, recalledAt: ts, cycleTimeMs: ts - t.sendAt })
    }
  }

  /** MESSAGE_DELIVERED / MESSAGE_OPENED carrying a taskId mark that task (the signal is updated by apply). */
  onMessage (s: UserState, taskId: string, opened: boolean): void {
    for (const t of s.tasks) {
      if ((t.flags & TASK_HOLDOUT) !== 0 || taskIdOf(s.userId, t.episodeTs, t.planId, t.step) !== taskId) continue
      const bit = opened ? TASK_OPENED : TASK_DELIVERED
      if ((t.flags & bit) !== 0) return
      t.flags |= bit
      const args = [t.planId, CHANNELS[t.channel], CHURN_TYPES[t.churnType]] as const
      if (opened) this.kpis.opened(...args)
      else this.kpis.delivered(...args)
      return
    }
  }

  /**
   * The user's local-midnight timer: a follow-up step is due when the previous step was sent
   * at least its afterHours ago, the episode is still open (no LOGIN since) and the previous
   * step brought no recall. Follow-ups are sent the same day (quiet hours and caps applied) or
   * not at all; the holdout arm gets none, as it got no first step.
   */
  onTimer (s: UserState, due: number): void {
    if (s.episodeOpenTs === 0 || s.tasks.length === 0) return
    const n = s.tasks.length
    for (let i = 0; i < n; i++) {
      const prev = s.tasks[i]
      if (prev.episodeTs !== s.episodeOpenTs || (prev.flags & (TASK_HOLDOUT | TASK_RECALLED)) !== 0) continue
      const plan = this.plansById.get(prev.planId)
      const next = plan?.steps[prev.step + 1]
      if (plan === undefined || next === undefined || due < prev.sendAt + next.afterHours * HOUR_MS) continue
      if (findEntry(s, prev.episodeTs, plan.id, next.step) !== undefined) continue
      const channels = this.consentedChannels(s, next.channelIndexes)
      const slot = channels.length === 0 ? null : this.chooseSlot(s, channels, due, due + DAY_MS)
      if (slot === null) continue
      const entry: TaskEntry = { ...prev, step: next.step, channel: slot.channel, flags: 0, sendAt: slot.sendAt }
      addEntry(s, entry)
      const episodeId = `${s.userId}:${prev.episodeTs}`
      const ruleId = this.ruleIds[prev.rule] ?? 'unknown'
      const today = s.zone.localDay(due)
      this.emit(s, entry, plan, `${episodeId}:${ruleId}`, episodeId, valueTier(s, today, this.params), daysInactive(s, today))
      this.kpis.followUps++
    }
  }

  /**
   * Drops entries nothing looks at any more: not of the open episode, past their attribution
   * window, and older than the longest cap window. Attribution that ended is closed.
   */
  private prune (s: UserState, now: number): void {
    const tasks = s.tasks
    if (tasks.length === 0) return
    let keep = 0
    for (const t of tasks) {
      const attributionEnd = t.sendAt + t.attributionHours * HOUR_MS
      if (now >= attributionEnd) t.flags |= TASK_CLOSED
      if (t.episodeTs !== s.episodeOpenTs && now >= attributionEnd && now >= t.sendAt + (MAX_CAP_DAYS + 1) * DAY_MS) continue
      tasks[keep++] = t
    }
    if (keep === 0) s.tasks = NO_TASKS
    else tasks.length = keep
  }
}

/** A LOGIN at `ts` is inside the entry's attribution window [sendAt, sendAt + hours). */
function inWindow (t: TaskEntry, ts: number): boolean {
  return ts >= t.sendAt && ts < t.sendAt + t.attributionHours * HOUR_MS
}

function findEntry (s: UserState, episodeTs: number, planId: string, step: number): TaskEntry | undefined {
  for (const t of s.tasks) if (t.episodeTs === episodeTs && t.planId === planId && t.step === step) return t
  return undefined
}

function addEntry (s: UserState, e: TaskEntry): void {
  if (s.tasks === NO_TASKS) s.tasks = []
  s.tasks.push(e)
}

/** Whether one more send on `day` keeps ≤ max sends (on `channel`, or on any channel for −1) in every `days`-day window containing it. */
function fits (s: UserState, day: number, max: number, days: number, channel: number): boolean {
  if (max === 0) return false
  const z = s.zone
  for (let start = day - days + 1; start <= day; start++) {
    let n = 1
    for (const t of s.tasks) {
      if ((t.flags & TASK_HOLDOUT) !== 0 || (channel >= 0 && t.channel !== channel)) continue
      const d = z.localDay(t.sendAt)
      if (d >= start && d < start + days) n++
    }
    if (n > max) return false
  }
  return true
}

/** 32-bit FNV-1a over UTF-16 code units, then murmur3's finaliser so that every bit mixes. */
function hash32 (text: string, seed: number): number {
  return fmix32(fnv1a32(text, (FNV_OFFSET ^ seed) >>> 0))
}

/** Deterministic experiment arm: a user's bucket depends only on their id and the experiment name. */
export function armOf (userId: string, experiment: string, holdoutShare: number): 'TREATMENT' | 'HOLDOUT' {
  return hash32(userId + '\u0000' + experiment, 0) / 0x100000000 < holdoutShare ? 'HOLDOUT' : 'TREATMENT'
}

/** Deterministic task id: 't' + 64 bits of hash of (user, episode, plan, step), as 16 hex digits. */
export function taskIdOf (userId: string, episodeTs: number, planId: string, step: number): string {
  // hash32 of `${userId}\0${episodeTs}\0${planId}\0${step}` under two seeds, in one pass over
  // the parts instead of two over a joined string (one per task emitted; same ids).
  let a = (FNV_OFFSET ^ 0x5bd1e995) >>> 0
  let b = (FNV_OFFSET ^ 0x27d4eb2f) >>> 0
  const parts = taskIdParts
  parts[0] = userId; parts[1] = String(episodeTs); parts[2] = planId; parts[3] = String(step)
  for (let p = 0; p < 4; p++) {
    const text = parts[p]
    if (p > 0) { a = Math.imul(a, FNV_PRIME); b = Math.imul(b, FNV_PRIME) } // the \0 separator: h ^ 0 = h
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      a = Math.imul(a ^ c, FNV_PRIME)
      b = Math.imul(b ^ c, FNV_PRIME)
    }
  }
  return 't' + hex32(fmix32(a)) + hex32(fmix32(b))
}
const taskIdParts = ['', '', '', '']

