import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { count } from '../src/cli/progress.js'
import { PlatformaticClient } from '../src/kafka/platformatic-client.js'
import { projectRoot, schemaPath } from '../src/paths.js'
import { decodeOutput } from '../src/kafka/wire.js'
import { benchE2e, type LatencyApp, measureLatency, treatedByDefaultTopology } from './e2e.js'
import { ebbRunConfig, ensureBroker, measureCatchUp, startEbb, stopBroker } from './kafka-env.js'

/** The latency loads, as shares of the slower application's measured maximum rate: the same events per second for both. */
const LEVELS = [0.25, 0.5]

/**
 * peer: Ebb against a minimal Kafka Streams application (bench/peers/kafka-streams, Java 17, built
 * here with Maven) that computes the same default-topology signals and rules, on the same topic
 * and broker, in the same session, both exactly-once with a 100 ms commit interval. Ebb runs the
 * e2e throughput phase on a fresh backlog; the peer then reads that same topic from the start.
 * Both rates are measured the same way: from the first to the last committed input offset.
 *
 * Then latency, side by side: each application on a live topic of its own at the same event
 * rates (25% and 50% of the slower one's maximum), from a trigger event's append time to its
 * output — Ebb's recall task, the peer's unfollow_burst alert (the same moment: Ebb writes the
 * task in the transaction that carries the alert) — read back read_committed (measureLatency in
 * e2e.ts). Both commit every 100 ms, Kafka Streams' default with exactly-once.
 */
export async function benchPeer (o: { events: number, partitions: number, seconds: number }, log: (s: string) => void): Promise<Record<string, number | string>> {
  const dir = join(projectRoot(), 'bench', 'peers', 'kafka-streams')
  log('peer: building the Kafka Streams application (mvn -q package)')
  const mvn = spawnSync('mvn', ['-q', '-B', 'package'], { cwd: dir, encoding: 'utf8', timeout: 900_000 })
  if (mvn.status !== 0) throw new Error(`mvn package failed in ${dir}: ${(mvn.stdout + mvn.stderr).slice(-2000)}`)
  const broker = ensureBroker()
  const client = new PlatformaticClient({ brokers: [broker.bootstrap], ssl: false, sasl: null }, 'ebb-bench-peer')
  const admin = await client.admin()
  const state = mkdtempSync(join(tmpdir(), 'ebb-bench-peer-'))
  let child: ChildProcess | undefined
  try {
    const ebb = await benchE2e({ events: o.events, partitions: o.partitions, seconds: 0, levels: [], commitInterval: '100ms', throughputOnly: true }, log)
    const input = String(ebb.input)
    const produced = Number(ebb.events)
    const app = `${input}-peer`
    await admin.createTopics([{ topic: `${app}.alerts`, partitions: o.partitions, replicationFactor: 1 }])
    /** the peer application on `topic`, as Kafka Streams application `application` */
    const startPeer = (topic: string, application: string): ChildProcess => {
      child = spawn('java', ['-Xmx2g', '-cp', `${join(dir, 'target', 'ebb-peer-kafka-streams-1.jar')}:${join(dir, 'target', 'lib', '*')}`, 'dev.ebb.peer.ChurnPeer', broker.bootstrap, topic, application, state, schemaPath('user-event.avsc')], { stdio: ['ignore', 'ignore', 'inherit'] })
      return child
    }
    const java = startPeer(input, app)
    const caught = await measureCatchUp({
      admin,
      group: app,
      topic: input,
      total: produced,
      what: 'the Kafka Streams peer',
      pids: () => [java.pid],
      exited: () => java.exitCode !== null ? `the Kafka Streams peer exited (${java.exitCode})` : null,
      stallMs: 120_000
    })
    const peerRate = caught.eventsPerSec
    const rss = caught.rssMB
    let alerts = 0
    for (const end of (await admin.endOffsets(`${app}.alerts`)).values()) alerts += Number(end)
    log(`peer: Kafka Streams caught up at ${count(Math.round(peerRate))} events/s; Ebb at ${count(Number(ebb.ebbEventsPerSec))} events/s`)
    await stopProcess(java)
    const out: Record<string, number | string> = {
      events: produced,
      partitions: o.partitions,
      ebbEventsPerSec: ebb.ebbEventsPerSec,
      ebbRssMB: ebb.ebbRssMB,
      kafkaStreamsEventsPerSec: Math.round(peerRate),
      kafkaStreamsRssMB: rss,
      kafkaStreamsAlertOffsets: alerts,
      ratioEbbToKafkaStreams: Math.round(Number(ebb.ebbEventsPerSec) / peerRate * 1000) / 1000
    }

    // ---- latency, side by side, at the same event rates ----
    const slower = Math.min(Number(ebb.ebbEventsPerSec), peerRate)
    const rates = LEVELS.map((share) => ({ name: `at${Math.round(share * 100)}pct`, perSec: Math.max(100, Math.round(slower * share)) }))
    const producer = await client.producer({})
    try {
      const base = { bootstrap: broker.bootstrap, client, admin, producer, partitions: o.partitions, rates, seconds: o.seconds }
      const eapp = `${input}-lat-ebb-live`
      const ebbLatency = await measureLatency({
        ...base,
        run: `${input}-lat-ebb`,
        app: eapp,
        outputTopic: `${eapp}.tasks`,
        triggerUser: (_key, value) => (decodeOutput('task', value) as { userId: string }).userId,
        what: 'task',
        triggerCandidate: treatedByDefaultTopology(),
        start: async (live): Promise<LatencyApp> => {
          const e = startEbb(ebbRunConfig({ app: eapp, instance: 0, bootstrap: broker.bootstrap, input: live, partitions: o.partitions, stateDir: state, commitInterval: '100ms' }), join(state, `${eapp}.yaml`), join(state, `${eapp}.log`))
          return { stop: async () => { await stopProcess(e.child) } }
        }
      }, log)
      const papp = `${input}-lat-peer-live`
      const peerLatency = await measureLatency({
        ...base,
        run: `${input}-lat-peer`,
        app: papp,
        outputTopic: `${papp}.alerts`,
        // the peer's alerts are "userId,rule,time" text
        triggerUser: (_key, value) => { const [u, rule] = value.toString('utf8').split(','); return rule === 'unfollow_burst' ? u : null },
        what: 'alert',
        start: async (live): Promise<LatencyApp> => {
          const p = startPeer(live, papp)
          return { stop: async () => { await stopProcess(p) } }
        }
      }, log)
      for (const { name, perSec } of rates) {
        out[`${name}EventsPerSec`] = perSec
        for (const [who, r] of [['ebb', ebbLatency], ['kafkaStreams', peerLatency]] as const) {
          out[`${name}${who === 'ebb' ? 'Ebb' : 'KafkaStreams'}P50ms`] = r[`${name}P50ms`]
          out[`${name}${who === 'ebb' ? 'Ebb' : 'KafkaStreams'}P99ms`] = r[`${name}P99ms`]
          out[`${name}${who === 'ebb' ? 'Ebb' : 'KafkaStreams'}Received`] = r[`${name}Tasks`] ?? r[`${name}Outputs`]
        }
        log(`peer: ${count(perSec)} events/s: event → output p50 / p99 Ebb ${String(out[`${name}EbbP50ms`])} / ${String(out[`${name}EbbP99ms`])} ms, Kafka Streams ${String(out[`${name}KafkaStreamsP50ms`])} / ${String(out[`${name}KafkaStreamsP99ms`])} ms`)
      }
    } finally {
      await producer.close()
    }
    return out
  } finally {
    if (child !== undefined) await stopProcess(child)
    await admin.close()
    rmSync(state, { recursive: true, force: true })
    if (broker.started) stopBroker()
  }
}

/** SIGTERM, then SIGKILL if the process has not exited 35 s later; at once when it already has. */
async function stopProcess (p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return
  const exited = new Promise((resolve) => { p.once('exit', resolve) })
  p.kill('SIGTERM')
  const timer = setTimeout(() => { p.kill('SIGKILL') }, 35_000)
  await exited
  clearTimeout(timer)
}
