import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Kafka, logLevel } from 'kafkajs'
import { count } from '../src/cli/progress.js'
import { kafkajsConfig } from '../src/kafka/kafkajs-client.js'
import { projectRoot, schemaPath } from '../src/paths.js'
import { benchE2e } from './e2e.js'
import { ensureBroker, measureCatchUp, stopBroker } from './kafka-env.js'

/**
 * peer: Ebb against a minimal Kafka Streams application (bench/peers/kafka-streams, Java 17, built
 * here with Maven) that computes the same default-topology signals and rules, on the same topic
 * and broker, in the same session, both exactly-once with a 100 ms commit interval. Ebb runs the
 * e2e throughput phase on a fresh backlog; the peer then reads that same topic from the start.
 * Both rates are measured the same way: from the first to the last committed input offset.
 */
export async function benchPeer (o: { events: number, partitions: number }, log: (s: string) => void): Promise<Record<string, number | string>> {
  const dir = join(projectRoot(), 'bench', 'peers', 'kafka-streams')
  log('peer: building the Kafka Streams application (mvn -q package)')
  const mvn = spawnSync('mvn', ['-q', '-B', 'package'], { cwd: dir, encoding: 'utf8', timeout: 900_000 })
  if (mvn.status !== 0) throw new Error(`mvn package failed in ${dir}: ${(mvn.stdout + mvn.stderr).slice(-2000)}`)
  const broker = ensureBroker()
  const kafka = new Kafka({ ...kafkajsConfig({ brokers: [broker.bootstrap], ssl: false, sasl: null }, 'ebb-bench-peer'), logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  const state = mkdtempSync(join(tmpdir(), 'ebb-bench-peer-'))
  let child: ChildProcess | undefined
  try {
    const ebb = await benchE2e({ events: o.events, partitions: o.partitions, seconds: 0, levels: [], commitInterval: '100ms', throughputOnly: true }, log)
    const input = String(ebb.input)
    const produced = Number(ebb.events)
    const app = `${input}-peer`
    await admin.createTopics({ topics: [{ topic: `${app}.alerts`, numPartitions: o.partitions }] })
    child = spawn('java', ['-Xmx2g', '-cp', `${join(dir, 'target', 'ebb-peer-kafka-streams-1.jar')}:${join(dir, 'target', 'lib', '*')}`, 'dev.ebb.peer.ChurnPeer', broker.bootstrap, input, app, state, schemaPath('user-event.avsc')], { stdio: ['ignore', 'ignore', 'inherit'] })
    const java = child
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
    const [alerts] = await admin.fetchTopicOffsets(`${app}.alerts`).then((ps) => [ps.reduce((n, p) => n + Number(p.high), 0)])
    log(`peer: Kafka Streams caught up at ${count(Math.round(peerRate))} events/s; Ebb at ${count(Number(ebb.ebbEventsPerSec))} events/s`)
    return {
      events: produced,
      partitions: o.partitions,
      ebbEventsPerSec: ebb.ebbEventsPerSec,
      ebbRssMB: ebb.ebbRssMB,
      kafkaStreamsEventsPerSec: Math.round(peerRate),
      kafkaStreamsRssMB: rss,
      kafkaStreamsAlertOffsets: alerts,
      ratioEbbToKafkaStreams: Math.round(Number(ebb.ebbEventsPerSec) / peerRate * 1000) / 1000
    }
  } finally {
    if (child !== undefined && child.exitCode === null) {
      child.kill('SIGTERM')
      await new Promise((resolve) => { child?.once('exit', resolve); setTimeout(resolve, 35_000) })
    }
    await admin.disconnect()
    rmSync(state, { recursive: true, force: true })
    if (broker.started) stopBroker()
  }
}
