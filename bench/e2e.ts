import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
// First: Node 20 lacks one function @platformatic/kafka calls (see node20.ts).
import '../src/kafka/node20.js'
import { type BaseOptions, connectionsApiChannel, Consumer, type Message, type MessagesStream } from '@platformatic/kafka'
import hdr from 'hdr-histogram-js'
import { count, Progress, rate } from '../src/cli/progress.js'
import { encodeAvroEvent } from '../src/events/avro.js'
import type { UserEvent } from '../src/events/user-event.js'
import type { AdminPort, KafkaClient, ProducerPort } from '../src/kafka/client.js'
import { PlatformaticClient, platformaticOptions } from '../src/kafka/platformatic-client.js'
import { armOf } from '../src/intervention/intervention-stage.js'
import { decodeOutput } from '../src/kafka/wire.js'
import { topologyPath } from '../src/paths.js'
import { loadTopology } from '../src/rules/topology.js'
import { committedTotal, consumerPerfTest, ebbRunConfig, ensureBroker, measureCatchUp, produceBacklog, producerPerfTest, startEbb, stopBroker } from './kafka-env.js'

export interface E2eOptions {
  /** events in the backlog the throughput phase catches up on */
  events: number
  partitions: number
  /** seconds of paced load per latency level */
  seconds: number
  /** the latency levels, as shares of the measured maximum rate */
  levels: number[]
  /** the rate the levels are shares of, instead of the measured maximum (to compare two builds at the same loads) */
  rateBase?: number
  commitInterval: string
  /** exactly_once (default) or at_least_once: with it, outputs are sent as soon as they are made */
  guarantee?: 'exactly_once' | 'at_least_once'
  /** pipelinedCommits: true */
  pipelined?: boolean
  /** Ebb instances in the group for the throughput phase (the scaling suite runs 1 and 2) */
  instances?: number
  /** the throughput phase only (no ceilings, no latency levels) */
  throughputOnly?: boolean
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
const EVENT_NULLS = { targetId: null, durationMs: null, amount: null, channel: null, taskId: null }
/** the client settings of `ebb run` (timeouts, retries) for the bench's own @platformatic/kafka clients */
const benchOptions = (bootstrap: string, clientId: string): BaseOptions => platformaticOptions({ brokers: [bootstrap], ssl: false, sasl: null }, clientId)
const READ_COMMITTED = 1
/** the Produce API's key in the Kafka protocol */
const PRODUCE = 0

/**
 * e2e: Ebb (`ebb run`, exactly-once) against the project's real broker, as a user runs it.
 *
 * 1. Throughput: N simulated events are produced to a fresh input topic; Ebb starts on it and
 *    catches up; the rate is measured between its first and its last committed offset (startup
 *    and the group join are left out). In the same run, kafka-consumer-perf-test reads the same
 *    topic and kafka-producer-perf-test writes records of the same size: the ceilings.
 * 2. Latency: a fresh topic and application; a paced producer sends live events (event time =
 *    produce time) at 25%, 50% and 90% of the rate measured in 1. Among them, "trigger" users
 *    who followed six creators nine days before unfollow three: the third UNFOLLOW fires
 *    unfollow_burst, whose recall task is read back from the dispatch topic (read_committed):
 *    latency = the task's arrival − the trigger's append time on the broker (its produce time;
 *    also reported from the generator's send call, which includes the generator's own queue).
 */
export async function benchE2e (o: E2eOptions, log: (s: string) => void): Promise<Record<string, number | string>> {
  const broker = ensureBroker()
  const dir = mkdtempSync(join(tmpdir(), 'ebb-bench-e2e-'))
  const client = new PlatformaticClient({ brokers: [broker.bootstrap], ssl: false, sasl: null }, 'ebb-bench')
  const admin = await client.admin()
  const producer = await client.producer({})
  const out: Record<string, number | string> = { partitions: o.partitions, guarantee: o.guarantee ?? 'exactly_once', pipelinedCommits: String(o.pipelined === true), commitInterval: o.commitInterval }
  /** every Ebb started: stopped in `finally` whatever failed */
  const started: Array<ReturnType<typeof startEbb>> = []
  let keepLogs = false
  try {
    const run = `bench-e2e-${Date.now()}`
    // ---- 1. throughput on a backlog ------------------------------------------------------
    const input = `${run}.events`
    await admin.createTopics([{ topic: input, partitions: o.partitions, replicationFactor: 1 }])
    const backlog = await produceBacklog(producer, input, o.events, 14, 5, 'bench e2e')
    const produced = backlog.produced
    out.events = produced
    out.avroBytesPerEvent = Math.round(backlog.bytes / produced)
    out.backlogProduceEventsPerSec = Math.round(backlog.eventsPerSec)
    log(`e2e: ${count(produced)} events (${backlog.users.toLocaleString()} users) in ${input}`)

    const app = `${run}-tput`
    const config = (application: string, topic: string, instance = 0): string => ebbRunConfig({ app: application, instance, bootstrap: broker.bootstrap, input: topic, partitions: o.partitions, stateDir: dir, commitInterval: o.commitInterval, guarantee: o.guarantee, pipelined: o.pipelined })
    const instances = o.instances ?? 1
    const ebbs = Array.from({ length: instances }, (_, i) => startEbb(config(app, input, i), join(dir, `${app}-${i}.yaml`), join(dir, `${app}-${i}.log`)))
    started.push(...ebbs)
    const caught = await measureCatchUp({
      admin,
      group: app,
      topic: input,
      total: produced,
      what: `${instances} Ebb instance(s)`,
      pids: () => ebbs.map((e) => e.child.pid),
      exited: () => ebbs.some((e) => e.child.exitCode !== null) ? `an ebb run exited; see ${join(dir, `${app}-*.log`)}` : null,
      stallMs: 120_000
    })
    for (const e of ebbs) e.child.kill('SIGTERM')
    for (const e of ebbs) await e.exited
    const ebbRate = caught.eventsPerSec
    out.ebbEventsPerSec = Math.round(ebbRate)
    out.ebbStartToCaughtUpSec = caught.startToCaughtUpSec
    out.ebbRssMB = caught.rssMB
    out.instances = instances
    out.input = input
    log(`e2e: ${instances} Ebb instance(s) caught up at ${count(Math.round(ebbRate))} events/s (${o.guarantee ?? 'exactly_once'})`)
    if (o.throughputOnly === true) return out

    const consumerCeiling = consumerPerfTest(broker.bootstrap, input, produced)
    out.consumerPerfTestMsgPerSec = Math.round(consumerCeiling.msgPerSec)
    out.consumerPerfTestFetchMsgPerSec = Math.round(consumerCeiling.fetchMsgPerSec)
    out.ratioToConsumerPerfTest = Math.round(ebbRate / consumerCeiling.msgPerSec * 1000) / 1000
    const perfTopic = `${run}.perf`
    await admin.createTopics([{ topic: perfTopic, partitions: o.partitions, replicationFactor: 1 }])
    const producerCeiling = producerPerfTest(broker.bootstrap, perfTopic, produced, Number(out.avroBytesPerEvent))
    out.producerPerfTestRecordsPerSec = Math.round(producerCeiling.recordsPerSec)
    log(`e2e: ceilings: kafka-consumer-perf-test ${count(Math.round(consumerCeiling.msgPerSec))}/s, kafka-producer-perf-test ${count(Math.round(producerCeiling.recordsPerSec))}/s`)

    // ---- 2. latency at shares of the maximum rate -----------------------------------------
    const lapp = `${run}-live`
    Object.assign(out, await measureLatency({
      bootstrap: broker.bootstrap,
      client,
      admin,
      producer,
      run,
      partitions: o.partitions,
      rates: o.levels.map((share) => ({ name: `at${Math.round(share * 100)}pct`, perSec: Math.max(100, Math.round((o.rateBase ?? ebbRate) * share)) })),
      seconds: o.seconds,
      app: lapp,
      outputTopic: `${lapp}.tasks`,
      triggerUser: (_key, value) => (decodeOutput('task', value) as { userId: string }).userId,
      what: 'task',
      triggerCandidate: treatedByDefaultTopology(),
      start: async (live) => {
        const ebbLive = startEbb(config(lapp, live), join(dir, `${lapp}.yaml`), join(dir, `${lapp}.log`))
        started.push(ebbLive)
        return {
          stop: async (o2) => {
            // Where the latency goes, from Ebb's own metrics: the transaction and the whole commit.
            const api = /API (http:\/\/127\.0\.0\.1:\d+)/.exec(readFileSync(join(dir, `${lapp}.log`), 'utf8'))?.[1]
            const metrics = api === undefined ? undefined : await fetch(`${api}/metrics`).then(async (r) => await r.text()).catch(() => undefined)
            if (metrics !== undefined) {
              const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? Number.NaN)
              o2.liveTransactions = value('ebb_transaction_duration_seconds_count')
              o2.liveTransactionMeanMs = Math.round(value('ebb_transaction_duration_seconds_sum') / value('ebb_transaction_duration_seconds_count') * 1000)
              o2.liveCommitMeanMs = Math.round(value('ebb_commit_duration_seconds_sum') / value('ebb_commit_duration_seconds_count') * 1000)
              // …and inside the transaction, each step's mean duration and count (Produce: a send
              // with its AddPartitionsToTxn; TxnOffsetCommit: every partition's offset)
              // Garbage collection: pauses of the process that every event waiting behind them shares.
              for (const kind of ['major', 'minor', 'incremental']) {
                const le = (b: string): number => value(`nodejs_gc_duration_seconds_bucket\\{le="${b}",kind="${kind}"\\}`)
                o2[`liveGc${kind}Count`] = value(`nodejs_gc_duration_seconds_count\\{kind="${kind}"\\}`)
                o2[`liveGc${kind}Over10ms`] = o2[`liveGc${kind}Count`] as number - le('0.01')
                o2[`liveGc${kind}Over100ms`] = o2[`liveGc${kind}Count`] as number - le('0.1')
                o2[`liveGc${kind}Seconds`] = Math.round(value(`nodejs_gc_duration_seconds_sum\\{kind="${kind}"\\}`) * 1000) / 1000
              }
              for (const api of ['Produce', 'AddOffsetsToTxn', 'TxnOffsetCommit', 'EndTxn']) {
                const n = value(`ebb_kafka_request_duration_seconds_count\\{api="${api}"\\}`)
                o2[`live${api}Requests`] = n
                o2[`live${api}MeanMs`] = Math.round(value(`ebb_kafka_request_duration_seconds_sum\\{api="${api}"\\}`) / n * 10000) / 10
              }
            }
            ebbLive.child.kill('SIGTERM')
            await ebbLive.exited
          }
        }
      }
    }, log))
  } catch (err) {
    keepLogs = true
    throw err
  } finally {
    for (const e of started) {
      if (e.child.exitCode !== null || e.child.signalCode !== null) continue
      e.child.kill('SIGTERM')
      const timer = setTimeout(() => { e.child.kill('SIGKILL') }, 30_000)
      await e.exited
      clearTimeout(timer)
    }
    await producer.close()
    await admin.close()
    if (keepLogs) log(`e2e: failed; Ebb's logs and state are kept in ${dir}`)
    else rmSync(dir, { recursive: true, force: true })
    if (broker.started) stopBroker()
  }
  return out
}

/**
 * Whether a user is in the treatment arm of the default topology's experiment (the topology the
 * benchmarks' `ebb run` uses), the arm that gets recall tasks.
 */
export function treatedByDefaultTopology (): (userId: string) => boolean {
  const intervention = loadTopology(topologyPath('default.yaml'), { loadModel: false }).intervention
  if (intervention === null) throw new Error('topologies/default.yaml has no intervention section: the latency benchmark measures tasks')
  return (userId) => armOf(userId, intervention.experiment, intervention.holdoutShare) === 'TREATMENT'
}

/** An application under the latency test: started on the live topic, stopped (after reading what it wants) at the end. */
export interface LatencyApp { stop: (out: Record<string, number | string>) => Promise<void> }

/**
 * Event → output latency of an application (Ebb, or the Kafka Streams peer) on a fresh live
 * topic: the trigger users' history (six FOLLOWs nine days back) goes first and the application
 * catches up on it; then, per rate, a paced producer sends live events (event time = produce
 * time) with three UNFOLLOWs in a row per trigger user — the third fires unfollow_burst — and a
 * read_committed reader of `outputTopic` notes when each trigger user's first output arrives:
 * latency = arrival − the trigger's append time on the broker (the topic uses LogAppendTime: the
 * generator's own queue, which shares the two cores, is left out; it is reported beside, from the
 * send call). Results as `<rate name>P50ms`, `…P99ms`, etc.
 */
export async function measureLatency (o: {
  bootstrap: string
  /** its partitioner says where each trigger user's events land */
  client: KafkaClient
  admin: AdminPort
  /** acks=all, idempotent */
  producer: ProducerPort
  run: string
  partitions: number
  rates: Array<{ name: string, perSec: number }>
  seconds: number
  /** the application's consumer group (its committed offsets say when it caught up on the history) */
  app: string
  outputTopic: string
  /** the trigger user an output record is about (null: not one to count) */
  triggerUser: (key: Buffer | null, value: Buffer) => string | null
  /** what an output is called in the progress lines ("task", "alert") */
  what: string
  /**
   * Which user ids may be trigger users (all if absent): those the application gives an output.
   * Tasks: the treatment arm only (the holdout gets none), so every level's wait ends when its
   * last task arrives rather than after the time allowed for a missing one (30 s).
   */
  triggerCandidate?: (userId: string) => boolean
  start: (liveTopic: string) => Promise<LatencyApp>
}, log: (s: string) => void): Promise<Record<string, number | string>> {
  const out: Record<string, number | string> = {}
  const live = `${o.run}.live`
  // the broker's append time: what an event's arrival is measured from
  await o.admin.createTopics([{ topic: live, partitions: o.partitions, replicationFactor: 1, configs: { 'message.timestamp.type': 'LogAppendTime' } }])
  const triggersPerLevel = Math.max(20, Math.round(o.seconds * 20))
  const candidate = o.triggerCandidate ?? ((): boolean => true)
  const levelTriggers = o.rates.map((_, level) => {
    const users: string[] = []
    for (let i = 0; users.length < triggersPerLevel; i++) if (candidate(`t${level}-${i}`)) users.push(`t${level}-${i}`)
    return users
  })
  const history: Array<{ key: string, value: Buffer }> = []
  const before = Date.now() - 9 * 86_400_000
  let seq = 0
  o.rates.forEach((_, l) => {
    for (const u of levelTriggers[l]) {
      for (let c = 0; c < 6; c++) history.push({ key: u, value: encodeAvroEvent({ eventId: `h${++seq}`, userId: u, type: 'FOLLOW', ts: before + seq, tz: 'UTC', ...EVENT_NULLS, targetId: `c${c}` }) })
    }
  })
  for (let i = 0; i < history.length; i += 5000) await o.producer.send(live, history.slice(i, i + 5000))
  const arrivals = new Map<string, number>()
  /** the broker's append time of each trigger user's first output */
  const outputAppendedAt = new Map<string, number>()
  // The output reader: a group of its own from the start of the topic, read_committed, long polls
  // of at most 20 ms; each record counts when the client hands it over.
  const reader = new Consumer({ ...benchOptions(o.bootstrap, 'ebb-bench-reader'), groupId: `${o.app}-reader`, isolationLevel: READ_COMMITTED, maxWaitTime: 20 })
  let readerError: Error | undefined
  reader.on('error', (err: Error) => { readerError ??= err })
  let stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined
  let app: LatencyApp | undefined
  try {
    // LogAppendTime here too: when the broker appended each output (readable then at-least-once;
    // with exactly-once only at its transaction's commit, which the reader's arrival includes)
    await o.admin.createTopics([{ topic: o.outputTopic, partitions: o.partitions, replicationFactor: 1, configs: { 'message.timestamp.type': 'LogAppendTime' } }])
    stream = await reader.consume({ topics: [o.outputTopic], mode: 'earliest', autocommit: false })
    stream.on('error', (err: Error) => { readerError ??= err })
    stream.on('data', (m: Message<Buffer, Buffer, Buffer, Buffer>) => {
      const now = Date.now()
      // a null key or value comes as undefined
      const value: Buffer | undefined = m.value ?? undefined
      if (value === undefined) return
      const u = o.triggerUser(m.key ?? null, value)
      if (u !== null && !arrivals.has(u)) { arrivals.set(u, now); outputAppendedAt.set(u, Number(m.timestamp)) }
    })
    app = await o.start(live)
    for (let i = 0; i < 600 && await committedTotal(o.admin, o.app, live) < history.length; i++) await sleep(100)
    for (const [l, rate] of o.rates.entries()) {
      const r = await pacedLoad(o.client, o.producer, live, o.partitions, rate.perSec, o.seconds, levelTriggers[l], l)
      // Wait for the level's outputs (or give up after 30 s: every trigger gets one, so the wait
      // ends with the last, and a missing one shows as "19/20"), then read the latencies.
      for (let i = 0; i < 300 && readerError === undefined && levelTriggers[l].some((u) => !arrivals.has(u) && r.triggerAt.has(u)); i++) await sleep(100)
      if (readerError !== undefined) throw new Error(`the reader of ${o.outputTopic} failed: ${readerError.message}`, { cause: readerError })
      const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000, numberOfSignificantValueDigits: 3 })
      const fromSend = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000, numberOfSignificantValueDigits: 3 })
      const toAppend = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000, numberOfSignificantValueDigits: 3 })
      let got = 0
      for (const [u, at] of r.triggerAt) {
        const arrived = arrivals.get(u)
        const appended = r.triggerAppendedAt.get(u)
        if (arrived === undefined || appended === undefined) continue
        h.recordValue(Math.max(1, arrived - appended))
        fromSend.recordValue(Math.max(1, arrived - at))
        toAppend.recordValue(Math.max(1, (outputAppendedAt.get(u) ?? arrived) - appended))
        got++
      }
      const name = rate.name
      out[`${name}TargetEventsPerSec`] = rate.perSec
      out[`${name}AchievedEventsPerSec`] = Math.round(r.sent / r.seconds)
      out[`${name}${o.what === 'task' ? 'Tasks' : 'Outputs'}`] = `${got}/${r.triggerAt.size}`
      out[`${name}P50ms`] = got === 0 ? 'n/a' : h.getValueAtPercentile(50)
      out[`${name}P99ms`] = got === 0 ? 'n/a' : h.getValueAtPercentile(99)
      out[`${name}FromSendCallP50ms`] = got === 0 ? 'n/a' : fromSend.getValueAtPercentile(50)
      out[`${name}FromSendCallP99ms`] = got === 0 ? 'n/a' : fromSend.getValueAtPercentile(99)
      // event appended → output appended: the application's part, without the reader's fetch
      out[`${name}ToOutputAppendP50ms`] = got === 0 ? 'n/a' : toAppend.getValueAtPercentile(50)
      out[`${name}ToOutputAppendP99ms`] = got === 0 ? 'n/a' : toAppend.getValueAtPercentile(99)
      log(`latency: ${name} (${count(rate.perSec)}/s target, ${count(Math.round(r.sent / r.seconds))}/s sent): event → ${o.what} p50 ${String(out[`${name}P50ms`])} ms, p99 ${String(out[`${name}P99ms`])} ms over ${got} ${o.what}s`)
      await sleep(1000)
    }
  } finally {
    // the reader goes whatever stopping the application throws (and its error does not hide the first one)
    try {
      await app?.stop(out)
    } finally {
      try { await stream?.close() } finally { await reader.close(true) }
    }
  }
  return out
}

/** A Produce response's fields this file reads (as the client parses it, versions 3 to 11). */
interface ProduceResponse { responses?: Array<{ name: string, partitionResponses: Array<{ index: number, errorCode: number, baseOffset: bigint, logAppendTimeMs: bigint }> }> }

/**
 * The broker's append time (LogAppendTime) of every record batch this process sends to `topic`,
 * by partition and base offset. A send's result holds the base offsets but not the append time,
 * so it is taken from each Produce response as the client parses it, on the client's diagnostics
 * channel `plt:kafka:connections:api` (published before the send's promise settles).
 */
function appendTimes (topic: string): { of: (partition: number, baseOffset: bigint) => number | undefined, stop: () => void } {
  const times = new Map<string, number>()
  const onResponse = (message: unknown): void => {
    const m = message as { apiKey?: number, result?: ProduceResponse }
    if (m.apiKey !== PRODUCE) return
    for (const t of m.result?.responses ?? []) {
      if (t.name !== topic) continue
      for (const p of t.partitionResponses) if (p.errorCode === 0 && p.logAppendTimeMs > 0n) times.set(`${p.index}:${p.baseOffset}`, Number(p.logAppendTimeMs))
    }
  }
  connectionsApiChannel.asyncStart.subscribe(onResponse)
  return {
    of: (partition, baseOffset) => times.get(`${partition}:${baseOffset}`),
    stop: () => { connectionsApiChannel.asyncStart.unsubscribe(onResponse) }
  }
}

/**
 * Sends live events at `perSec` for `seconds`, in 10 ms slices: VIEWs and LOGINs of filler
 * users, and for each trigger user three UNFOLLOWs in a row (the third fires unfollow_burst).
 * Event time is the send call's time (`triggerAt`); the broker's append time of each trigger
 * (the topic uses LogAppendTime) comes back in the response to its send (`triggerAppendedAt`).
 */
async function pacedLoad (client: KafkaClient, producer: ProducerPort, topic: string, partitions: number, perSec: number, seconds: number, triggers: string[], level: number): Promise<{ sent: number, seconds: number, triggerAt: Map<string, number>, triggerAppendedAt: Map<string, number> }> {
  const triggerAt = new Map<string, number>()
  const triggerAppendedAt = new Map<string, number>()
  const appended = appendTimes(topic)
  const fillers = 20_000
  const total = Math.round(perSec * seconds)
  const triggerEvery = Math.max(1, Math.floor(total / (triggers.length * 3 + 1)))
  let sent = 0
  let seq = 0
  let next = 0
  const start = performance.now()
  const inFlight: Array<Promise<unknown>> = []
  const progress = new Progress('bench e2e')
  try {
    while (sent < total) {
      // At most 5,000 events a send: a generator that falls behind sends at its own top speed,
      // never one giant request.
      const due = Math.min(total, sent + 5000, Math.round((performance.now() - start) / 1000 * perSec))
      if (due <= sent) { await sleep(2); continue }
      progress.tick(() => `paced load at ${count(perSec)}/s: ${count(sent)} of ${count(total)} sent (${rate(sent, performance.now() - start)})`)
      const records: Array<{ key: string, value: Buffer }> = []
      const sliceTriggers: string[] = []
      const ts = Date.now()
      for (; sent < due; sent++) {
        seq++
        if (sent % triggerEvery === 0 && next < triggers.length * 3) {
          const u = triggers[Math.floor(next / 3)]
          const c = next % 3
          records.push({ key: u, value: encodeAvroEvent({ eventId: `l${level}-${seq}`, userId: u, type: 'UNFOLLOW', ts, tz: 'UTC', ...EVENT_NULLS, targetId: `c${c}` }) })
          if (c === 2) { triggerAt.set(u, ts); sliceTriggers.push(u) }
          next++
          continue
        }
        const f = `f${seq % fillers}`
        records.push({ key: f, value: encodeAvroEvent({ eventId: `l${level}-${seq}`, userId: f, type: seq % 10 === 0 ? 'LOGIN' : 'VIEW', ts, tz: 'UTC', ...EVENT_NULLS } satisfies UserEvent) })
      }
      inFlight.push(producer.send(topic, records).then((results) => {
        for (const u of sliceTriggers) {
          const p = client.partitionOf(topic, u, partitions)
          const baseOffset = results.find((r) => r.partition === p)?.baseOffset
          const at = baseOffset === undefined ? undefined : appended.of(p, baseOffset)
          if (at !== undefined) triggerAppendedAt.set(u, at)
        }
      }))
      if (inFlight.length >= 8) await inFlight.shift()
    }
    await Promise.all(inFlight)
  } finally {
    appended.stop()
  }
  return { sent, seconds: (performance.now() - start) / 1000, triggerAt, triggerAppendedAt }
}
