import { createReadStream, existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { EbbError, Errors } from '../errors.js'
import { decodeJsonEvent } from '../events/jsonl.js'
import { CHANNELS, type UserEvent } from '../events/user-event.js'
import type { AlertRecord, OutcomeRecord, RecallTaskRecord } from '../io/records.js'
import type { Topology } from '../rules/topology.js'
import { ZoneClock, zoneClock } from '../time/zones.js'
import { LIMITS, textLength } from './config.js'

/**
 * An independent check of a replay's recall tasks against the rules they must keep:
 * channel rules, consent, quiet hours, frequency caps, the golden window, one task per
 * (episode, plan step), no task for the holdout, and outcomes inside their attribution window.
 *
 * It re-derives what it needs from the input events (zones, consent history) and the output
 * files, and shares no decision code with the engine, so a bug in the engine's bookkeeping
 * cannot hide itself. Each broken rule is reported with the record that broke it.
 */
export interface Violation { rule: string, id: string, detail: string }

export interface CheckReport {
  tasks: number
  alerts: number
  outcomes: number
  violations: Violation[]
}

interface ConsentChange { ts: number, channel: number, granted: boolean }

/**
 * One of a replay's output files, one JSON object per line; what is not (a line that is not JSON,
 * or not an object: a file edited by hand, or not Ebb's) is EBB_INPUT_NOT_FOUND naming the line,
 * not a stack trace. A missing file is an empty one (a replay without outcomes writes none).
 */
function readJsonl<T> (file: string): T[] {
  if (!existsSync(file)) return []
  const bad = (why: string): never => { throw new EbbError(Errors.INPUT_NOT_FOUND, file, `${why}: check needs the files \`ebb replay --out\` wrote, unedited`) }
  let text: string
  try { text = readFileSync(file, 'utf8') } catch (err) { return bad((err as NodeJS.ErrnoException).code === 'EISDIR' ? 'it is a directory' : (err as Error).message) }
  const out: T[] = []
  let n = 0
  for (const l of text.split('\n')) {
    n++
    if (l.trim() === '') continue
    let v: unknown
    try { v = JSON.parse(l) } catch { return bad(`line ${n} is not JSON`) }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return bad(`line ${n} is not a record (a JSON object)`)
    out.push(v as T)
  }
  return out
}

/** From `ts` (event time) on, the user's zone: an event with `tz` changes it (README, the event contract). */
interface ZoneChange { ts: number, zone: string }

/**
 * Zone changes and consent changes per user, from the events the engine accepts: each line is
 * read with the contract's decoder (src/events/jsonl.ts: the same reading of the contract, not the
 * same decisions), so a line the engine dead-lettered — a zone that does not exist, a broken
 * record — changes nothing here either, and any valid spelling of JSON counts.
 */
async function scanEvents (eventsFile: string): Promise<{ zones: Map<string, ZoneChange[]>, consent: Map<string, ConsentChange[]> }> {
  const zones = new Map<string, ZoneChange[]>()
  const consent = new Map<string, ConsentChange[]>()
  const rl = createInterface({ input: createReadStream(eventsFile, { encoding: 'utf8', highWaterMark: 1 << 20 }), crlfDelay: Infinity })
  for await (const line of rl) {
    // Most lines change neither: skip them before parsing.
    if (!line.includes('"tz"') && !line.includes('"CONSENT_')) continue
    let e: UserEvent
    try { e = decodeJsonEvent(line) } catch { continue }
    if (e.tz !== null) {
      let l = zones.get(e.userId)
      if (l === undefined) { l = []; zones.set(e.userId, l) }
      if (l.length === 0 || l[l.length - 1].zone !== e.tz) l.push({ ts: e.ts, zone: e.tz })
    }
    if ((e.type === 'CONSENT_GRANTED' || e.type === 'CONSENT_REVOKED') && e.channel !== null) {
      const list = consent.get(e.userId) ?? []
      list.push({ ts: e.ts, channel: CHANNELS.indexOf(e.channel), granted: e.type === 'CONSENT_GRANTED' })
      consent.set(e.userId, list)
    }
  }
  for (const l of consent.values()) l.sort((a, b) => a.ts - b.ts)
  return { zones, consent }
}

export async function checkReplay (eventsFile: string, outDir: string, topology: Topology): Promise<CheckReport> {
  const iv = topology.intervention
  if (iv === null) throw new Error(`${topology.file} has no intervention section: there are no tasks to check`)
  // A replay's output always has its summary: without one, "every rule kept" over nothing would be a false pass.
  if (!existsSync(join(outDir, 'summary.json'))) throw new EbbError(Errors.INPUT_NOT_FOUND, outDir, 'not the output directory of `ebb replay` (no summary.json in it): give --out the directory the replay wrote')
  const tasks = readJsonl<RecallTaskRecord>(join(outDir, 'tasks.jsonl'))
  const alerts = readJsonl<AlertRecord>(join(outDir, 'alerts.jsonl'))
  const outcomes = readJsonl<OutcomeRecord>(join(outDir, 'outcomes.jsonl'))
  const { zones, consent } = await scanEvents(eventsFile)
  // The zone a decision saw: the last change (in stream order) dated at or before it; before any,
  // the topology's default. A change dated within allowedLateness after a decision may have been
  // applied before it (the timer fires when the watermark passes it), so both are candidates.
  const zoneAt = (userId: string, at: number): string => {
    let z = topology.defaultTimezone
    for (const c of zones.get(userId) ?? []) if (c.ts <= at) z = c.zone
    return z
  }
  const violations: Violation[] = []
  const bad = (rule: string, id: string, detail: string): void => { if (violations.length < 1000) violations.push({ rule, id, detail }) }
  const alertsById = new Map(alerts.map((a) => [a.alertId, a]))
  const plans = new Map(iv.plans.plans.map((p) => [p.id, p]))
  const quiet = (h: number): boolean => iv.quietFrom > iv.quietTo ? h >= iv.quietFrom || h < iv.quietTo : h >= iv.quietFrom && h < iv.quietTo
  const consentedAt = (userId: string, ch: number, at: number): boolean => {
    let state: boolean | null = null
    for (const c of consent.get(userId) ?? []) {
      if (c.ts > at) break
      if (c.channel === ch) state = c.granted
    }
    return state ?? iv.consentByDefault[ch]
  }

  const seenTaskIds = new Set<string>()
  const perEpisodePlan = new Map<string, number>()
  const sendDays = new Map<string, Array<{ day: number, channel: number }>>()
  for (const t of tasks) {
    const ch = CHANNELS.indexOf(t.channel)
    if (seenTaskIds.has(t.taskId)) bad('one task per (user, episode, plan step)', t.taskId, 'taskId emitted twice')
    seenTaskIds.add(t.taskId)
    const k = `${t.episodeId}\u0000${t.planId}`
    perEpisodePlan.set(k, (perEpisodePlan.get(k) ?? 0) + 1)
    const plan = plans.get(t.planId)
    if (plan === undefined) { bad('known plan', t.taskId, `plan ${t.planId} is not in the library`); continue }
    if ((perEpisodePlan.get(k) ?? 0) > plan.steps.length) bad('one task per (user, episode, plan step)', t.taskId, `more tasks for ${t.planId} in ${t.episodeId} than it has steps`)
    if (t.arm !== 'TREATMENT') bad('holdout gets no task', t.taskId, `arm ${t.arm}`)
    // Channel rules (README, "From alert to recall task").
    const body = textLength(t.body)
    if (t.channel === 'SMS' && (t.title !== null || body > LIMITS.smsBody || t.link === null || !t.body.includes(t.link))) bad('SMS: no title, ≤ 70 characters, carries the link', t.taskId, `title ${JSON.stringify(t.title)}, ${body} characters`)
    if (t.channel === 'PUSH' && (t.title === null || textLength(t.title) > LIMITS.pushTitle || body > LIMITS.pushBody)) bad('push: title ≤ 20, body ≤ 50', t.taskId, `${textLength(t.title ?? '')} / ${body} characters`)
    if (t.channel === 'IN_APP' && t.title !== null) bad('in-app: body only', t.taskId, 'has a title')
    if (t.channel === 'EMAIL' && (t.title === null || t.title === '')) bad('email: subject and body', t.taskId, 'no subject')
    const alert = alertsById.get(t.alertId)
    if (alert === undefined) { bad('task has its alert', t.taskId, `no alert ${t.alertId}`); continue }
    const firstStep = alert.taskId === t.taskId
    // A timer fires once the watermark passes it: events up to `allowedLateness` later were applied first.
    const decidedBy = alert.firedAt + topology.allowedLatenessMs
    // Quiet hours, in the user's zone when the task was decided (a follow-up: by its sendAt).
    const decided = firstStep ? [alert.firedAt, decidedBy] : [alert.firedAt, t.sendAt, t.sendAt + topology.allowedLatenessMs]
    const candidates = [...new Set(decided.map((at) => zoneAt(t.userId, at)))].map((z) => zoneClock(z))
    const zone = candidates[candidates.length - 1]
    if (candidates.every((z) => quiet(z.localHour(t.sendAt)))) bad('quiet hours', t.taskId, `sendAt ${new Date(t.sendAt).toISOString()} is ${zone.localHour(t.sendAt)}:00 local`)
    // Consent when the decision was made (the alert's time; a follow-up's: its timer, before sendAt).
    if (firstStep && !consentedAt(t.userId, ch, alert.firedAt) && !consentedAt(t.userId, ch, decidedBy)) bad('consent', t.taskId, `${t.channel} not consented at ${new Date(alert.firedAt).toISOString()}`)
    if (!firstStep && !consentedAt(t.userId, ch, t.sendAt)) bad('consent', t.taskId, `follow-up on ${t.channel}, not consented at sendAt`)
    if (firstStep && !plan.winback) {
      const openTs = Number(t.episodeId.slice(t.episodeId.lastIndexOf(':') + 1))
      const window = iv.holidays.has(zone.localDay(openTs)) ? iv.holidayWindowMs : iv.goldenWindowMs
      if (t.sendAt > openTs + window) bad('golden window', t.taskId, `sendAt ${(t.sendAt - openTs) / 3_600_000} h after the episode's first alert`)
    }
    if (t.sendAt < alert.firedAt) bad('sendAt not before the alert', t.taskId, 'sendAt precedes the alert')
    const list = sendDays.get(t.userId) ?? []
    list.push({ day: zone.localDay(t.sendAt), channel: ch })
    sendDays.set(t.userId, list)
  }
  // Frequency caps: every window of `days` consecutive local days.
  for (const [userId, sends] of sendDays) {
    const capCheck = (max: number, days: number, channel: number, name: string): void => {
      const days_ = sends.filter((s) => channel < 0 || s.channel === channel).map((s) => s.day).sort((a, b) => a - b)
      for (let i = 0; i < days_.length; i++) {
        let n = 0
        for (let j = i; j < days_.length && days_[j] < days_[i] + days; j++) n++
        if (n > max) { bad(`cap ${name} ≤ ${max} per ${days} days`, userId, `${n} sends in the ${days} local days from ${ZoneClock.isoDate(days_[i])}`); return }
      }
    }
    iv.channelCaps.forEach((c, ch) => { if (c !== null) capCheck(c.max, c.days, ch, CHANNELS[ch]) })
    if (iv.allCap !== null) capCheck(iv.allCap.max, iv.allCap.days, -1, 'all channels')
  }
  // Alerts: the holdout gets no task; decisions with a task name one that exists.
  for (const a of alerts) {
    if (a.decision === null) bad('every alert has a decision', a.alertId, 'decision is null')
    if (a.arm === 'HOLDOUT' && a.taskId !== null) bad('holdout gets no task', a.alertId, `taskId ${a.taskId}`)
    if ((a.decision === 'TASK' || a.decision === 'DEFERRED' || a.decision === 'WINBACK') && (a.taskId === null || !seenTaskIds.has(a.taskId))) bad('a TASK decision has its task', a.alertId, `taskId ${a.taskId}`)
    if ((a.decision === 'NO_CONSENT' || a.decision === 'CAPPED' || a.decision === 'HOLDOUT') && a.taskId !== null) bad('no task for this decision', a.alertId, `${a.decision} with taskId`)
  }
  // Outcomes: one per task at most, inside the attribution window, cycle time consistent.
  const taskById = new Map(tasks.map((t) => [t.taskId, t]))
  const outcomeSeen = new Set<string>()
  for (const o of outcomes) {
    const t = taskById.get(o.taskId)
    if (outcomeSeen.has(o.taskId)) bad('one outcome per task', o.taskId, 'second outcome')
    outcomeSeen.add(o.taskId)
    if (t === undefined) { bad('outcome of a task', o.taskId, 'no such task'); continue }
    if (o.recalledAt < t.sendAt || o.recalledAt >= t.sendAt + t.attributionWindowHours * 3_600_000) bad('recall inside the attribution window', o.taskId, `recalled ${(o.recalledAt - t.sendAt) / 3_600_000} h after sendAt`)
    if (o.cycleTimeMs !== o.recalledAt - o.sentAt || o.sentAt !== t.sendAt) bad('cycleTimeMs = recalledAt − sentAt', o.taskId, `${o.cycleTimeMs}`)
  }
  return { tasks: tasks.length, alerts: alerts.length, outcomes: outcomes.length, violations }
}
