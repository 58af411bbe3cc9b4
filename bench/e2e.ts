import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Admin, Kafka, logLevel, type Producer } from 'kafkajs'
import hdr from 'hdr-histogram-js'
import { count, Progress, rate } from '../src/cli/progress.js'
import { encodeAvroEvent } from '../src/events/avro.js'
import type { UserEvent } from '../src/events/user-event.js'
import { KafkajsClient, kafkajsConfig } from '../src/kafka/kafkajs-client.js'
import { decodeOutput } from '../src/kafka/wire.js'
import { committedTotal, consumerPerfTest, ebbRunConfig, ensureBroker, measureCatchUp, produceBacklog, producerPerfTest, startEbb, stopBroker } from './kafka-env.js'

export interface E2eOptions {
  /** events in the backlog the throughput phase catches up on */
  events: number
  partitions: number
  /** seconds of paced load per latency level */
  seconds: number
  /** the latency levels, as shares of the measured maximum rate */
  levels: number[]
  commitInterval: string
  /** Ebb instances in the group for the throughput phase (the scaling suite runs 1 and 2) */
  instances?: number
  /** the throughput phase only (no ceilings, no latency levels) */
  throughputOnly?: boolean
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
const EVENT_NULLS = { targetId: null, durationMs: null, amount: null, channel: null, taskId: null }

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
  const kafka = new Kafka({ ...kafkajsConfig({ brokers: [broker.bootstrap], ssl: false, sasl: null }, 'ebb-bench'), logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const out: Record<string, number | string> = { partitions: o.partitions, guarantee: 'exactly_once', commitInterval: o.commitInterval }
  /** every Ebb started: stopped in `finally` whatever failed */
  const started: Array<ReturnType<typeof startEbb>> = []
  let keepLogs = false
  try {
    const run = `bench-e2e-${Date.now()}`
    // ---- 1. throughput on a backlog ------------------------------------------------------
    const input = `${run}.events`
    await admin.createTopics({ topics: [{ topic: input, numPartitions: o.partitions }] })
    const backlog = await produceBacklog(producer, input, o.events, 14, 5, 'bench e2e')
    const produced = backlog.produced
    out.events = produced
    out.avroBytesPerEvent = Math.round(backlog.bytes / produced)
    out.kafkajsProduceEventsPerSec = Math.round(backlog.eventsPerSec)
    log(`e2e: ${count(produced)} events (${backlog.users.toLocaleString()} users) in ${input}`)

    const app = `${run}-tput`
    const config = (application: string, topic: string, instance = 0): string => ebbRunConfig({ app: application, instance, bootstrap: broker.bootstrap, input: topic, partitions: o.partitions, stateDir: dir, commitInterval: o.commitInterval })
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
    log(`e2e: ${instances} Ebb instance(s) caught up at ${count(Math.round(ebbRate))} events/s (exactly-once)`)
    if (o.throughputOnly === true) return out

    const consumerCeiling = consumerPerfTest(broker.bootstrap, input, produced)
    out.consumerPerfTestMsgPerSec = Math.round(consumerCeiling.msgPerSec)
    out.consumerPerfTestFetchMsgPerSec = Math.round(consumerCeiling.fetchMsgPerSec)
    out.ratioToConsumerPerfTest = Math.round(ebbRate / consumerCeiling.msgPerSec * 1000) / 1000
    const perfTopic = `${run}.perf`
    await admin.createTopics({ topics: [{ topic: perfTopic, numPartitions: o.partitions }] })
    const producerCeiling = producerPerfTest(broker.bootstrap, perfTopic, produced, Number(out.avroBytesPerEvent))
    out.producerPerfTestRecordsPerSec = Math.round(producerCeiling.recordsPerSec)
    log(`e2e: ceilings: kafka-consumer-perf-test ${count(Math.round(consumerCeiling.msgPerSec))}/s, kafka-producer-perf-test ${count(Math.round(producerCeiling.recordsPerSec))}/s`)

    // ---- 2. latency at shares of the maximum rate -----------------------------------------
    const lapp = `${run}-live`
    Object.assign(out, await measureLatency({
      kafka,
      admin,
      producer,
      run,
      partitions: o.partitions,
      rates: o.levels.map((share) => ({ name: `at${Math.round(share * 100)}pct`, perSec: Math.max(100, Math.round(ebbRate * share)) })),
      seconds: o.seconds,
      app: lapp,
      outputTopic: `${lapp}.tasks`,
      triggerUser: (_key, value) => (decodeOutput('task', value) as { userId: string }).userId,
      what: 'task',
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
              // …and inside the transaction, each producer request's mean round trip and count
              for (const api of ['AddPartitionsToTxn', 'Produce', 'AddOffsetsToTxn', 'TxnOffsetCommit', 'EndTxn']) {
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
    await producer.disconnect()
    await admin.disconnect()
    if (keepLogs) log(`e2e: failed; Ebb's logs and state are kept in ${dir}`)
    else rmSync(dir, { recursive: true, force: true })
    if (broker.started) stopBroker()
  }
  return out
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
  kafka: Kafka
  admin: Admin
  producer: Producer
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
  start: (liveTopic: string) => Promise<LatencyApp>
}, log: (s: string) => void): Promise<Record<string, number | string>> {
  const out: Record<string, number | string> = {}
  const live = `${o.run}.live`
  await o.admin.createTopics({ topics: [{ topic: live, numPartitions: o.partitions, configEntries: [{ name: 'message.timestamp.type', value: 'LogAppendTime' }] }] })
  const triggersPerLevel = Math.max(20, Math.round(o.seconds * 20))
  const triggerUsers = (level: number): string[] => Array.from({ length: triggersPerLevel }, (_, i) => `t${level}-${i}`)
  const history: Array<{ key: string, value: Buffer }> = []
  const before = Date.now() - 9 * 86_400_000
  let seq = 0
  o.rates.forEach((_, l) => {
    for (const u of triggerUsers(l)) {
      for (let c = 0; c < 6; c++) history.push({ key: u, value: encodeAvroEvent({ eventId: `h${++seq}`, userId: u, type: 'FOLLOW', ts: before + seq, tz: 'UTC', ...EVENT_NULLS, targetId: `c${c}` }) })
    }
  })
  for (let i = 0; i < history.length; i += 5000) await o.producer.send({ topic: live, acks: -1, messages: history.slice(i, i + 5000) })
  const arrivals = new Map<string, number>()
  const consumer = o.kafka.consumer({ groupId: `${o.app}-reader`, readUncommitted: false, maxWaitTimeInMs: 20 })
  await consumer.connect()
  let app: LatencyApp | undefined
  try {
    await o.admin.createTopics({ topics: [{ topic: o.outputTopic, numPartitions: o.partitions }] })
    await consumer.subscribe({ topic: o.outputTopic, fromBeginning: true })
    await consumer.run({
      eachBatch: async ({ batch }) => {
        const now = Date.now()
        for (const m of batch.messages) {
          if (m.value === null) continue
          const u = o.triggerUser(m.key, m.value)
          if (u !== null && !arrivals.has(u)) arrivals.set(u, now)
        }
      }
    })
    app = await o.start(live)
    for (let i = 0; i < 600 && await committedTotal(o.admin, o.app, live) < history.length; i++) await sleep(100)
    for (const [l, rate] of o.rates.entries()) {
      const r = await pacedLoad(o.producer, live, o.partitions, rate.perSec, o.seconds, triggerUsers(l), l)
      // Wait for the level's outputs (or give up after 10 s), then read the latencies.
      for (let i = 0; i < 100 && triggerUsers(l).some((u) => !arrivals.has(u) && r.triggerAt.has(u)); i++) await sleep(100)
      const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000, numberOfSignificantValueDigits: 3 })
      const fromSend = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000, numberOfSignificantValueDigits: 3 })
      let got = 0
      for (const [u, at] of r.triggerAt) {
        const arrived = arrivals.get(u)
        const appended = r.triggerAppendedAt.get(u)
        if (arrived === undefined || appended === undefined) continue
        h.recordValue(Math.max(1, arrived - appended))
        fromSend.recordValue(Math.max(1, arrived - at))
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
      log(`latency: ${name} (${count(rate.perSec)}/s target, ${count(Math.round(r.sent / r.seconds))}/s sent): event → ${o.what} p50 ${String(out[`${name}P50ms`])} ms, p99 ${String(out[`${name}P99ms`])} ms over ${got} ${o.what}s`)
      await sleep(1000)
    }
  } finally {
    // the reader goes whatever stopping the application throws (and its error does not hide the first one)
    try { await app?.stop(out) } finally { await consumer.disconnect() }
  }
  return out
}

/**
 * Sends live events at `perSec` for `seconds`, in 10 ms slices: VIEWs and LOGINs of filler
 * users, and for each trigger user three UNFOLLOWs in a row (the third fires unfollow_burst).
 * Event time is the send call's time (`triggerAt`); the broker's append time of each trigger
 * (the topic uses LogAppendTime) comes back with its send (`triggerAppendedAt`).
 */
async function pacedLoad (producer: Producer, topic: string, partitions: number, perSec: number, seconds: number, triggers: string[], level: number): Promise<{ sent: number, seconds: number, triggerAt: Map<string, number>, triggerAppendedAt: Map<string, number> }> {
  const triggerAt = new Map<string, number>()
  const triggerAppendedAt = new Map<string, number>()
  const partitionOf = new KafkajsClient({ brokers: ['127.0.0.1:1'], ssl: false, sasl: null }, 'partitioner')
  const fillers = 20_000
  const total = Math.round(perSec * seconds)
  const triggerEvery = Math.max(1, Math.floor(total / (triggers.length * 3 + 1)))
  let sent = 0
  let seq = 0
  let next = 0
  const start = performance.now()
  const inFlight: Array<Promise<unknown>> = []
  const progress = new Progress('bench e2e')
  while (sent < total) {
    // At most 5,000 events a send: a generator that falls behind sends at its own top speed,
    // never one giant request.
    const due = Math.min(total, sent + 5000, Math.round((performance.now() - start) / 1000 * perSec))
    if (due <= sent) { await sleep(2); continue }
    progress.tick(() => `paced load at ${count(perSec)}/s: ${count(sent)} of ${count(total)} sent (${rate(sent, performance.now() - start)})`)
    const messages: Array<{ key: string, value: Buffer }> = []
    const sliceTriggers: string[] = []
    const ts = Date.now()
    for (; sent < due; sent++) {
      seq++
      if (sent % triggerEvery === 0 && next < triggers.length * 3) {
        const u = triggers[Math.floor(next / 3)]
        const c = next % 3
        messages.push({ key: u, value: encodeAvroEvent({ eventId: `l${level}-${seq}`, userId: u, type: 'UNFOLLOW', ts, tz: 'UTC', ...EVENT_NULLS, targetId: `c${c}` }) })
        if (c === 2) { triggerAt.set(u, ts); sliceTriggers.push(u) }
        next++
        continue
      }
      const f = `f${seq % fillers}`
      messages.push({ key: f, value: encodeAvroEvent({ eventId: `l${level}-${seq}`, userId: f, type: seq % 10 === 0 ? 'LOGIN' : 'VIEW', ts, tz: 'UTC', ...EVENT_NULLS } satisfies UserEvent) })
    }
    inFlight.push(producer.send({ topic, acks: -1, messages }).then((meta) => {
      for (const u of sliceTriggers) {
        const p = partitionOf.partitionOf(topic, u, partitions)
        const appended = Number(meta.find((m) => m.partition === p)?.logAppendTime ?? -1)
        if (appended > 0) triggerAppendedAt.set(u, appended)
      }
    }))
    if (inFlight.length >= 8) await inFlight.shift()
  }
  await Promise.all(inFlight)
  return { sent, seconds: (performance.now() - start) / 1000, triggerAt, triggerAppendedAt }
}
