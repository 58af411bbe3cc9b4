import { kpiTable } from '../intervention/kpis.js'
import { commandHelp, COMMANDS, parseCommand } from './commands.js'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EbbError, Errors } from '../errors.js'
import { encodeAvroEvent } from '../events/avro.js'
import { buildServer } from '../http/server.js'
import { LocalEngineView } from '../http/engine-view.js'
import { httpOptions, listen } from '../http/listen.js'
import { RecentRecordsSink } from '../io/recent.js'
import { MemorySink } from '../io/sinks.js'
import { EbbMetrics } from '../metrics/metrics.js'
import { topologyPath } from '../paths.js'
import { loadTopology } from '../rules/topology.js'
import { PartitionTask } from '../runtime/partition-task.js'
import { AvroBatch } from '../runtime/record-batch.js'
import { Simulator } from '../sim/simulator.js'
import { RocksStore, settledDirectoryBytes } from '../state/rocks-store.js'
import { encodeState } from '../state/state-codec.js'
import { intOption } from './args.js'
import { along, count, Progress, rate } from './progress.js'
import { printSummary, summaryOf } from './summary.js'

const BATCH = 4096

export async function demo (argv: string[]): Promise<number> {
  const o = parseCommand(COMMANDS.demo, argv)
  if (o.help === true) { process.stdout.write(commandHelp(COMMANDS.demo)); return 0 }
  const users = intOption('demo', 'users', o.users, 5_000, 1, 10_000_000)
  const days = intOption('demo', 'days', o.days, 60, 1, 3650)
  const seed = intOption('demo', 'seed', o.seed, 7, 0, 2 ** 31 - 1)
  const http = httpOptions(o.port, o.host, o.token, 'demo')
  const serve = o.exit !== true
  const topology = loadTopology(topologyPath('default.yaml'))
  const stateDir = o.state ?? mkdtempSync(join(tmpdir(), 'ebb-demo-'))
  // Whatever stops the demo (a port in use, a state it refuses, Ctrl-C while it simulates or
  // serves) closes what it opened and removes a state directory of its own making.
  let store: RocksStore | undefined
  let app: Awaited<ReturnType<typeof buildServer>> | undefined
  const closeStore = async (): Promise<void> => { const s = store; store = undefined; if (s !== undefined) await s.close() }
  const onSignal = (): void => { stop.requested = true; stop.wake() }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    store = await RocksStore.open(stateDir)
    return await runDemo({ users, days, seed, http, serve, topology, stateDir, store, closeStore, served: (a) => { app = a } })
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    if (app !== undefined) await app.close()
    await closeStore()
    if (o.state === undefined) rmSync(stateDir, { recursive: true, force: true })
  }
}

interface DemoSetup {
  users: number
  days: number
  seed: number
  http: ReturnType<typeof httpOptions>
  serve: boolean
  topology: ReturnType<typeof loadTopology>
  stateDir: string
  store: RocksStore
  closeStore: () => Promise<void>
  /** the API server, for the caller to close whatever stops the demo (undefined once closed here) */
  served: (app: Awaited<ReturnType<typeof buildServer>> | undefined) => void
}

async function runDemo ({ users, days, seed, http, serve, topology, stateDir, store, closeStore, served }: DemoSetup): Promise<number> {
  const sink = new MemorySink()
  const recent = new RecentRecordsSink(sink)
  const metricsSource: { task?: PartitionTask } = {}
  const metrics = new EbbMetrics({ partitions: () => metricsSource.task === undefined ? [] : [{ partition: 0, task: metricsSource.task }] }, { topology, simulated: true })
  const task = await PartitionTask.open({ topology, store, sink: recent, observer: metrics.observer })
  // The simulator starts its stream over on every run: on a state that saw one, every event
  // would be late (a dead letter) and the run would show nothing.
  if (Number.isFinite(task.watermark)) {
    throw new EbbError(Errors.USAGE, `ebb demo: the state in ${stateDir} already holds a stream up to ${new Date(task.maxTs).toISOString()}, and the demo starts its simulated stream over: every event would be late. Give a new or empty --state (or remove ${stateDir})`)
  }
  metricsSource.task = task
  const view = new LocalEngineView(task, recent)
  const app = serve ? await buildServer({ engine: view, metrics, token: http.token }) : undefined
  if (app !== undefined) served(app)
  const url = app === undefined ? undefined : await listen(app, http)
  if (url !== undefined) process.stderr.write(`[demo] serving ${url}/docs and ${url}/metrics\n`)
  const sim = new Simulator({ users, days, seed, noise: true })
  process.stderr.write(`[demo] ${count(users)} simulated users over ${days} days, state in ${stateDir}\n`)
  process.stderr.write('[demo] the simulator injects noise as real streams have (repeated and late events): expect dead letters; event times are simulated, months behind the clock\n')
  const progress = new Progress('demo')
  let offset = 0n
  let engineMs = 0
  let day = 0
  let lastTs = 0
  for (const events of sim.days()) {
    // Ctrl-C while simulating: stop between days, clean up (the caller), exit as interrupted.
    // (One turn of the event loop a day, so that the signal's handler gets to run.)
    await new Promise<void>((resolve) => { setImmediate(resolve) })
    if (stop.requested) { process.stderr.write('[demo] interrupted\n'); return 130 }
    day++
    // The embedded log: each simulated day becomes Avro records, as a Kafka partition would hold them.
    const values = events.map(encodeAvroEvent)
    for (const e of events) if (e.ts > lastTs) lastTs = e.ts
    const t0 = performance.now()
    for (let i = 0; i < values.length; i += BATCH) {
      const slice = values.slice(i, i + BATCH)
      await task.process(new AvroBatch(slice, 'embedded', 0, offset))
      offset += BigInt(slice.length)
    }
    await task.commit()
    engineMs += performance.now() - t0
    progress.tick(() => `day ${day}/${days} (${along(day, days, progress.elapsedMs)}): ${count(task.stats.recordsIn)} events (${rate(task.stats.recordsIn, engineMs)} in the engine), alerts ${count(task.stats.alertTotal)}, dead letters ${count(task.stats.deadLetterTotal)}`)
  }
  // Stream time to the last event: timers held back by the allowed lateness fire now.
  task.advanceTo(lastTs + 1)
  await task.commit()
  const summary = summaryOf(task, engineMs)
  printSummary('demo', summary, process.stdout)
  let stateBytes = 0
  let cached = 0
  for (const s of task.cache.values()) { stateBytes += encodeState(s).length; cached++ }
  // The size on disk means something only settled (the store closed, its write-ahead log replayed
  // into SST files): an open store counts its memtables' preallocated arena (~6 KB a user here).
  // So it is printed when the demo ends: now with --exit, after Ctrl-C when serving.
  const onDisk = async (): Promise<string> => {
    await closeStore()
    const diskBytes = await settledDirectoryBytes(stateDir)
    return `RocksDB ${(diskBytes / 1e6).toFixed(2)} MB on disk (${cached > 0 ? Math.round(diskBytes / cached) : 0} B per user, timers included)`
  }
  process.stdout.write(`state: ${cached > 0 ? Math.round(stateBytes / cached) : 0} B per user (Avro, mean of ${count(cached)} users); ${serve ? 'its size on disk is printed when the demo stops' : await onDisk()}\n`)
  // The middle one of each rule's alerts: past the model's warm-up, typical of the run.
  process.stdout.write('example alerts (the middle one of each rule\'s):\n')
  const byRule = new Map<string, typeof sink.alerts>()
  for (const a of sink.alerts) { const l = byRule.get(a.rule); if (l === undefined) byRule.set(a.rule, [a]); else l.push(a) }
  for (const list of byRule.values()) {
    const a = list[list.length >> 1]
    process.stdout.write(`  ${a.rule} ${a.userId} at ${new Date(a.firedAt).toISOString()}: ${a.reasons.map((r) => r.text).join('; ')} [value ${a.valueTier}, response ${a.responseTier}, ${a.churnType ?? '-'}, ${a.arm ?? '-'} → ${a.decision ?? '-'}]\n`)
  }
  const channels = new Set<string>()
  if (sink.tasks.length > 0) process.stdout.write('example recall tasks:\n')
  for (const t of sink.tasks) {
    if (channels.has(t.channel)) continue
    channels.add(t.channel)
    process.stdout.write(`  ${t.channel} ${t.taskId} to ${t.userId} at ${new Date(t.sendAt).toISOString()} (${t.planId}, ${t.churnType}/${t.valueTier}): ${t.title === null ? '' : `"${t.title}" `}"${t.body}"\n`)
  }
  if (task.intervention !== null) process.stdout.write(kpiTable(task.intervention.kpis.report()))
  if (app !== undefined && url !== undefined) {
    const example = sink.alerts[0]?.userId ?? 'u000001'
    const auth = http.token === undefined ? '' : ' -H "Authorization: Bearer $EBB_HTTP_TOKEN"'
    // With --token the variable the hint uses is not set in the caller's shell: the hint sets it.
    const setToken = http.token !== undefined && process.env.EBB_HTTP_TOKEN !== http.token ? `export EBB_HTTP_TOKEN='${http.token.replace(/'/g, "'\\''")}'\n             ` : ''
    process.stdout.write(`\nserving until Ctrl-C:\n  API docs   ${url}/docs\n  metrics    ${url}/metrics\n  try        ${setToken}curl -s${auth} ${url}/users/${example}\n             curl -s${auth} '${url}/alerts?rule=inactive_7d&limit=5'\n`)
    await untilSignal()
    await app.close()
    served(undefined)
    process.stdout.write(`stopped; state: ${await onDisk()}\n`)
  }
  return 0
}

/** SIGINT or SIGTERM (Ctrl-C, docker stop) seen since the demo started, and who waits for one. */
const stop = { requested: false, wake: (): void => {} }

/** Resolves on the first SIGINT or SIGTERM, at once if one came already. */
async function untilSignal (): Promise<void> {
  if (stop.requested) return
  await new Promise<void>((resolve) => { stop.wake = resolve })
}
