import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { createWriteStream, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
// First: Node 20 lacks one function @platformatic/kafka calls (see node20.ts).
import '../src/kafka/node20.js'
import { findErrorBy } from '@platformatic/kafka'
import { count, Progress, rate } from '../src/cli/progress.js'
import { encodeAvroEvent } from '../src/events/avro.js'
import type { AdminPort, ProducerPort } from '../src/kafka/client.js'
import { Simulator } from '../src/sim/simulator.js'
import { projectRoot } from '../src/paths.js'

/**
 * The benchmark's Kafka environment: the project's own broker (scripts/kafka.sh: KRaft, single
 * node, jars from Maven Central), Ebb as a child process (`ebb run`, exactly as a user runs it),
 * and Kafka's own perf tools from the same jars.
 */
export const KAFKA_VERSION = process.env.KAFKA_VERSION ?? '3.9.1'

/** Starts the broker unless one runs; returns its address and whether we started it. */
export function ensureBroker (): { bootstrap: string, started: boolean } {
  const script = join(projectRoot(), 'scripts', 'kafka.sh')
  const status = spawnSync('bash', [script, 'status'], { encoding: 'utf8' })
  const bootstrap = spawnSync('bash', [script, 'bootstrap'], { encoding: 'utf8' }).stdout.trim()
  if (status.status === 0) return { bootstrap, started: false }
  const r = spawnSync('bash', [script, 'start'], { encoding: 'utf8', timeout: 300_000, stdio: ['ignore', 'pipe', 'inherit'] })
  if (r.status !== 0) throw new Error('scripts/kafka.sh start failed (see above)')
  return { bootstrap, started: true }
}

/**
 * scripts/kafka.sh for a broker of its own on `port` (the chaos suite, the outage and security
 * tests), with extra environment (KAFKA_TLS_DIR, KAFKA_SASL); throws with its stderr on failure.
 */
export function kafkaScript (port: number, args: string[], env: NodeJS.ProcessEnv = {}): void {
  const r = spawnSync('bash', [join(projectRoot(), 'scripts', 'kafka.sh'), ...args], { encoding: 'utf8', timeout: 300_000, env: { ...process.env, ...env, KAFKA_PORT: String(port) } })
  if (r.status !== 0) throw new Error(`scripts/kafka.sh ${args.join(' ')} failed: ${r.stderr}`)
}

/**
 * A cluster of `nodes` KRaft nodes (each broker and controller) on 127.0.0.1, node i (1-based) on
 * port `port + 10 (i - 1)` (its controller one above): scripts/kafka.sh once per node, with one
 * cluster id and one voter set. Each node's `start` returns before the quorum forms (a node alone
 * cannot finish starting), then every node is waited for. `props`: more server.properties lines
 * for every node (a replicated cluster sets its internal topics' replication there).
 */
export class KafkaCluster {
  readonly ports: number[]
  readonly bootstrap: string

  constructor (readonly port: number, readonly nodes: number, private readonly props = '') {
    this.ports = Array.from({ length: nodes }, (_, i) => port + 10 * i)
    this.bootstrap = this.ports.map((p) => `127.0.0.1:${p}`).join(',')
  }

  /** Stops whatever ran on these ports, then starts the cluster afresh (new data). */
  start (): void {
    this.stop()
    const id = spawnSync('bash', [join(projectRoot(), 'scripts', 'kafka.sh'), 'cluster-id'], { encoding: 'utf8', timeout: 300_000 }).stdout.trim()
    if (id === '') throw new Error('scripts/kafka.sh cluster-id gave no id')
    const voters = this.ports.map((p, i) => `${i + 1}@127.0.0.1:${p + 1}`).join(',')
    this.ports.forEach((p, i) => { kafkaScript(p, ['start'], { KAFKA_NODE_ID: String(i + 1), KAFKA_VOTERS: voters, KAFKA_CLUSTER_ID: id, KAFKA_NO_WAIT: '1', KAFKA_PROPS: this.props }) })
    for (const p of this.ports) kafkaScript(p, ['wait'])
  }

  /** SIGKILLs node `i` (0-based); its data stays. */
  kill (i: number): void { kafkaScript(this.ports[i], ['kill']) }

  /** Starts node `i` again on its data, and waits until it has rejoined. */
  resume (i: number): void { kafkaScript(this.ports[i], ['resume']) }

  stop (): void { for (const p of this.ports) kafkaScript(p, ['stop']) }
}

export function stopBroker (): void {
  spawnSync('bash', [join(projectRoot(), 'scripts', 'kafka.sh'), 'stop'], { encoding: 'utf8', timeout: 60_000 })
}

function kafkaClasspath (): string {
  const libs = join(projectRoot(), '.cache', 'kafka', KAFKA_VERSION, 'libs')
  readdirSync(libs) // throws a clear ENOENT if the jars were never fetched
  return join(libs, '*')
}

/** Runs one of Kafka's tools (a main class from the broker's jars) and returns its stdout. */
export function kafkaTool (mainClass: string, args: string[], timeoutMs = 600_000): string {
  const r = spawnSync('java', ['-Xmx1g', '-cp', kafkaClasspath(), '-Dlog4j.configuration=file:/dev/null', '-Dlog4j2.level=off', mainClass, ...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 1 << 26 })
  if (r.status !== 0) throw new Error(`${mainClass} failed (${r.status ?? r.signal}): ${r.stderr.slice(-2000)}`)
  return r.stdout
}

/**
 * kafka-consumer-perf-test on `topic`: messages per second over the whole run, and over the
 * fetch time alone (without the group join).
 */
export function consumerPerfTest (bootstrap: string, topic: string, messages: number): { msgPerSec: number, fetchMsgPerSec: number } {
  const out = kafkaTool('org.apache.kafka.tools.ConsumerPerformance', ['--bootstrap-server', bootstrap, '--topic', topic, '--messages', String(messages), '--group', `perf-${Date.now()}`, '--timeout', '60000'])
  const lines = out.trim().split('\n')
  const header = lines.findIndex((l) => l.includes('nMsg.sec'))
  if (header < 0 || lines[header + 1] === undefined) throw new Error(`ConsumerPerformance printed no result: ${out.slice(-500)}`)
  const names = lines[header].split(',').map((s) => s.trim())
  const values = lines[header + 1].split(',').map((s) => s.trim())
  const get = (n: string): number => Number(values[names.indexOf(n)])
  return { msgPerSec: get('nMsg.sec'), fetchMsgPerSec: get('fetch.nMsg.sec') }
}

/** kafka-producer-perf-test into `topic` (acks=all, idempotent, like Ebb's producer): records per second. */
export function producerPerfTest (bootstrap: string, topic: string, records: number, recordSize: number): { recordsPerSec: number, avgLatencyMs: number } {
  const out = kafkaTool('org.apache.kafka.tools.ProducerPerformance', ['--topic', topic, '--num-records', String(records), '--record-size', String(recordSize), '--throughput', '-1', '--producer-props', `bootstrap.servers=${bootstrap}`, 'acks=all', 'linger.ms=5'])
  const m = /(\d+) records sent, ([\d.]+) records\/sec .*?, ([\d.]+) ms avg latency/.exec(out)
  if (m === null) throw new Error(`ProducerPerformance printed no summary: ${out.slice(-500)}`)
  return { recordsPerSec: Number(m[2]), avgLatencyMs: Number(m[3]) }
}

/**
 * The `ebb run` configuration the Kafka-backed suites use: application `app` on input `input`,
 * its outputs named after it, exactly-once, the bundled schema for id 7, a free API port.
 */
export function ebbRunConfig (o: { app: string, instance?: number, bootstrap: string, input: string, partitions: number, stateDir: string, commitInterval?: string, guarantee?: 'exactly_once' | 'at_least_once', pipelined?: boolean }): string {
  const instance = o.instance ?? 0
  return `applicationId: ${o.app}
instanceId: ${o.app}-${instance}
brokers: [${o.bootstrap}]
topics: { input: ${o.input}, alerts: ${o.app}.alerts, tasks: ${o.app}.tasks, outcomes: ${o.app}.outcomes, deadLetters: ${o.app}.dlq, partitions: ${o.partitions} }
stateDir: ${join(o.stateDir, o.app, String(instance))}
${o.commitInterval === undefined ? '' : `commitInterval: ${o.commitInterval}\n`}processingGuarantee: ${o.guarantee ?? 'exactly_once'}
${o.pipelined === true ? 'pipelinedCommits: true\n' : ''}knownSchemaIds: [7]
http: { port: 0 }
`
}

/** The Node flags `ebb` runs with (bin/ebb.js's first line; the Dockerfile): the instances a benchmark starts run as a user's do. */
export const EBB_NODE_FLAGS = ['--max-semi-space-size=64']

/**
 * `ebb run --config F` as a child process; its logs (at `level`) go to `logFile`. With
 * EBB_BENCH_CPU_PROF=DIR each instance writes a V8 CPU profile there when it stops (Node refuses
 * --cpu-prof in NODE_OPTIONS); open it in Chrome's DevTools or any .cpuprofile viewer. With
 * EBB_BENCH_GC_TRACE=FILE each instance runs with --trace-gc, its lines appended to FILE (a pause
 * of the event loop that is the collector's, not Ebb's, shows there with its time).
 * EBB_BENCH_NODE_FLAGS="…": more Node flags for the instances only (not the harness; a later
 * flag wins: `--max-semi-space-size=16` measures V8's default nursery).
 */
export function startEbb (config: string, configFile: string, logFile: string, level = 'warn'): { child: ChildProcess, exited: Promise<number | null> } {
  writeFileSync(configFile, config)
  const prof = process.env.EBB_BENCH_CPU_PROF
  const gcTrace = process.env.EBB_BENCH_GC_TRACE
  const flags = [...EBB_NODE_FLAGS, ...(prof === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${prof}`]), ...(gcTrace === undefined ? [] : ['--trace-gc']), ...(process.env.EBB_BENCH_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '')]
  const child = spawn(process.execPath, [...flags, join(projectRoot(), 'bin', 'ebb.js'), 'run', '--config', configFile], { stdio: ['ignore', gcTrace === undefined ? 'ignore' : 'pipe', 'pipe'], env: { ...process.env, EBB_LOG_LEVEL: level } })
  child.stderr?.pipe(createWriteStream(logFile))
  if (gcTrace !== undefined) child.stdout?.pipe(createWriteStream(gcTrace, { flags: 'a' }))
  return { child, exited: new Promise((resolve) => child.on('exit', (code) => { resolve(code) })) }
}

/** The child's resident set size in MB (Linux /proc), or 0. */
export function rssMB (pid: number | undefined): number {
  if (pid === undefined) return 0
  const r = spawnSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' })
  return Math.round(Number(r.stdout.trim() || 0) / 1024)
}

/**
 * Whether a @platformatic/kafka error may pass when asked again: none in its chain says
 * `canRetry: false` (the rule the client's own retries follow).
 */
function retriable (err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('PLT_KFK_') && findErrorBy(err as Error, 'canRetry', false) === null
}

/**
 * The sum of a group's committed offsets on `topic`. A broker that just started answers
 * "not the coordinator" until its offsets topic is loaded: the client retries that itself, and
 * retriable errors that outlast its retries are asked again for 10 s.
 */
export async function committedTotal (admin: AdminPort, group: string, topic: string): Promise<number> {
  const deadline = Date.now() + 10_000
  for (;;) {
    try {
      let total = 0
      for (const offset of (await admin.committedOffsets(group, topic)).values()) total += offset === null ? 0 : Number(offset)
      return total
    } catch (err) {
      if (Date.now() > deadline || !retriable(err)) throw err
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
}

/**
 * Polls a group's committed offsets on `topic` until they reach `total` and returns the rate
 * between the first and the last committed offset (process start and the group join left out),
 * the time from the call to caught up, and the largest summed RSS of `pids`. Fails when
 * `exited()` names a process that stopped, or when nothing is committed for `stallMs`.
 */
export async function measureCatchUp (o: { admin: AdminPort, group: string, topic: string, total: number, what: string, pids: () => Array<number | undefined>, exited: () => string | null, stallMs: number }): Promise<{ eventsPerSec: number, startToCaughtUpSec: number, rssMB: number }> {
  const progress = new Progress('bench')
  let first = 0
  let firstAt = 0
  let last = 0
  let lastAt = 0
  let rss = 0
  const t0 = performance.now()
  for (;;) {
    const c = await committedTotal(o.admin, o.group, o.topic)
    const now = performance.now()
    if (c > 0 && first === 0) { first = c; firstAt = now }
    if (c > last) { last = c; lastAt = now }
    rss = Math.max(rss, o.pids().reduce<number>((n, pid) => n + rssMB(pid), 0))
    progress.tick(() => `${o.what} catching up: ${count(c)} of ${count(o.total)} committed`)
    if (c >= o.total) break
    const gone = o.exited()
    if (gone !== null) throw new Error(gone)
    if (now - Math.max(lastAt, t0) > o.stallMs) throw new Error(`${o.what} committed nothing for ${o.stallMs / 1000} s, at ${last} of ${o.total}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  const eventsPerSec = first < o.total && lastAt > firstAt ? (o.total - first) / ((lastAt - firstAt) / 1000) : o.total / ((lastAt - t0) / 1000)
  return { eventsPerSec, startToCaughtUpSec: Math.round((lastAt - t0) / 100) / 10, rssMB: rss }
}

/**
 * Produces `events` simulated Avro events (key = userId) to `topic`, 5,000 a send (acks=all,
 * idempotent): a backlog spread over `days` days of the simulator (~7 events per user-day), with
 * progress lines.
 */
export async function produceBacklog (producer: ProducerPort, topic: string, events: number, days: number, seed: number, label: string): Promise<{ produced: number, bytes: number, users: number, eventsPerSec: number }> {
  const users = Math.max(100, Math.round(events / 7 / days))
  const sim = new Simulator({ users, days: Math.max(1, Math.ceil(events / 7 / users)), seed })
  const progress = new Progress(label)
  const t0 = performance.now()
  let produced = 0
  let bytes = 0
  for (const day of sim.days()) {
    for (let i = 0; i < day.length && produced < events; i += 5000) {
      const slice = day.slice(i, Math.min(i + 5000, i + events - produced))
      const records = slice.map((e) => { const v = encodeAvroEvent(e); bytes += v.length; return { key: e.userId, value: v } })
      await producer.send(topic, records)
      produced += slice.length
      progress.tick(() => `producing the backlog: ${count(produced)} of ${count(events)} (${rate(produced, performance.now() - t0)})`)
    }
    if (produced >= events) break
  }
  return { produced, bytes, users, eventsPerSec: produced / ((performance.now() - t0) / 1000) }
}

