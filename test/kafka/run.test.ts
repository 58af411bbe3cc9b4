import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { tracingChannel } from 'node:diagnostics_channel'
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { basename, join } from 'node:path'
import { createServer } from 'node:http'
import { Admin } from '@platformatic/kafka'
import avsc from 'avsc'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeAvroEvent } from '../../src/events/avro.js'
import { decodeJsonEvent } from '../../src/events/jsonl.js'
import { encodeJsonEvent } from '../../src/events/jsonl.js'
import { decodeOutput } from '../../src/kafka/wire.js'
import { projectRoot } from '../../src/paths.js'
import { makePopulation } from '../../src/sim/populations.js'
import { Simulator } from '../../src/sim/simulator.js'
import { tempDir } from '../helpers.js'
import { BROKER, committedCount, deleteTopic, kcatValues, produce, startBroker, stopBroker, testClient, until, waitCaughtUp } from './broker.js'

/**
 * `ebb run` against the project's real Kafka (KRaft, scripts/kafka.sh), outputs read back with
 * kcat (librdkafka, read_committed): the wire format and the transactions are proven outside
 * Ebb's own client.
 */
const root = projectRoot()
const tmp = tempDir('ebb-kafka-')
let started = false
/** Every ebb process a test started: killed at the end even when a test failed half-way. */
const children: ChildProcess[] = []
beforeAll(() => { started = startBroker() }, 200_000)
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  if (started) stopBroker()
  tmp.cleanup()
})

const uid = (): string => Math.random().toString(36).slice(2, 8)

function config (app: string, input: string, partitions: number, stateDir: string, instance = `${app}-0`, extra = ''): string {
  const file = join(tmp.dir, `${instance}.yaml`)
  writeFileSync(file, `applicationId: ${app}
instanceId: ${instance}
brokers: [${BROKER}]
topics: { input: ${input}, alerts: ${app}.alerts, tasks: ${app}.tasks, outcomes: ${app}.outcomes, deadLetters: ${app}.dlq, partitions: ${partitions} }
stateDir: ${stateDir}
commitInterval: 200ms
knownSchemaIds: [7]
http: { port: 0 }
${extra}`)
  return file
}

function startEbb (file: string): { child: ChildProcess, exited: Promise<number | null>, stderr: () => string } {
  const child = spawn(process.execPath, [join(root, 'bin', 'ebb.js'), 'run', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'] })
  children.push(child)
  let err = ''
  child.stderr?.on('data', (b: Buffer) => { err += b.toString() })
  // EBB_TEST_LOG_DIR=dir keeps every instance's log there, to read after a failure.
  const logDir = process.env.EBB_TEST_LOG_DIR
  if (logDir !== undefined) child.on('exit', (code) => { writeFileSync(join(logDir, `${basename(file)}-${child.pid ?? 0}.log`), `${err}\nexit ${String(code)}\n`) })
  return { child, exited: new Promise((resolve) => child.on('exit', (code) => { resolve(code) })), stderr: () => err }
}

async function waitCommitted (group: string, topic: string, atLeast: number): Promise<void> {
  const admin = await testClient().admin()
  try {
    for (let i = 0; i < 600; i++) {
      if (await committedCount(group, topic, admin) >= atLeast) return
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  } finally {
    await admin.close()
  }
  throw new Error(`group ${group} never committed ${atLeast} records`)
}

/** Until the instance's /readyz answers 200 (its partitions assigned, restored and open). */
async function waitReady (stderr: () => string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const api = /API (http:\/\/\S+)/.exec(stderr())?.[1]
    if (api !== undefined && (await fetch(`${api}/readyz`).then((r) => r.status, () => 0)) === 200) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`never ready: ${stderr().slice(-500)}`)
}

/** A simulated population produced as Avro to a new input topic; returns how many records. */
async function simulatedInput (input: string, partitions: number, seed: number): Promise<number> {
  const sim = new Simulator({ users: 400, days: 40, seed, noise: false })
  const values: Array<{ key: string, value: Buffer }> = []
  for (const day of sim.days()) for (const e of day) values.push({ key: e.userId, value: encodeAvroEvent(e) })
  await produce(input, partitions, values)
  return values.length
}

/** One instance over the whole input, for reference: its own group and output topics. */
async function referenceRun (ref: string, input: string, partitions: number): Promise<void> {
  const clean = startEbb(config(ref, input, partitions, join(tmp.dir, ref)))
  await waitCaughtUp(ref, input)
  clean.child.kill('SIGTERM')
  expect(await clean.exited).toBe(0)
}

/** An undecodable record: it becomes a dead letter carrying its bytes, so the output says which records were read. */
const marker = (text: string): { key: string, value: Buffer } => ({ key: text, value: Buffer.from(text) })
/** The bytes of every dead letter an application wrote (read_committed, by kcat), as text. */
const deadLetterTexts = (app: string): string[] => kcatValues(`${app}.dlq`).map((v) => Buffer.from((decodeOutput('deadLetter', v) as { raw: string }).raw, 'base64').toString())

interface Alert { alertId: string, userId: string, rule: string, firedAt: number, decision: string | null, taskId: string | null }
/** The id of every alert an application wrote (read_committed, by kcat), in the topic's order. */
const alertIdsOf = (app: string): string[] => kcatValues(`${app}.alerts`).map((v) => (decodeOutput('alert', v) as Alert).alertId)

describe('ebb run on a real Kafka', () => {
  it('gives the alerts and tasks of a replay of the same events, and dead-letters what it cannot read', async () => {
    const app = `it-${uid()}`
    const input = `${app}.events`
    const fixture = join(root, 'test', 'fixtures', 'replay-small.jsonl')
    const lines = readFileSync(fixture, 'utf8').split('\n').filter((l) => l.trim() !== '')
    const events = lines.flatMap((l) => { try { return [decodeJsonEvent(l)] } catch { return [] } })
    // Known schema id 7: decoded; it re-sends the first event after the stream moved on weeks, so it is late.
    const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 7]), encodeAvroEvent(events[0])])
    const unknownId = Buffer.concat([Buffer.from([0, 0, 0, 0, 9]), encodeAvroEvent(events[1])])
    await produce(input, 1, [
      ...events.map((e) => ({ key: e.userId, value: encodeAvroEvent(e) })),
      { key: 'x', value: Buffer.from('not avro at all') },
      { key: events[0].userId, value: framed },
      { key: 'y', value: unknownId }
    ])
    const ebb = startEbb(config(app, input, 1, join(tmp.dir, app)))
    await waitCaughtUp(app, input)
    ebb.child.kill('SIGTERM')
    expect(await ebb.exited).toBe(0)
    expect(ebb.stderr()).toMatch(/stopped \(SIGTERM\): committed and closed/)

    // The same events through `ebb replay` (no --until: stream time ends at the last event, as in Kafka).
    const replayIn = join(tmp.dir, `${app}.jsonl`)
    writeFileSync(replayIn, events.map(encodeJsonEvent).join('\n') + '\n')
    const out = join(tmp.dir, `${app}-replay`)
    expect(spawnSync(process.execPath, [join(root, 'bin', 'ebb.js'), 'replay', '--in', replayIn, '--out', out]).status).toBe(0)
    const expected = readFileSync(join(out, 'alerts.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Alert)
    const alerts = kcatValues(`${app}.alerts`).map((v) => decodeOutput('alert', v) as Alert)
    expect(alerts.map((a) => [a.alertId, a.firedAt, a.decision, a.taskId])).toEqual(expected.map((a) => [a.alertId, a.firedAt, a.decision, a.taskId]))
    expect(alerts.length).toBeGreaterThan(3)
    const tasks = kcatValues(`${app}.tasks`).map((v) => decodeOutput('task', v) as { taskId: string })
    expect(tasks.map((t) => t.taskId)).toEqual(readFileSync(join(out, 'tasks.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { taskId: string }).taskId))
    const dlq = kcatValues(`${app}.dlq`).map((v) => decodeOutput('deadLetter', v) as { reason: string, detail: string, raw: string, source: { topic: string, offset: string } })
    // The fixture's own late and duplicate events, as in the replay, plus the three added here.
    const replayed = readFileSync(join(out, 'dlq.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { reason: string }).reason)
    expect(dlq.map((d) => d.reason).sort()).toEqual([...replayed, 'late', 'undecodable', 'undecodable'].sort())
    expect(dlq.find((d) => d.detail.includes('schema id 9'))?.raw).toBe(unknownId.toString('base64'))
    expect(dlq.every((d) => d.source.topic === input)).toBe(true)
  }, 180_000)

  it('hostile records cost nothing valid: an 850 KB undecodable record, a 2099 event, invalid UTF-8 and a 2099 ERASE neither stop the partition nor move its time', async () => {
    const app = `hostile-${uid()}`
    const input = `${app}.events`
    const sim = new Simulator({ users: 150, days: 30, seed: 77, noise: false })
    const events = [...sim.days()].flat()
    const half = Math.floor(events.length / 2)
    const victim = events[10].userId
    const erase = { ...events[10], eventId: 'erase-1', type: 'ERASE' as const, ts: Date.parse('2099-01-01T00:00:00Z'), targetId: null, durationMs: null, amount: null, channel: null, taskId: null }
    const future = { ...events[half], eventId: 'from-2099', ts: Date.parse('2099-06-01T00:00:00Z') }
    // Invalid UTF-8 inside an Avro string: the user id 'probe-Au' with its 'A' made 0xff.
    const bad = encodeAvroEvent({ ...events[half], eventId: 'bad-utf8', userId: 'probe-Au' })
    bad[bad.indexOf(Buffer.from('probe-Au')) + 6] = 0xff
    const big = Buffer.alloc(850_000, 0x41)
    big.write('{"not":"avro"', 0)
    const admin = await testClient().admin()
    await admin.createTopics([{ topic: input, partitions: 1, replicationFactor: 1 }])
    await admin.close()
    const p = await testClient().producer({})
    const send = async (values: Array<{ key: string | null, value: Buffer }>): Promise<void> => { for (let i = 0; i < values.length; i += 2000) await p.send(input, values.slice(i, i + 2000)) }
    await send(events.slice(0, half).map((e) => ({ key: e.userId, value: encodeAvroEvent(e) })))
    await send([{ key: 'big', value: big }]) // alone: a batch holding it and others would pass the broker's 1 MB
    await send([{ key: future.userId, value: encodeAvroEvent(future) }, { key: 'probe', value: bad }, { key: victim, value: encodeAvroEvent(erase) }])
    await send(events.slice(half).map((e) => ({ key: e.userId, value: encodeAvroEvent(e) })))
    await p.close()

    const ebb = startEbb(config(app, input, 1, join(tmp.dir, app)))
    await waitCaughtUp(app, input)
    ebb.child.kill('SIGTERM')
    expect(await ebb.exited).toBe(0)

    // The valid events and the ERASE through `ebb replay`: the same alerts, none lost to the 2099 dates.
    const replayIn = join(tmp.dir, `${app}.jsonl`)
    writeFileSync(replayIn, [...events.slice(0, half), erase, ...events.slice(half)].map(encodeJsonEvent).join('\n') + '\n')
    const out = join(tmp.dir, `${app}-replay`)
    expect(spawnSync(process.execPath, [join(root, 'bin', 'ebb.js'), 'replay', '--in', replayIn, '--out', out]).status).toBe(0)
    const expected = readFileSync(join(out, 'alerts.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Alert)
    const alerts = kcatValues(`${app}.alerts`).map((v) => decodeOutput('alert', v) as Alert)
    expect(alerts.length).toBeGreaterThan(20)
    expect(alerts.map((a) => [a.alertId, a.firedAt, a.decision, a.taskId])).toEqual(expected.map((a) => [a.alertId, a.firedAt, a.decision, a.taskId]))
    expect(alerts.some((a) => a.userId === victim && a.firedAt > Date.parse('2099-01-01'))).toBe(false)
    const dlq = kcatValues(`${app}.dlq`).map((v) => decodeOutput('deadLetter', v) as { reason: string, detail: string, raw: string, rawBytes: number, rawSha256: string | null, source: { offset: string } })
    const replayed = readFileSync(join(out, 'dlq.jsonl'), 'utf8').trim().split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { reason: string }).reason)
    expect(dlq.map((d) => d.reason).sort()).toEqual([...replayed, 'future', 'undecodable', 'undecodable'].sort())
    const tooBig = dlq.find((d) => d.rawBytes === big.length)
    expect(tooBig?.rawSha256).toBe(createHash('sha256').update(big).digest('hex'))
    expect(Buffer.from(tooBig?.raw ?? '', 'base64')).toEqual(big.subarray(0, 4096))
    expect(dlq.find((d) => d.detail.includes('2099-06-01'))?.reason).toBe('future')
    expect(Buffer.from(dlq.find((d) => d.rawBytes === bad.length && d.reason === 'undecodable')?.raw ?? '', 'base64')).toEqual(bad)
  }, 180_000)

  it('learns per partition: one instance, two instances and `ebb replay --partitions 2` give the same alerts and scores', async () => {
    const app = `learn-${uid()}`
    const input = `${app}.events`
    // 60 days of faders: the model has labelled days to learn from (and a threshold of its own)
    // from day ~46, while the stream still has two weeks to run.
    const pop = makePopulation('fades', { users: 500, days: 60, seed: 31, churnRate: 0.4 })
    const events = [...pop.days()].flat()
    await produce(input, 2, events.map((e) => ({ key: e.userId, value: encodeAvroEvent(e) })))
    const replayIn = join(tmp.dir, `${app}.jsonl`)
    writeFileSync(replayIn, events.map(encodeJsonEvent).join('\n') + '\n')
    const out = join(tmp.dir, `${app}-replay`)
    const r = spawnSync(process.execPath, [join(root, 'bin', 'ebb.js'), 'replay', '--in', replayIn, '--out', out, '--partitions', '2'], { encoding: 'utf8' })
    expect(r.status, r.stderr).toBe(0)
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { model: Array<{ dailyUpdates: number }> }
    expect(summary.model.map((m) => m.dailyUpdates > 5)).toEqual([true, true]) // both partitions learned

    const one = `${app}-one`
    await referenceRun(one, input, 2)
    const two = `${app}-two`
    const a = startEbb(config(two, input, 2, join(tmp.dir, `${two}-a`), `${two}-a`))
    const b = startEbb(config(two, input, 2, join(tmp.dir, `${two}-b`), `${two}-b`))
    await waitCaughtUp(two, input)
    a.child.kill('SIGTERM')
    b.child.kill('SIGTERM')
    expect([await a.exited, await b.exited]).toEqual([0, 0])

    const key = (x: Alert & { score: number | null }): string => `${x.alertId} ${x.firedAt} ${x.score ?? ''}`
    const expected = readFileSync(join(out, 'alerts.jsonl'), 'utf8').trim().split('\n').map((l) => key(JSON.parse(l) as Alert & { score: number | null })).sort()
    expect(expected.filter((k) => k.includes(':model_risk ')).length).toBeGreaterThan(20)
    for (const group of [one, two]) {
      const got = kcatValues(`${group}.alerts`).map((v) => key(decodeOutput('alert', v) as Alert & { score: number | null })).sort()
      expect(got).toEqual(expected)
    }
  }, 300_000)

  it('killed mid-stream and restarted on an empty state directory, it restores from the changelog and emits no duplicate (with pipelinedCommits: processing while a commit is in flight)', async () => {
    const app = `it-${uid()}`
    const input = `${app}.events`
    const records = await simulatedInput(input, 2, 5)
    const ref = `${app}-ref`
    await referenceRun(ref, input, 2)

    // The run under test: killed (SIGKILL, no goodbye) once it committed part of the input.
    const first = startEbb(config(app, input, 2, join(tmp.dir, `${app}-a`), `${app}-0`, 'pipelinedCommits: true\n'))
    await waitCommitted(app, input, records / 3)
    first.child.kill('SIGKILL')
    await first.exited
    // Restarted elsewhere: an empty state directory, so every partition is restored from the changelog.
    const second = startEbb(config(app, input, 2, join(tmp.dir, `${app}-b`), `${app}-0`, 'pipelinedCommits: true\n'))
    // Ready: its partitions restored and open (the first may have committed all before its kill,
    // and a stop that comes before the second has started tests nothing of this).
    await waitReady(second.stderr)
    await waitCaughtUp(app, input)
    second.child.kill('SIGTERM')
    expect(await second.exited).toBe(0)

    const alerts = kcatValues(`${app}.alerts`).map((v) => decodeOutput('alert', v) as Alert)
    const reference = kcatValues(`${ref}.alerts`).map((v) => decodeOutput('alert', v) as Alert)
    expect(reference.length).toBeGreaterThan(50)
    const key = (a: Alert): string => `${a.alertId} ${a.firedAt} ${a.decision ?? ''} ${a.taskId ?? ''}`
    expect(new Set(alerts.map((a) => a.alertId)).size).toBe(alerts.length) // no duplicate
    expect(alerts.map(key).sort()).toEqual(reference.map(key).sort())
    const tasks = kcatValues(`${app}.tasks`).map((v) => (decodeOutput('task', v) as { taskId: string }).taskId)
    expect(new Set(tasks).size).toBe(tasks.length)
    expect(tasks.sort()).toEqual(kcatValues(`${ref}.tasks`).map((v) => (decodeOutput('task', v) as { taskId: string }).taskId).sort())
  }, 300_000)

  it('scales out and in: 2 instances, a 3rd joins mid-run, one stops; outputs equal a single instance\'s', async () => {
    const app = `it-${uid()}`
    const input = `${app}.events`
    const records = await simulatedInput(input, 4, 9)
    const ref = `${app}-ref`
    await referenceRun(ref, input, 4)

    const a = startEbb(config(app, input, 4, join(tmp.dir, `${app}-a`), `${app}-a`))
    const b = startEbb(config(app, input, 4, join(tmp.dir, `${app}-b`), `${app}-b`))
    await waitCommitted(app, input, records / 4)
    const c = startEbb(config(app, input, 4, join(tmp.dir, `${app}-c`), `${app}-c`))
    await waitCommitted(app, input, records / 2)
    for (let i = 0; i < 100 && !c.stderr().includes('API http'); i++) await new Promise((resolve) => setTimeout(resolve, 100))
    a.child.kill('SIGTERM') // its partitions move to b and c, whose stores are restored from the changelog
    expect(await a.exited, a.stderr().slice(-2000)).toBe(0)
    await waitCaughtUp(app, input)
    b.child.kill('SIGTERM')
    c.child.kill('SIGTERM')
    const codes = [await b.exited, await c.exited]
    expect(codes, `b: ${b.stderr().slice(-1500)}\nc: ${c.stderr().slice(-1500)}`).toEqual([0, 0])

    const key = (x: Alert): string => `${x.alertId} ${x.firedAt} ${x.decision ?? ''} ${x.taskId ?? ''}`
    const alerts = kcatValues(`${app}.alerts`).map((v) => decodeOutput('alert', v) as Alert)
    const reference = kcatValues(`${ref}.alerts`).map((v) => decodeOutput('alert', v) as Alert)
    expect(reference.length).toBeGreaterThan(50)
    expect(new Set(alerts.map((x) => x.alertId)).size).toBe(alerts.length)
    expect(alerts.map(key).sort()).toEqual(reference.map(key).sort())
    const tasks = kcatValues(`${app}.tasks`).map((v) => (decodeOutput('task', v) as { taskId: string }).taskId)
    expect(tasks.sort()).toEqual(kcatValues(`${ref}.tasks`).map((v) => (decodeOutput('task', v) as { taskId: string }).taskId).sort())
  }, 400_000)

  it('GET /users/:id on the instance that does not hold the user is a 307 to the one that does', async () => {
    const app = `it-${uid()}`
    const input = `${app}.events`
    const users = Array.from({ length: 20 }, (_, i) => `user-${i}`)
    await produce(input, 2, users.map((u, i) => ({ key: u, value: encodeAvroEvent({ eventId: `e${i}`, userId: u, type: 'LOGIN', ts: Date.parse('2026-03-02T09:00:00Z') + i, tz: 'UTC', targetId: null, durationMs: null, amount: null, channel: null, taskId: null }) })))
    const a = startEbb(config(app, input, 2, join(tmp.dir, `${app}-a`), `${app}-a`))
    const b = startEbb(config(app, input, 2, join(tmp.dir, `${app}-b`), `${app}-b`))
    await waitCaughtUp(app, input)
    const urlOf = (x: { stderr: () => string }): string => /API (http:\/\/127\.0\.0\.1:\d+)/.exec(x.stderr())?.[1] as string
    const apis = [urlOf(a), urlOf(b)]
    // Both instances hold one partition, open, once the group is stable.
    for (let i = 0; i < 150; i++) {
      const ready = await Promise.all(apis.map(async (u) => (await fetch(`${u}/readyz`)).status))
      const held = await Promise.all(apis.map(async (u) => /^ebb_partitions_assigned 1$/m.test(await (await fetch(`${u}/metrics`)).text())))
      if (ready.every((s) => s === 200) && held.every(Boolean)) break
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    let redirects = 0
    for (const user of users.slice(0, 6)) {
      const answers = await Promise.all(apis.map(async (u) => await fetch(`${u}/users/${user}`, { redirect: 'manual' })))
      const codes = answers.map((r) => r.status).sort()
      expect(codes).toEqual([200, 307])
      const moved = answers.find((r) => r.status === 307) as Response
      const owner = apis[answers.findIndex((r) => r.status === 200)]
      expect(moved.headers.get('location')).toBe(`${owner}/users/${user}`)
      const followed = await fetch(`${apis[answers.indexOf(moved)]}/users/${user}`) // fetch follows the 307
      expect(((await followed.json()) as { userId: string }).userId).toBe(user)
      redirects++
    }
    expect(redirects).toBe(6)
    // Kafka-mode metrics: per-partition consumer lag, transactions, assignment.
    const texts = await Promise.all(apis.map(async (u) => await (await fetch(`${u}/metrics`)).text()))
    for (const m of texts) {
      expect(m).toMatch(/^ebb_partitions_assigned 1$/m)
      expect(Number(/^ebb_rebalances_total (\d+)$/m.exec(m)?.[1])).toBeGreaterThan(0)
    }
    // Lag is known for a partition once a batch of it was fetched; transactions ran somewhere.
    expect(texts.join('\n')).toMatch(/^ebb_consumer_lag_records\{partition="[01]"\} 0$/m)
    const transactions = texts.reduce((n, m) => n + Number(/^ebb_transaction_duration_seconds_count (\d+)$/m.exec(m)?.[1] ?? 0), 0)
    expect(transactions).toBeGreaterThan(0)
    // each transaction ends with an EndTxn request, timed with the others by API
    expect(texts.reduce((n, m) => n + Number(/^ebb_kafka_request_duration_seconds_count\{api="EndTxn"\} (\d+)$/m.exec(m)?.[1] ?? 0), 0)).toBeGreaterThanOrEqual(transactions)
    // /alerts serves what this instance committed (nothing here: a login alerts no rule).
    expect(((await (await fetch(`${apis[0]}/alerts`)).json()) as { alerts: unknown[] }).alerts).toEqual([])
    a.child.kill('SIGTERM')
    b.child.kill('SIGTERM')
    expect([await a.exited, await b.exited]).toEqual([0, 0])
  }, 120_000)

  it('at-least-once mode (outputs outside transactions, as they are made) gives the same outputs, and restores an empty state directory from its transactional changelog', async () => {
    const app = `it-${uid()}`
    const input = `${app}.events`
    const sim = new Simulator({ users: 150, days: 30, seed: 3, noise: false })
    const events = [...sim.days()].flat()
    await produce(input, 1, events.map((e) => ({ key: e.userId, value: encodeAvroEvent(e) })))
    const alos = 'processingGuarantee: at_least_once\n'
    const first = startEbb(config(app, input, 1, join(tmp.dir, `${app}-a`), `${app}-0`, alos))
    await waitCaughtUp(app, input)
    first.child.kill('SIGTERM')
    expect(await first.exited).toBe(0)
    const replayIn = join(tmp.dir, `${app}.jsonl`)
    writeFileSync(replayIn, events.map(encodeJsonEvent).join('\n') + '\n')
    const out = join(tmp.dir, `${app}-replay`)
    expect(spawnSync(process.execPath, [join(root, 'bin', 'ebb.js'), 'replay', '--in', replayIn, '--out', out]).status).toBe(0)
    const expected = readFileSync(join(out, 'tasks.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { taskId: string }).taskId)
    const tasks = (): string[] => kcatValues(`${app}.tasks`).map((v) => (decodeOutput('task', v) as { taskId: string }).taskId)
    expect(tasks()).toEqual(expected)
    // Restarted on an empty directory with nothing new to read: it restores (passing over the
    // commits' transaction markers), serves the restored users, and writes nothing more.
    const second = startEbb(config(app, input, 1, join(tmp.dir, `${app}-b`), `${app}-0`, alos))
    const api = await (async () => {
      for (let i = 0; i < 200; i++) {
        const m = /API (http:\/\/127\.0\.0\.1:\d+)/.exec(second.stderr())
        if (m !== null && (await fetch(`${m[1]}/readyz`).then((r) => r.status, () => 0)) === 200) return m[1]
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      throw new Error('never ready')
    })()
    const someone = events[events.length - 1].userId
    const u = await (await fetch(`${api}/users/${someone}`)).json() as { userId: string, signals: { loginDays28: number } }
    expect(u.userId).toBe(someone)
    second.child.kill('SIGTERM')
    expect(await second.exited).toBe(0)
    expect(tasks()).toEqual(expected)
  }, 120_000)

  it('reads Confluent-framed records of another schema version through a schema registry; unknown or incompatible ids go to the dead letters; a registry that is down for a while costs no valid record', async () => {
    // A stand-in registry (the boundary is faked; the broker is not): id 42 is ebb.UserEvent with
    // one more field, id 43 a schema that cannot be read as one, any other id is unknown. It
    // wants HTTP Basic credentials, and answers 503 for its first 4 s (from the first request):
    // the records wait instead of going to the dead letters.
    const base = JSON.parse(readFileSync(join(root, 'schemas', 'user-event.avsc'), 'utf8')) as { fields: unknown[] }
    const evolved = { ...base, fields: [...base.fields, { name: 'appVersion', type: 'string', default: '1.0' }] }
    const other = { type: 'record', name: 'Other', fields: [{ name: 'n', type: 'int' }] }
    let firstAt = 0
    let unavailable = 0
    const server = createServer((req, res) => {
      if (req.headers.authorization !== `Basic ${Buffer.from('ebb:s3cret').toString('base64')}`) { res.writeHead(401); res.end(); return }
      firstAt ||= Date.now()
      if (Date.now() - firstAt < 4000) { unavailable++; res.writeHead(503); res.end(); return }
      const id = /\/schemas\/ids\/(\d+)$/.exec(req.url ?? '')?.[1]
      const schema = id === '42' ? evolved : id === '43' ? other : undefined
      res.writeHead(schema === undefined ? 404 : 200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(schema === undefined ? { error_code: 40403, message: 'Schema not found' } : { schema: JSON.stringify(schema) }))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => { resolve() }))
    const registry = `http://ebb:s3cret@127.0.0.1:${(server.address() as { port: number }).port}`
    try {
      const app = `it-${uid()}`
      const input = `${app}.events`
      const fixture = join(root, 'test', 'fixtures', 'replay-small.jsonl')
      const events = readFileSync(fixture, 'utf8').split('\n').flatMap((l) => { try { return [decodeJsonEvent(l)] } catch { return [] } })
      const writer = avsc.Type.forSchema(evolved as avsc.Schema)
      const frame = (id: number, body: Buffer): Buffer => { const h = Buffer.alloc(5); h.writeUInt32BE(id, 1); return Buffer.concat([h, body]) }
      await produce(input, 1, [
        ...events.map((e) => ({ key: e.userId, value: frame(42, writer.toBuffer({ ...e, appVersion: '2.3.1' })) })),
        { key: 'x', value: frame(43, Buffer.from([2])) },
        { key: 'y', value: frame(44, encodeAvroEvent(events[0])) }
      ])
      // (outputs stay raw Avro: this stand-in serves schemas, it does not register them)
      const ebb = startEbb(config(app, input, 1, join(tmp.dir, app), `${app}-0`, `schemaRegistryUrl: ${registry}\noutputFormat: avro\n`))
      await waitCaughtUp(app, input)
      ebb.child.kill('SIGTERM')
      expect(await ebb.exited).toBe(0)
      const replayIn = join(tmp.dir, `${app}.jsonl`)
      writeFileSync(replayIn, events.map(encodeJsonEvent).join('\n') + '\n')
      const out = join(tmp.dir, `${app}-replay`)
      expect(spawnSync(process.execPath, [join(root, 'bin', 'ebb.js'), 'replay', '--in', replayIn, '--out', out]).status).toBe(0)
      const expected = readFileSync(join(out, 'alerts.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as Alert).alertId)
      expect(kcatValues(`${app}.alerts`).map((v) => (decodeOutput('alert', v) as Alert).alertId)).toEqual(expected)
      const dlq = kcatValues(`${app}.dlq`).map((v) => decodeOutput('deadLetter', v) as { reason: string, detail: string })
      expect(dlq.filter((d) => d.reason === 'undecodable').map((d) => d.detail).sort()).toEqual([
        expect.stringMatching(/^the record could not be decoded: schema id 43 cannot be read as ebb\.UserEvent/),
        expect.stringMatching(/^the record could not be decoded: schema id 44 is not in the schema registry/)
      ])
      expect(dlq.filter((d) => /could not be reached/.test(d.detail))).toEqual([])
      expect(unavailable).toBeGreaterThan(1) // asked again while it was down, after pauses
      expect(ebb.stderr()).not.toMatch(/is unavailable: /) // a pause, not a restart of the Kafka clients
    } finally {
      server.close()
    }
  }, 120_000)

  it('writes outputs in the Confluent wire format with their schemas registered (TopicNameStrategy): Confluent\'s own Python deserializer reads the tasks through the registry; ebb tail reads every output; JSON where configured', async () => {
    // A stand-in registry (its REST API served here: no real one is available): POST
    // /subjects/{subject}/versions registers a schema (the same one again keeps its id), GET
    // /schemas/ids/{id} serves it.
    const schemas: string[] = []
    const subjects = new Map<string, number>()
    const server = createServer((req, res) => {
      let body = ''
      req.on('data', (b: Buffer) => { body += b.toString() })
      req.on('end', () => {
        const reg = /^\/subjects\/([^/]+)\/versions$/.exec(req.url ?? '')
        const get = /^\/schemas\/ids\/(\d+)/.exec(req.url ?? '')
        res.setHeader('content-type', 'application/vnd.schemaregistry.v1+json')
        if (req.method === 'POST' && reg !== null) {
          const schema = (JSON.parse(body) as { schema: string }).schema
          let id = schemas.indexOf(schema)
          if (id < 0) { schemas.push(schema); id = schemas.length - 1 }
          subjects.set(decodeURIComponent(reg[1]), id + 100)
          res.end(JSON.stringify({ id: id + 100 }))
        } else if (req.method === 'GET' && get !== null && schemas[Number(get[1]) - 100] !== undefined) {
          res.end(JSON.stringify({ schema: schemas[Number(get[1]) - 100] }))
        } else { res.statusCode = 404; res.end(JSON.stringify({ error_code: 40403, message: 'not found' })) }
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => { resolve() }))
    const registry = `http://127.0.0.1:${(server.address() as { port: number }).port}`
    try {
      const app = `it-${uid()}`
      const input = `${app}.events`
      const fixture = join(root, 'test', 'fixtures', 'replay-small.jsonl')
      const lines = readFileSync(fixture, 'utf8').split('\n').filter((l) => l.trim() !== '')
      await produce(input, 1, lines.map((l) => { try { const e = decodeJsonEvent(l); return { key: e.userId, value: encodeAvroEvent(e) } } catch { return { key: null, value: Buffer.from(l) } } }))
      const file = config(app, input, 1, join(tmp.dir, app), `${app}-0`, `schemaRegistryUrl: ${registry}\noutputFormat: { deadLetters: json }\n`)
      const ebb = startEbb(file)
      await waitCaughtUp(app, input)
      ebb.child.kill('SIGTERM')
      expect(await ebb.exited).toBe(0)
      expect([...subjects.keys()].sort()).toEqual([`${app}.alerts-value`, `${app}.outcomes-value`, `${app}.tasks-value`])
      const out = join(tmp.dir, `${app}-replay`)
      expect(spawnSync(process.execPath, [join(root, 'bin', 'ebb.js'), 'replay', '--in', fixture, '--out', out]).status).toBe(0)
      const jsonl = (name: string): Array<Record<string, unknown>> => readFileSync(join(out, name), 'utf8').trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)
      const expectedTasks = jsonl('tasks.jsonl')
      expect(expectedTasks.length).toBeGreaterThan(0)

      // Every value is framed: magic byte 0, then the id registered for its subject.
      const tasksRaw = kcatValues(`${app}.tasks`)
      expect(tasksRaw.every((v) => v[0] === 0 && v.readUInt32BE(1) === subjects.get(`${app}.tasks-value`))).toBe(true)
      // Confluent's deserializer, through the registry, reads the records a replay writes.
      // (spawned, not spawnSync: the registry it asks is served by this process's event loop)
      const py = await new Promise<{ status: number | null, stdout: string, stderr: string }>((resolve) => {
        const child = spawn(join(root, '.cache', 'venv', 'bin', 'python'), [join(root, 'test', 'kafka', 'confluent_read.py'), BROKER, `${app}.tasks`, registry, String(expectedTasks.length)])
        let stdout = ''
        let stderr = ''
        child.stdout.on('data', (b: Buffer) => { stdout += b.toString() })
        child.stderr.on('data', (b: Buffer) => { stderr += b.toString() })
        const timer = setTimeout(() => { child.kill('SIGKILL') }, 120_000)
        child.on('exit', (status) => { clearTimeout(timer); resolve({ status, stdout, stderr }) })
      })
      expect(py.status, py.stderr).toBe(0)
      const read = py.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
      expect(read.map((t) => t.taskId)).toEqual(expectedTasks.map((t) => t.taskId))
      expect(read.map((t) => [t.userId, t.channel, t.sendAt])).toEqual(expectedTasks.map((t) => [t.userId, t.channel, t.sendAt]))

      // ebb tail decodes each output by its configured format; dead letters are JSON lines.
      const tail = (topic: string): Array<Record<string, unknown>> => {
        const r = spawnSync(process.execPath, [join(root, 'bin', 'ebb.js'), 'tail', '--config', file, '--topic', topic], { encoding: 'utf8', timeout: 120_000 })
        expect(r.status, r.stderr).toBe(0)
        return r.stdout.trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)
      }
      expect(tail('alerts').map((a) => a.alertId)).toEqual(jsonl('alerts.jsonl').map((a) => a.alertId))
      expect(tail('outcomes').length).toBe(jsonl('outcomes.jsonl').length)
      const dlq = kcatValues(`${app}.dlq`).map((v) => JSON.parse(v.toString('utf8')) as { reason: string })
      // (as many as the replay's; a line the replay calls invalid JSON arrives here as undecodable Avro)
      expect(dlq.length).toBe(jsonl('dlq.jsonl').length)
      expect(tail('deadLetters').map((d) => d.reason).sort()).toEqual(dlq.map((d) => d.reason).sort())
    } finally {
      server.close()
    }
  }, 180_000)
})

// The operations a running application meets: reset, lost offsets and topics, retention, new
// partitions, a corrupt store, auto.offset.reset, a topic refusing a record, an idle partition.
// Their paths are Ebb's own logic over the same client calls as the tests above, so
// scripts/test-lanes.sh runs this block under the supported Node lines (24) and not again under
// the machine's Node 20, past its end of life (saves about 150 s of the suite).
describe('ebb run on a real Kafka: operations on a running application', () => {
  it('ebb reset: refused while the group runs; then the application starts over from the input\'s start on an empty state and emits the same alerts again', async () => {
    const app = `it-${uid()}`
    const input = `${app}.events`
    await simulatedInput(input, 2, 31)
    const stateDir = join(tmp.dir, app)
    const file = config(app, input, 2, stateDir)
    const ebb = (...args: string[]): { status: number | null, out: string } => {
      const r = spawnSync(process.execPath, [join(root, 'bin', 'ebb.js'), ...args], { encoding: 'utf8' })
      return { status: r.status, out: r.stdout + r.stderr }
    }
    const alertIds = (): string[] => alertIdsOf(app).sort()
    const first = startEbb(file)
    await waitCaughtUp(app, input)
    const before = alertIds()
    expect(before.length).toBeGreaterThan(50)
    const refused = ebb('reset', '--config', file)
    expect([refused.status, refused.out]).toEqual([2, expect.stringMatching(/is running \(members: 1\): stop every `ebb run`.*\[EBB_RESET_GROUP_ACTIVE\]/)])
    first.child.kill('SIGTERM')
    expect(await first.exited).toBe(0)
    // --to is read as every instant option is, before anything moves
    expect(ebb('reset', '--config', file, '--to', '12')).toEqual({ status: 2, out: expect.stringMatching(/--to "12" is outside 2000\.\.2100.*\[EBB_USAGE\]/) })
    expect(ebb('reset', '--config', file, '--to', '2026-03-01T00:00:00')).toEqual({ status: 2, out: expect.stringMatching(/needs an offset/) })
    // only the partition stores go: a stateDir shared with something else keeps it
    writeFileSync(join(stateDir, 'notes.txt'), 'not Ebb\'s')
    const done = ebb('reset', '--config', file)
    expect(done.status, done.out).toBe(0)
    expect(done.out).toMatch(new RegExp(`changelog ${app}-user-state-changelog deleted`))
    expect(done.out).toMatch(new RegExp(`state removed on this host: ${input.replace(/\./g, '\\.')}-0, ${input.replace(/\./g, '\\.')}-1 in .* \\(left there, not Ebb's: notes\\.txt\\)`))
    expect(await committedCount(app, input)).toBe(0)
    expect(readdirSync(stateDir)).toEqual(['notes.txt'])
    rmSync(stateDir, { recursive: true })
    const second = startEbb(file)
    await waitCaughtUp(app, input)
    second.child.kill('SIGTERM')
    expect(await second.exited).toBe(0)
    // every alert again, with the same id: a consumer that dedupes on alertId sees each once
    expect(alertIds()).toEqual([...before, ...before].sort())
  }, 240_000)

  it('the group\'s offsets gone (expired while stopped, or deleted): resumes where the state stopped, nothing applied twice; the input topic recreated: exits 1 with EBB_STATE_AHEAD, not retried', async () => {
    const app = `it-${uid()}`
    const input = `${app}.events`
    const n = await simulatedInput(input, 2, 37)
    const file = (dir: string): string => config(app, input, 2, join(tmp.dir, dir), `${app}-0`, 'restoreConsistencyTimeout: 2s\nretryTimeout: 60s\n')
    const alertIds = (): string[] => alertIdsOf(app)
    const first = startEbb(file(`${app}-a`))
    await waitCaughtUp(app, input)
    first.child.kill('SIGTERM')
    expect(await first.exited).toBe(0)
    const before = alertIds()
    expect(before.length).toBeGreaterThan(50)
    // What the broker does to a group with no member after offsets.retention.minutes: no offsets left.
    const admin = new Admin({ clientId: 'ebb-test-offsets', bootstrapBrokers: [BROKER] })
    try {
      await until(async () => await admin.deleteGroups({ groups: [app] }).then(() => true, () => undefined), 30_000, 'the group empty, then deleted')
    } finally {
      await admin.close()
    }
    expect(await committedCount(app, input)).toBe(0)
    // On an empty state directory (restored from the changelog): from the start of the input
    // (autoOffsetReset: earliest) every event would be applied a second time, every alert fired again.
    const second = startEbb(file(`${app}-b`))
    await waitReady(second.stderr)
    // (undecodable: each becomes a dead letter carrying its bytes, and stream time stays where it was)
    const later = Array.from({ length: 40 }, (_, i) => marker(`later-${i}`))
    await produce(input, 2, later)
    await waitCommitted(app, input, n + later.length)
    second.child.kill('SIGTERM')
    expect(await second.exited).toBe(0)
    expect(second.stderr()).toMatch(/no committed offset for this partition/)
    const after = alertIds()
    expect(new Set(after).size).toBe(after.length)
    expect(after.sort()).toEqual([...before].sort())
    const dead = deadLetterTexts(app).filter((t) => t.startsWith('later-'))
    expect(dead.sort()).toEqual(later.map((r) => r.key).sort())
    // The input deleted and created again (smaller): the state is of input that no longer exists.
    await deleteTopic(input)
    await until(async () => await produce(input, 2, later).then(() => true, () => undefined), 30_000, 'the input created again')
    const t0 = Date.now()
    const third = startEbb(file(`${app}-b`))
    expect(await third.exited).toBe(1)
    expect(third.stderr()).toMatch(/has seen the input up to offset \d+, but the group has no committed offset and .* ends at offset \d+: the topic was deleted and created again.*`ebb reset --config F`.*\[EBB_STATE_AHEAD\]/s)
    expect(Date.now() - t0).toBeLessThan(45_000) // not waited out for retryTimeout (60 s)
  }, 240_000)

  it('retention deleted records past the group\'s offset while it was stopped: it goes on from the first record left, without a stall', async () => {
    const app = `it-${uid()}`
    const input = `${app}.events`
    await produce(input, 1, Array.from({ length: 30 }, (_, i) => marker(`first-${i}`)))
    const file = config(app, input, 1, join(tmp.dir, app))
    const first = startEbb(file)
    await waitCaughtUp(app, input)
    first.child.kill('SIGTERM')
    expect(await first.exited).toBe(0)
    expect(await committedCount(app, input)).toBe(30)
    // While it is stopped, 40 more arrive and the first 50 are deleted (as retention would):
    // the group's offset, 30, is before the log's start.
    await produce(input, 1, Array.from({ length: 40 }, (_, i) => marker(`second-${i}`)))
    const admin = new Admin({ clientId: 'ebb-test-retention', bootstrapBrokers: [BROKER] })
    try {
      const [deleted] = await admin.deleteRecords({ topics: [{ name: input, partitions: [{ partition: 0, offset: 50n }] }] })
      expect(deleted.partitions[0].lowWatermark).toBe(50n)
    } finally {
      await admin.close()
    }
    const second = startEbb(file)
    await waitCommitted(app, input, 70)
    second.child.kill('SIGTERM')
    expect(await second.exited).toBe(0)
    const read = deadLetterTexts(app)
    // every record of the first run once, then what was left of the second batch: second-20 on
    expect(read).toEqual([...Array.from({ length: 30 }, (_, i) => `first-${i}`), ...Array.from({ length: 20 }, (_, i) => `second-${20 + i}`)])
    expect(second.stderr()).not.toMatch(/EBB_RESTORE_BEHIND|EBB_STATE_AHEAD/)
  }, 120_000)

  it('partitions added to the input under a running instance: it stops within 20 s (exit 2) saying why, and a restart refuses the same way, rather than leave the new partition unread', async () => {
    const app = `it-${uid()}`
    const input = `${app}.events`
    await produce(input, 2, Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: Buffer.from(`r${i}`) })))
    const file = config(app, input, 2, join(tmp.dir, app))
    const ebb = startEbb(file)
    await waitReady(ebb.stderr)
    const admin = new Admin({ clientId: 'ebb-test-partitions', bootstrapBrokers: [BROKER] })
    try { await admin.createPartitions({ topics: [{ name: input, count: 3 }] }) } finally { await admin.close() }
    const t0 = Date.now()
    const code = await Promise.race([ebb.exited, new Promise<string>((resolve) => setTimeout(() => { resolve('still running') }, 45_000))])
    expect(code).toBe(2)
    expect(Date.now() - t0).toBeLessThan(30_000)
    const said = new RegExp(`${input.replace(/\./g, '\\.')} has 3 partitions, but the state \\(changelog ${app}-user-state-changelog\\) was built for 2: .*\`ebb reset --config F\`.*\\[EBB_CONFIG_INVALID\\]`, 's')
    expect(ebb.stderr()).toMatch(said)
    const again = startEbb(file)
    expect(await again.exited).toBe(2)
    expect(again.stderr()).toMatch(said)
  }, 120_000)

  it('topics.createIfAbsent: false: a missing input, then missing outputs, end ebb run at once (exit 2) naming them, not retried as an outage', async () => {
    const app = `it-${uid()}`
    const input = `${app}.events`
    const file = join(tmp.dir, `${app}.yaml`)
    writeFileSync(file, `applicationId: ${app}
instanceId: ${app}-0
brokers: [${BROKER}]
topics: { input: ${input}, alerts: ${app}.alerts, tasks: ${app}.tasks, outcomes: ${app}.outcomes, deadLetters: ${app}.dlq, createIfAbsent: false }
stateDir: ${join(tmp.dir, app)}
http: { port: 0 }
`)
    const noInput = startEbb(file)
    expect(await noInput.exited).toBe(2)
    expect(noInput.stderr()).toMatch(new RegExp(`topic ${app}\\.events does not exist and topics\\.createIfAbsent is false.*\\[EBB_CONFIG_INVALID\\]`))
    await produce(input, 1, [{ key: 'k', value: Buffer.from('r') }])
    const t0 = Date.now()
    const noOutputs = startEbb(file)
    expect(await noOutputs.exited).toBe(2)
    expect(noOutputs.stderr()).toMatch(new RegExp(`the output topic\\(s\\) ${app}\\.alerts, ${app}\\.tasks, ${app}\\.outcomes, ${app}\\.dlq do not exist.*\\[EBB_CONFIG_INVALID\\]`))
    expect(Date.now() - t0).toBeLessThan(15_000)
  }, 60_000)

  it('the changelog deleted by hand while stopped: the restart stops with EBB_CHANGELOG_LOST (exit 1) instead of writing on top of a changelog without the state', async () => {
    const app = `it-${uid()}`
    const input = `${app}.events`
    await simulatedInput(input, 1, 41)
    const file = config(app, input, 1, join(tmp.dir, app))
    const first = startEbb(file)
    await waitCaughtUp(app, input)
    first.child.kill('SIGTERM')
    expect(await first.exited).toBe(0)
    const changelog = `${app}-user-state-changelog`
    await deleteTopic(changelog)
    const t0 = Date.now()
    const second = startEbb(file)
    expect(await second.exited).toBe(1)
    expect(second.stderr()).toMatch(new RegExp(`partition 0: the local state has applied the changelog ${app}-user-state-changelog up to offset \\d+, but the changelog ends at 0: .*\`ebb reset --config F\`.*\\[EBB_CHANGELOG_LOST\\]`, 's'))
    expect(Date.now() - t0).toBeLessThan(30_000)
  }, 120_000)

  it('an output topic deleted under a running instance: the failed commit is redone once the restart creates it again, every alert once; with createIfAbsent: false it stops (exit 2) naming it', async () => {
    const app = `it-${uid()}`
    const input = `${app}.events`
    const sim = new Simulator({ users: 400, days: 40, seed: 47, noise: false })
    const days = [...sim.days()].map((day) => day.map((e) => ({ key: e.userId, value: encodeAvroEvent(e) })))
    await produce(input, 1, days.slice(0, 25).flat())
    const file = config(app, input, 1, join(tmp.dir, app))
    const ebb = startEbb(file)
    await waitCaughtUp(app, input)
    await deleteTopic(`${app}.tasks`)
    // The days that follow bring alerts and tasks: the first commit that writes a task fails on the missing topic.
    await produce(input, 1, days.slice(25).flat())
    await waitCaughtUp(app, input)
    expect(ebb.child.exitCode).toBe(null)
    expect(ebb.stderr()).toMatch(/the commit transaction failed \(.*the broker does not know a topic this commit writes/)
    expect(ebb.stderr()).toMatch(new RegExp(`"topics":\\["${app}\\.tasks"\\].*output topic\\(s\\) missing though the application ran before`))
    const tasksAfter = kcatValues(`${app}.tasks`).map((v) => (decodeOutput('task', v) as { taskId: string }).taskId)
    expect(tasksAfter.length).toBeGreaterThan(0)
    expect(new Set(tasksAfter).size).toBe(tasksAfter.length)
    const alerts = alertIdsOf(app)
    ebb.child.kill('SIGTERM')
    expect(await ebb.exited).toBe(0)
    // every alert once, as one instance on the whole input writes them (the aborted commit's redone, not doubled)
    const ref = `ref-${uid()}`
    await referenceRun(ref, input, 1)
    expect(alerts).toEqual(alertIdsOf(ref))
    // The same with createIfAbsent: false: nothing to create it again, so the run stops and says which.
    const strictConfig = readFileSync(file, 'utf8').replace('partitions: 1 }', 'partitions: 1, createIfAbsent: false }')
    expect(strictConfig).toContain('createIfAbsent: false')
    writeFileSync(file, strictConfig)
    const strict = startEbb(file)
    await waitReady(strict.stderr)
    await deleteTopic(`${app}.dlq`)
    await produce(input, 1, [marker('undecodable')]) // a dead letter: the next commit writes to the topic deleted
    expect(await strict.exited).toBe(2)
    expect(strict.stderr()).toMatch(new RegExp(`the output topic\\(s\\) ${app}\\.dlq do not exist and topics\\.createIfAbsent is false`))
  }, 180_000)

  it('a local store RocksDB finds corrupt is moved aside and restored from the changelog: the partition opens, nothing is emitted twice', async () => {
    const app = `it-${uid()}`
    const input = `${app}.events`
    await simulatedInput(input, 1, 43)
    const stateDir = join(tmp.dir, app)
    const file = config(app, input, 1, stateDir)
    const alertIds = (): string[] => alertIdsOf(app)
    const first = startEbb(file)
    await waitCaughtUp(app, input)
    first.child.kill('SIGTERM')
    expect(await first.exited).toBe(0)
    const before = alertIds()
    // a torn write in the store's manifest (what a disk error or a full disk at the wrong moment leaves)
    const store = join(stateDir, `${input}-0`)
    const manifest = readdirSync(store).find((f) => f.startsWith('MANIFEST-'))
    if (manifest === undefined) throw new Error(`no manifest in ${store}`)
    const fd = openSync(join(store, manifest), 'r+')
    try { writeSync(fd, Buffer.from('garbage-garbage-garbage'), 0, 23, 10) } finally { closeSync(fd) }
    const second = startEbb(file)
    await waitReady(second.stderr)
    await produce(input, 1, [{ key: 'later', value: Buffer.from('later') }])
    await waitCaughtUp(app, input)
    second.child.kill('SIGTERM')
    expect(await second.exited).toBe(0)
    expect(second.stderr()).toMatch(/the local store is corrupt: moved aside, and restored from the changelog/)
    expect(existsSync(`${store}.corrupt`)).toBe(true)
    expect(alertIds().sort()).toEqual([...before].sort())
  }, 120_000)

  it('autoOffsetReset: latest starts a new group at the end of the input: what was there before is not read, what comes after is', async () => {
    const app = `it-${uid()}`
    const input = `${app}.events`
    await produce(input, 2, Array.from({ length: 20 }, (_, i) => marker(`before-${i}`)))
    const ebb = startEbb(config(app, input, 2, join(tmp.dir, app), `${app}-0`, 'autoOffsetReset: latest\n'))
    // (empty until ebb run has created its output topics: kcat fails on an unknown topic)
    const read = (): string[] => { try { return deadLetterTexts(app) } catch { return [] } }
    // Records keep arriving until some reach the output (the group's start is resolved when it
    // first fetches, so the first few after the start may fall before it).
    let seen: string[] = []
    for (let i = 0; i < 120 && !seen.some((t) => t.startsWith('after-')); i++) {
      await produce(input, 2, [marker(`after-${i}`)])
      await new Promise((resolve) => setTimeout(resolve, 500))
      seen = read()
    }
    ebb.child.kill('SIGTERM')
    expect(await ebb.exited).toBe(0)
    seen = read()
    expect(seen.filter((t) => t.startsWith('after-')).length).toBeGreaterThan(0)
    expect(seen.filter((t) => t.startsWith('before-'))).toEqual([])
    // `ebb tail` prints the same records as kcat decoded with the schema, by configured name or by topic name and kind.
    const tail = (...args: string[]): Array<{ reason: string, raw: string }> => {
      const r = spawnSync(process.execPath, [join(root, 'bin', 'ebb.js'), 'tail', ...args], { encoding: 'utf8' })
      expect(r.status, r.stderr).toBe(0)
      return r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { reason: string, raw: string })
    }
    const byConfig = tail('--config', join(tmp.dir, `${app}-0.yaml`), '--topic', 'deadLetters')
    const kcat = kcatValues(`${app}.dlq`).map((v) => decodeOutput('deadLetter', v) as { reason: string, raw: string })
    const order = (l: Array<{ raw: string }>): string[] => l.map((d) => d.raw).sort()
    expect(order(byConfig)).toEqual(order(kcat))
    expect(byConfig.every((d) => d.reason === 'undecodable')).toBe(true)
    expect(tail('--brokers', BROKER, '--topic', `${app}.dlq`, '--kind', 'deadLetter', '--max', '1')).toHaveLength(1)
    const noKind = spawnSync(process.execPath, [join(root, 'bin', 'ebb.js'), 'tail', '--brokers', BROKER, '--topic', `${app}.dlq`], { encoding: 'utf8' })
    expect([noKind.status, noKind.stderr]).toEqual([2, expect.stringMatching(/--kind is required/)])
  }, 120_000)

  it('a topic that refuses what Ebb writes (max.message.bytes below a dead letter) ends ebb run at once (exit 2, EBB_KAFKA_REJECTED), not retried as an outage', async () => {
    const app = `it-${uid()}`
    const input = `${app}.events`
    const admin = await testClient().admin()
    try {
      await admin.createTopics([{ topic: `${app}.dlq`, partitions: 1, replicationFactor: 1, configs: { 'max.message.bytes': '2000' } }])
    } finally {
      await admin.close()
    }
    // 20 KB that are no event: their dead letter carries them, ten times what the topic takes
    await produce(input, 1, [{ key: 'u1', value: Buffer.alloc(20_000, 7) }])
    const t0 = Date.now()
    const ebb = startEbb(config(app, input, 1, join(tmp.dir, app), `${app}-0`, 'retryTimeout: 5m\n'))
    const killer = setTimeout(() => { ebb.child.kill('SIGKILL') }, 60_000)
    const code = await ebb.exited
    clearTimeout(killer)
    expect(code, ebb.stderr()).toBe(2)
    expect(Date.now() - t0).toBeLessThan(60_000)
    expect(ebb.stderr()).toMatch(/rejected a record Ebb wrote to [^(]*\.dlq[^(]* \(MESSAGE_TOO_LARGE: .*max\.message\.bytes.*\[EBB_KAFKA_REJECTED\]/)
    expect(ebb.stderr()).not.toMatch(/Kafka .* is unavailable/)
  }, 120_000)

  it('a partition that goes quiet follows the others\' stream time after idlePartitionTimeout, so its timers fire', async () => {
    const app = `it-${uid()}`
    const input = `${app}.events`
    const client = testClient()
    // Two users on different partitions: one logs in once, then nothing arrives on its partition;
    // the other keeps logging in daily for two weeks on the other partition.
    const users = Array.from({ length: 50 }, (_, i) => `q-${i}`)
    const quiet = users.find((u) => client.partitionOf(input, u, 2) === 0) as string
    const busy = users.find((u) => client.partitionOf(input, u, 2) === 1) as string
    const login = (userId: string, iso: string, n: number): { key: string, value: Buffer } => ({ key: userId, value: encodeAvroEvent({ eventId: `${userId}-${n}`, userId, type: 'LOGIN', ts: Date.parse(iso), tz: 'UTC', targetId: null, durationMs: null, amount: null, channel: null, taskId: null }) })
    const days = Array.from({ length: 14 }, (_, d) => login(busy, `2026-03-${String(2 + d).padStart(2, '0')}T09:00:00Z`, d))
    await produce(input, 2, [login(quiet, '2026-03-02T09:00:00Z', 0), ...days])
    const ebb = startEbb(config(app, input, 2, join(tmp.dir, app), `${app}-0`, 'idlePartitionTimeout: 1s\n'))
    await waitCaughtUp(app, input)
    const inactive = async (): Promise<Alert[]> => kcatValues(`${app}.alerts`).map((v) => decodeOutput('alert', v) as Alert).filter((a) => a.userId === quiet && a.rule === 'inactive_7d')
    let found: Alert[] = []
    for (let i = 0; i < 100 && found.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 200))
      found = await inactive()
    }
    ebb.child.kill('SIGTERM')
    expect(await ebb.exited).toBe(0)
    // 7 complete days after 2 March: the timer due at 10 March 00:00 UTC fired on the quiet partition.
    expect(found.map((a) => a.firedAt)).toEqual([Date.parse('2026-03-10T00:00:00Z')])
  }, 120_000)
})

describe('the changelog reader (restore) on a real broker', () => {
  // Regression: a reader once stopped after three fetches (it waited for "empty fetches", which
  // the client it used then never reported), so a restore of more than ~18k records lost the rest, silently.
  it('a transaction commits every partition\'s offset in one TxnOffsetCommit, as the member of the announced assignment; a member that left the group commits nothing', async () => {
    const topic = `txn-offsets-${uid()}`
    const group = `${topic}-group`
    await produce(topic, 3, Array.from({ length: 30 }, (_, i) => ({ key: `k${i}`, value: Buffer.from(String(i)) })))
    const client = testClient()
    const requests: string[] = []
    const producer = await client.producer({ transactionalId: `${topic}-writer`, onRequest: (api) => { requests.push(api) } })
    const member = async (): Promise<{ port: Awaited<ReturnType<typeof client.groupConsumer>>, assigned: Promise<number[]> }> => {
      const port = await client.groupConsumer({ groupId: group, topic, fromBeginning: true })
      const assigned = new Promise<number[]>((resolve) => { port.onAssigned((p) => { if (p.length > 0) resolve(p) }) })
      await port.start(async () => {})
      return { port, assigned }
    }
    // Every TxnOffsetCommit (API key 28) the client puts on a connection, as its diagnostics channel reports it.
    let txnOffsetCommits = 0
    const requestsChannel = tracingChannel<unknown, { apiKey?: number }>('plt:kafka:connections:api')
    const onRequest = (m: { apiKey?: number }): void => { if (m.apiKey === 28) txnOffsetCommits++ }
    requestsChannel.start.subscribe(onRequest as (m: unknown) => void)
    const admin = await client.admin()
    try {
      const a = await member()
      expect((await a.assigned).sort()).toEqual([0, 1, 2])
      const txn = await producer.transaction()
      await txn.sendOffsets(a.port, [{ partition: 0, offset: '3' }, { partition: 1, offset: '5' }, { partition: 2, offset: '7' }])
      await txn.commit()
      expect(requests.filter((r) => r === 'TxnOffsetCommit')).toHaveLength(1)
      expect(txnOffsetCommits).toBe(1) // one request on the wire for three partitions
      expect([...(await admin.committedOffsets(group, topic))].sort()).toEqual([[0, 3n], [1, 5n], [2, 7n]])

      // a leaves the group; its assignment (member id, generation) is no longer the group's: a
      // transaction of a zombie committing with it is refused (KIP-447), and nothing moves.
      await a.port.stop()
      const zombie = await producer.transaction()
      await expect((async () => { await zombie.sendOffsets(a.port, [{ partition: 0, offset: '20' }]); await zombie.commit() })()).rejects.toThrow()
      await zombie.abort().catch(() => {})
      await a.port.close()
      expect([...(await admin.committedOffsets(group, topic))].sort()).toEqual([[0, 3n], [1, 5n], [2, 7n]])
    } finally {
      requestsChannel.start.unsubscribe(onRequest as (m: unknown) => void)
      await admin.close()
      await producer.close()
    }
  }, 120_000)

  it('reads a committed transaction between two aborted ones of the same producer, all in one fetch (the client library\'s own filter drops it)', async () => {
    // One transactional id, so one producer id: a transaction aborted, one committed, then one
    // aborted that wrote nothing here (its only record was refused as too large), so its ABORT
    // marker is alone. @platformatic/kafka's Consumer.fetch ends the producer's aborted range at
    // its last ABORT marker in the response, which takes the committed transaction with it: a
    // chaos run's restore lost a whole commit so (the last abort was a fenced, empty transaction).
    const topic = `restore-aborts-${uid()}`
    const client = testClient()
    const admin = await client.admin()
    await admin.createTopics([{ topic, partitions: 1, replicationFactor: 1, configs: { 'max.message.bytes': '2000' } }])
    const producer = await client.producer({ transactionalId: `${topic}-writer` })
    for (const name of ['x', 'b', 'y']) {
      const txn = await producer.transaction()
      const records = name === 'y' ? [{ key: 'y0', value: Buffer.alloc(5000, 1) }] : Array.from({ length: 10 }, (_, j) => ({ key: `${name}${j}`, value: Buffer.from(name) }))
      const sent = await txn.sendBatch([{ topic, records }]).then(() => true, () => false)
      expect([name, sent]).toEqual([name, name !== 'y'])
      if (name === 'b') await txn.commit(); else await txn.abort()
    }
    await producer.close()
    let end = 0n
    for (let i = 0; i < 100 && end < 23n; i++) {
      end = (await admin.endOffsets(topic)).get(0) ?? 0n
      if (end < 23n) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    await admin.close()
    expect(end).toBe(23n) // x 0-9, its ABORT 10, b 11-20, its COMMIT 21, y's lone ABORT 22
    const read: string[] = []
    let chunks = 0
    await client.readPartition(topic, 0, 0n, 20n, async (records) => { chunks++; for (const r of records) read.push(String(r.key)) })
    expect(chunks).toBe(1)
    expect(read).toEqual(Array.from({ length: 10 }, (_, j) => `b${j}`))
  }, 120_000)

  it('reads every committed record of a changelog many fetches long, skipping aborted transactions in the middle and at the end', async () => {
    const topic = `restore-read-${Date.now()}`
    const client = testClient()
    const admin = await client.admin()
    await admin.createTopics([{ topic, partitions: 1, replicationFactor: 1 }])
    const producer = await client.producer({ transactionalId: `${topic}-writer` })
    const value = Buffer.alloc(8 * 1024, 1)
    const committed: string[] = []
    // 3 × 2,000 records of 8 KB committed (48 MB: many fetches), 300 aborted between, 300 aborted last
    for (const [name, n, commit] of [['a', 2000, true], ['x', 300, false], ['b', 2000, true], ['c', 2000, true], ['y', 300, false]] as const) {
      const txn = await producer.transaction()
      for (let i = 0; i < n; i += 100) {
        const records = Array.from({ length: Math.min(100, n - i) }, (_, j) => ({ key: `${name}${i + j}`, value }))
        await txn.sendBatch([{ topic, records }])
      }
      if (commit) { await txn.commit(); for (let i = 0; i < n; i++) committed.push(`${name}${i}`) } else await txn.abort()
    }
    await producer.close()
    // The end a restore sees is the last stable offset; the broker writes a transaction's marker
    // after EndTxn returns, so wait for every record and all five markers (6,600 + 5) to be there.
    let end = 0n
    for (let i = 0; i < 100 && end < 6605n; i++) {
      end = (await admin.endOffsets(topic)).get(0) ?? 0n
      if (end < 6605n) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect(end).toBe(6605n)
    await admin.close()
    {
      const read: string[] = []
      let chunks = 0
      await client.readPartition(topic, 0, 0n, end - 2n, async (records) => { chunks++; for (const r of records) read.push(String(r.key)) })
      expect(read).toEqual(committed)
      expect(chunks).toBeGreaterThan(2)
      // From the middle: exactly the committed records at or after the offset.
      const tail: string[] = []
      await client.readPartition(topic, 0, 2302n, end - 2n, async (records) => { for (const r of records) tail.push(String(r.key)) })
      expect(tail).toEqual(committed.slice(2000))
      // A record that never comes is an error, not a restore cut short.
      await expect(client.readPartition(topic, 0, 0n, end + 10n, async () => {}, undefined, 3000)).rejects.toMatchObject({ code: 'EBB_RESTORE_STALLED', retriable: true })
      // Aborted (its runner closes): no chunk applied after the abort, and the read rejects.
      const ac = new AbortController()
      let afterAbort = 0
      await expect(client.readPartition(topic, 0, 0n, end - 2n, async () => {
        if (ac.signal.aborted) afterAbort++
        ac.abort(new Error('closing'))
      }, ac.signal)).rejects.toThrow('closing')
      expect(afterAbort).toBe(0)
    }
  }, 120_000)
})

// The Kafka-backed benchmark suites in quick mode, on the broker this file started, so their
// code cannot rot. They check what each suite reports (every event caught up, the ceilings and
// the peer measured, tasks read back at each load level), never how fast this machine is.
describe('npm run bench -- e2e peer scaling restore --quick', () => {
  it('each suite runs against the real broker and reports what it measured', () => {
    const r = spawnSync(process.execPath, [join(root, 'dist', 'bench', 'run.js'), 'e2e', 'peer', 'scaling', 'restore', '--quick', '--events', '5000', '--seconds', '1', '--results', tmp.dir], { encoding: 'utf8', timeout: 600_000 })
    expect(r.status, r.stderr.slice(-3000)).toBe(0)
    const read = (name: string): Record<string, number | string> => (JSON.parse(readFileSync(join(tmp.dir, `${name}.quick.json`), 'utf8')) as { results: Record<string, number | string> }).results
    const e2e = read('e2e')
    expect(e2e.events).toBe(5000)
    expect(e2e.ebbEventsPerSec).toBeGreaterThan(0)
    expect(e2e.consumerPerfTestMsgPerSec).toBeGreaterThan(0)
    expect(e2e.producerPerfTestRecordsPerSec).toBeGreaterThan(0)
    for (const level of ['at25pct', 'at50pct', 'at90pct']) {
      // 20 trigger users per level, all in the treatment arm (the holdout would get no task): each gets its task
      expect(e2e[`${level}Tasks`]).toBe('20/20')
      expect(e2e[`${level}P99ms`]).toBeGreaterThanOrEqual(e2e[`${level}P50ms`] as number)
    }
    const peer = read('peer')
    expect(peer.events).toBe(5000)
    expect(peer.kafkaStreamsEventsPerSec).toBeGreaterThan(0)
    expect(peer.ratioEbbToKafkaStreams).toBeCloseTo((peer.ebbEventsPerSec as number) / (peer.kafkaStreamsEventsPerSec as number), 1)
    const scaling = read('scaling')
    for (const users of [2000, 10000]) {
      expect(scaling[`users${users}EventsPerSec`]).toBeGreaterThan(0)
      expect(scaling[`users${users}StateBytesPerUser`]).toBeGreaterThan(20)
    }
    // the streamed run: 5,000 users through a cache of 1,000, the input built 2,000 events at a time
    expect(scaling.streamed5000users10000eventsEventsPerSec).toBeGreaterThan(0)
    expect(scaling.streamed5000users10000eventsDiskBytesPerUser).toBeGreaterThan(20)
    expect(scaling.instances1EventsPerSec).toBeGreaterThan(0)
    expect(scaling.instances2EventsPerSec).toBeGreaterThan(0)
    // ebb run restored every changelog record into its store, and says how fast
    const restore = read('restore')
    expect(restore.changelogRecords).toBeGreaterThan(4000)
    expect(restore.restoredRecords).toBe(restore.changelogRecords)
    expect(restore.recordsInRestoredStore).toBe(restore.changelogRecords)
    expect(restore.restoreRecordsPerSec).toBeGreaterThan(0)
  }, 620_000)
})
