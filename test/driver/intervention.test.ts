import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadAvroType } from '../../src/events/avro.js'
import { armOf } from '../../src/intervention/intervention-stage.js'
import { topologyPath } from '../../src/paths.js'
import { parseTopology, type Topology } from '../../src/rules/topology.js'
import { TopologyTestDriver, type DriverEvent } from '../../src/runtime/test-driver.js'
import { TASK_CLOSED, type TaskEntry } from '../../src/state/user-state.js'
import { at, tempDir } from '../helpers.js'

/**
 * Every decision path of the recall stage (README, "From alert to recall task") through the real engine (test driver), with explicit event
 * times. The user logs in on Monday 2 March 2026 at 09:00 Shanghai time (so their activeHour is
 * 9) and then goes quiet: inactive_7d fires at the local midnight starting Tuesday 10 March, in
 * quiet hours.
 */
const SH = 'Asia/Shanghai'
const ALL_TYPES = '[CONTENT_FATIGUE, SOCIAL_DISCONNECT, FUNCTION_SUBSTITUTION, HIGH_VALUE, NEW_USER, LOW_ACTIVITY]'
const PLANS = `version: 1
linkBase: "https://e.bb/r/"
plans:
  - id: p
    churnTypes: ${ALL_TYPES}
    valueTiers: [HIGH, MID, LOW]
    hook: { kind: content }
    attributionWindow: 72h
    expiresAfter: 48h
    steps:
      - channels: [SMS, PUSH, EMAIL]
        templates:
          en:
            SMS: { body: "Friends: new posts {link}", keyword: "Friends" }
            PUSH: { title: "Hi", body: "New posts, {days} days" }
            EMAIL: { subject: "Hi", body: "New posts {link}" }
      - afterHours: 24
        channels: [EMAIL]
        templates:
          en:
            EMAIL: { subject: "Still there?", body: "Come back {link}" }
  - id: wb
    winback: true
    churnTypes: ${ALL_TYPES}
    valueTiers: [HIGH, MID, LOW]
    hook: { kind: content }
    steps:
      - channels: [EMAIL]
        templates: { en: { EMAIL: { subject: "Back?", body: "{link}" } } }
`
const tmp = tempDir('ebb-intervention-')
afterAll(() => { tmp.cleanup() })
const plansFile = join(tmp.dir, 'plans.yaml')
writeFileSync(plansFile, PLANS)
// The decisions are tested on the rule alerts alone: no model (its alerts would come at other times).
const RULES = readFileSync(topologyPath('default.yaml'), 'utf8').split('\nintervention:')[0].replace(/^model: .*$/m, 'model: null')

function topology (opts: { holidays?: string, caps?: string, holdoutShare?: number } = {}): Topology {
  return parseTopology(`${RULES}
intervention:
  plans: ${plansFile}
  experiment: { name: t, holdoutShare: ${opts.holdoutShare ?? 0} }
  holidays: [${opts.holidays ?? ''}]
  caps: ${opts.caps ?? '{ SMS: { max: 2, days: 7 }, PUSH: { max: 1, days: 1 }, all: { max: 10, days: 7 } }'}
  consentByDefault: [PUSH, SMS, EMAIL, IN_APP]
  churnTypes:
    - { type: NEW_USER, when: [{ signal: accountAgeDays, op: "<", threshold: 3 }] }
`, join(tmp.dir, 'topology.yaml'))
}

const ev = (userId: string, type: DriverEvent['type'], local: string, extra: Partial<DriverEvent> = {}): DriverEvent => ({ userId, type, ts: at(local), tz: SH, ...extra })

/** A send on a past day, as an earlier episode's task would have left it in the state. */
function pastSend (local: string, channel: number): TaskEntry {
  return { episodeTs: 1, planId: 'p', step: 0, rule: 0, channel, flags: TASK_CLOSED, sendAt: at(local), attributionHours: 72, churnType: 5 }
}

async function quietUser (t: Topology, userId = 'u', extra: DriverEvent[] = [], seed: TaskEntry[] = []): Promise<TopologyTestDriver> {
  const d = await TopologyTestDriver.create(t)
  await d.pipe(ev(userId, 'LOGIN', '2026-03-02T09:00'), ...extra)
  d.settle()
  const s = d.user(userId)
  if (s === undefined) throw new Error('no state')
  if (seed.length > 0) s.tasks = seed
  d.advanceTo(at('2026-03-10T00:00'))
  return d
}

const SMS = 1
describe('decisions', () => {
  it('an alert at 00:00 local is sent at the user\'s active hour, on the first channel of the plan', async () => {
    const d = await quietUser(topology())
    const [a] = d.alertsOf('inactive_7d')
    expect([a.decision, a.arm, a.churnType]).toEqual(['TASK', 'TREATMENT', 'LOW_ACTIVITY'])
    const [task] = d.sink.tasks
    expect(task).toMatchObject({ taskId: a.taskId, channel: 'SMS', title: null, sendAt: at('2026-03-10T09:00'), expiresAt: at('2026-03-12T09:00'), planId: 'p', alertId: a.alertId, episodeId: a.episodeId, arm: 'TREATMENT', experiment: 't', attributionWindowHours: 72 })
    expect(task.body).toBe(`Friends: new posts https://e.bb/r/${task.taskId}`)
    expect(task.link).toBe(`https://e.bb/r/${task.taskId}`)
  })

  it('moves to the end of quiet hours when the active hour is itself quiet', async () => {
    const d = await TopologyTestDriver.create(topology())
    await d.pipe(ev('late', 'LOGIN', '2026-03-02T23:00'))
    d.advanceTo(at('2026-03-10T00:00'))
    expect(d.sink.tasks.map((t) => t.sendAt)).toEqual([at('2026-03-10T08:00')])
  })

  it('falls back to the next channel when consent for the first was revoked', async () => {
    const d = await quietUser(topology(), 'u', [ev('u', 'CONSENT_REVOKED', '2026-03-02T09:05', { channel: 'SMS' })])
    expect(d.sink.tasks.map((t) => [t.channel, t.title, t.body])).toEqual([['PUSH', 'Hi', 'New posts, 7 days']])
    expect(d.alertsOf('inactive_7d')[0].decision).toBe('TASK')
  })

  it('decides NO_CONSENT, with no task, when every channel of the plan was revoked', async () => {
    const revoke = (ch: DriverEvent['channel'], m: number): DriverEvent => ev('u', 'CONSENT_REVOKED', `2026-03-02T09:0${m}`, { channel: ch })
    const d = await quietUser(topology(), 'u', [revoke('SMS', 1), revoke('PUSH', 2), revoke('EMAIL', 3)])
    const [a] = d.alertsOf('inactive_7d')
    expect([a.decision, a.taskId]).toEqual(['NO_CONSENT', null])
    expect(d.sink.tasks).toEqual([])
  })

  it('falls back from SMS once 2 SMS in 7 local days were sent', async () => {
    const d = await quietUser(topology(), 'u', [], [pastSend('2026-03-04T10:00', SMS), pastSend('2026-03-06T10:00', SMS)])
    expect(d.sink.tasks.map((t) => t.channel)).toEqual(['PUSH'])
  })

  it('defers to the first local day the SMS cap allows, inside the golden window', async () => {
    // PUSH capped to nothing and EMAIL revoked: SMS is the only way. SMS went out on 4 and 5 March:
    // 10 March is in the 7-day window 4–10 March (2 sent), 11 March is not in any window with both.
    const t = topology({ caps: '{ SMS: { max: 2, days: 7 }, PUSH: { max: 0, days: 1 } }' })
    const d = await quietUser(t, 'u', [ev('u', 'CONSENT_REVOKED', '2026-03-02T09:05', { channel: 'EMAIL' })], [pastSend('2026-03-04T10:00', SMS), pastSend('2026-03-05T10:00', SMS)])
    const [a] = d.alertsOf('inactive_7d')
    expect(a.decision).toBe('DEFERRED')
    expect(d.sink.tasks.map((x) => [x.channel, x.sendAt])).toEqual([['SMS', at('2026-03-11T09:00')]])
  })

  it('a holiday shortens the golden window to 24 h: the same deferral is then CAPPED', async () => {
    const t = topology({ caps: '{ SMS: { max: 2, days: 7 }, PUSH: { max: 0, days: 1 } }', holidays: '2026-03-10' })
    const d = await quietUser(t, 'u', [ev('u', 'CONSENT_REVOKED', '2026-03-02T09:05', { channel: 'EMAIL' })], [pastSend('2026-03-04T10:00', SMS), pastSend('2026-03-05T10:00', SMS)])
    expect(d.alertsOf('inactive_7d')[0].decision).toBe('CAPPED')
    expect(d.sink.tasks).toEqual([])
  })

  it('a HOLDOUT user gets no task, and the alert says so', async () => {
    const t = topology({ holdoutShare: 0.5 })
    const id = Array.from({ length: 100 }, (_, i) => `user-${i}`).find((u) => armOf(u, 't', 0.5) === 'HOLDOUT') as string
    const d = await quietUser(t, id)
    const [a] = d.alertsOf('inactive_7d')
    expect([a.arm, a.decision, a.taskId]).toEqual(['HOLDOUT', 'HOLDOUT', null])
    expect(d.sink.tasks).toEqual([])
    // The would-be task is measured: a LOGIN in its window counts for the holdout arm.
    await d.pipe(ev(id, 'LOGIN', '2026-03-10T12:00'))
    const k = d.task.intervention?.kpis.report()
    expect(k?.overall).toMatchObject({ holdout: 1, holdoutRate: 1, treatment: 0 })
    expect(d.sink.outcomes).toEqual([])
  })

  it('assigns about the configured holdout share, deterministically', () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => `u${i}-${(i * 7919) % 10_007}`)
    const share = ids.filter((u) => armOf(u, 'recall-2026', 0.1) === 'HOLDOUT').length / ids.length
    expect(Math.abs(share - 0.1)).toBeLessThanOrEqual(0.02)
    expect(ids.map((u) => armOf(u, 'recall-2026', 0.1))).toEqual(ids.map((u) => armOf(u, 'recall-2026', 0.1)))
    // Another experiment reshuffles the arms.
    expect(ids.filter((u) => armOf(u, 'recall-2026', 0.1) !== armOf(u, 'other', 0.1)).length).toBeGreaterThan(1000)
  })
})

describe('win-back and locale', () => {
  it('past 30 days inactive, the same episode gets the win-back plan: WINBACK, a second task', async () => {
    const d = await quietUser(topology())
    d.advanceTo(at('2026-04-03T00:00')) // 31 complete days (3 March – 2 April) without a login
    const [a] = d.alertsOf('inactive_31d')
    expect([a.decision, a.episodeId]).toEqual(['WINBACK', d.alertsOf('inactive_7d')[0].episodeId])
    const wb = d.sink.tasks.find((t) => t.taskId === a.taskId)
    expect(wb).toMatchObject({ planId: 'wb', channel: 'EMAIL', sendAt: at('2026-04-03T09:00') })
  })

  it('renders the locale the topology asks for, and refuses a locale a plan lacks', async () => {
    const zh = parseTopology(readFileSync(topologyPath('default.yaml'), 'utf8').replace('locale: en', 'locale: zh'), topologyPath('zh.yaml'))
    const d = await quietUser(zh)
    expect(d.sink.tasks[0].title).toBe('为你精选')
    expect(() => parseTopology(RULES + `\nintervention:\n  plans: ${plansFile}\n  locale: zh\n  churnTypes:\n    - { type: NEW_USER, when: [{ signal: accountAgeDays, op: "<", threshold: 3 }] }\n`, join(tmp.dir, 't.yaml')))
      .toThrow(/plans\.yaml:\d+: plan p, step 0: no templates for locale "zh"/)
  })
})

describe('follow-ups and outcomes', () => {
  it('a LOGIN with two open tasks recalls the last one sent (last touch), once', async () => {
    const d = await quietUser(topology())
    d.advanceTo(at('2026-03-11T00:00')) // 15 h after the first sendAt: the follow-up is not due yet
    expect(d.sink.tasks).toHaveLength(1)
    d.advanceTo(at('2026-03-12T00:00')) // 39 h after: the follow-up goes out at the active hour
    const [first, follow] = d.sink.tasks
    expect([follow.channel, follow.sendAt, follow.alertId, follow.episodeId]).toEqual(['EMAIL', at('2026-03-12T09:00'), first.alertId, first.episodeId])
    expect(follow.taskId).not.toBe(first.taskId)
    await d.pipe(ev('u', 'MESSAGE_OPENED', '2026-03-12T09:30', { channel: 'EMAIL', taskId: follow.taskId }))
    await d.pipe(ev('u', 'LOGIN', '2026-03-12T10:00'), ev('u', 'LOGIN', '2026-03-12T10:05'))
    expect(d.sink.outcomes).toEqual([{ taskId: follow.taskId, userId: 'u', planId: 'p', channel: 'EMAIL', sentAt: at('2026-03-12T09:00'), recalledAt: at('2026-03-12T10:00'), cycleTimeMs: 3_600_000 }])
    const k = d.task.intervention?.kpis.report()
    expect(k?.byChannel.find((r) => r.key === 'EMAIL')).toMatchObject({ assigned: 1, recalls: 1, opened: 1 })
    expect(k?.byChannel.find((r) => r.key === 'SMS')).toMatchObject({ assigned: 1, recalls: 0 })
    // Uplift counts the episode's first task as recalled: the user came back in its window.
    expect(k?.overall).toMatchObject({ treatment: 1, treatmentRate: 1 })
  })

  it('a LOGIN before sendAt or after the attribution window is not a recall', async () => {
    const d = await quietUser(topology())
    await d.pipe(ev('u', 'LOGIN', '2026-03-10T08:59')) // before the 09:00 sendAt
    expect(d.sink.outcomes).toEqual([])
    const d2 = await quietUser(topology())
    const first = d2.sink.tasks[0]
    await d2.pipe(ev('u', 'LOGIN', '2026-03-13T09:00')) // exactly 72 h after: outside [sendAt, sendAt + 72 h)
    // More than time.future.maxStep after stream time, the LOGIN waits for the stream to confirm it.
    d2.advanceTo(at('2026-03-13T08:55'))
    // Only the follow-up (sent 12 March 09:00, whose window holds the LOGIN) is recalled.
    expect(d2.sink.tasks.map((t) => t.sendAt)).toEqual([at('2026-03-10T09:00'), at('2026-03-12T09:00')])
    expect(d2.sink.outcomes.map((o) => [o.taskId, o.cycleTimeMs])).toEqual([[d2.sink.tasks[1].taskId, 86_400_000]])
    expect(d2.sink.outcomes.some((o) => o.taskId === first.taskId)).toBe(false)
  })

  it('tasks, outcomes and decided alerts are valid records of their Avro schemas (the Kafka wire format)', async () => {
    const d = await quietUser(topology())
    d.advanceTo(at('2026-03-12T00:00'))
    await d.pipe(ev('u', 'LOGIN', '2026-03-12T10:00'))
    const types = { task: loadAvroType('recall-task.avsc'), outcome: loadAvroType('outcome.avsc'), alert: loadAvroType('alert.avsc') }
    expect(d.sink.tasks).toHaveLength(2)
    expect(d.sink.outcomes).toHaveLength(1)
    for (const t of d.sink.tasks) expect(types.task.isValid(t)).toBe(true)
    for (const o of d.sink.outcomes) expect(types.outcome.isValid(o)).toBe(true)
    for (const a of d.sink.alerts) expect(types.alert.isValid(a)).toBe(true)
    // and they survive an Avro round trip unchanged
    const t0 = d.sink.tasks[0]
    expect(types.task.fromBuffer(types.task.toBuffer(t0))).toEqual(t0)
  })

  it('replaying the same events gives the same taskIds', async () => {
    const a = await quietUser(topology())
    const b = await quietUser(topology())
    expect(a.sink.tasks.map((t) => t.taskId)).toEqual(b.sink.tasks.map((t) => t.taskId))
    expect(a.sink.tasks).toHaveLength(1)
  })
})
