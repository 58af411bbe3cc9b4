import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import hdr from 'hdr-histogram-js'
import { decodeAvroEvent } from '../src/events/avro.js'
import { MemorySink } from '../src/io/sinks.js'
import { topologyPath } from '../src/paths.js'
import { loadTopology } from '../src/rules/topology.js'
import { PartitionTask } from '../src/runtime/partition-task.js'
import { RocksStore, settledDirectoryBytes } from '../src/state/rocks-store.js'
import { encodeState } from '../src/state/state-codec.js'
import { NEVER_DAY } from '../src/state/user-state.js'
import { ChurnLearner } from '../src/model/learner.js'
import { BENCH_START, type BenchPopulation, buildPopulation, PackedBatch } from './population.js'

export interface CoreOptions {
  users: number
  events: number
  days: number
  latencyEvents: number
  /** users the write-back cache keeps between commits (default: twice the users, so all stay) */
  cache?: number
  /**
   * events built at a time (default: all, before timing starts). A smaller chunk streams the
   * input — built, processed, dropped — so populations whose events do not fit memory can run;
   * generation is then left out of the timing.
   */
  chunk?: number
}

const BATCH = 4096
const DAY = 86_400_000

/** The results file of a core run at a size other than the default (the scaling suite reads it). */
export function coreRunName (users: number, events: number, days: number, cache?: number): string {
  return `core-${users}u-${events}e-${days}d${cache === undefined ? '' : `-c${cache}`}`
}

/**
 * decode → state → signals → rules on one core, with RocksDB state, against the avsc
 * decode-only loop over the same records in the same run.
 */
export async function benchCore (o: CoreOptions, log: (s: string) => void): Promise<Record<string, number | string>> {
  const chunk = Math.min(o.chunk ?? o.events, o.events)
  const chunks = Math.ceil(o.events / chunk)
  const seen = new Uint8Array(o.users)
  const span = o.days * DAY
  // Chunk k holds events [k·chunk, …) of one time-ordered stream: its own slice of the time span, fresh event ids.
  const build = (k: number): BenchPopulation => {
    const from = k * chunk
    const n = Math.min(chunk, o.events - from)
    return buildPopulation(o.users, n, o.days * n / o.events, 42 + k, BENCH_START + Math.floor(from * span / o.events), from, seen)
  }
  log(`core: building ${chunks === 1 ? '' : `the first of ${chunks} chunks of `}${o.events.toLocaleString()} Avro events over ${o.users.toLocaleString()} users, ${o.days} days`)
  const first = build(0)

  // 1. The ceiling: avsc decode alone (over the first chunk: all the events unless streamed).
  let sink = 0
  const all = first.all
  const off = first.offsets
  for (let i = 0; i < Math.min(first.length, 200_000); i++) sink += decodeAvroEvent(all.subarray(off[i], off[i + 1])).ts & 1 // warm-up
  const t0 = performance.now()
  for (let i = 0; i < first.length; i++) sink += decodeAvroEvent(all.subarray(off[i], off[i + 1])).ts & 1
  const decodeMs = performance.now() - t0
  const decodeRate = first.length / (decodeMs / 1000)
  log(`core: decode-only ${Math.round(decodeRate).toLocaleString()} events/s (${sink & 1})`)

  // 2. The engine, RocksDB state in a temp dir.
  const dir = mkdtempSync(join(tmpdir(), 'ebb-bench-core-'))
  const topology = loadTopology(topologyPath('default.yaml'))
  const store = await RocksStore.open(dir)
  const alerts = new MemorySink()
  const cacheCapacity = o.cache ?? o.users * 2
  const task = await PartitionTask.open({ topology, store, sink: alerts, cacheCapacity })
  // A commit every 1M events: about a second of input at the target rate (Kafka Streams commits
  // every 100 ms with exactly-once, 30 s without; the cost per commit is the dirty users, not the events).
  const commitEvery = 1_000_000
  let sinceCommit = 0
  let commitMs = 0
  let peakRss = 0
  // Only processing and commits are timed (not building a streamed chunk).
  let engineMs = 0
  let done = 0
  let bytes = 0
  let lastLog = performance.now()
  for (let k = 0; k < chunks; k++) {
    const pop = k === 0 ? first : build(k)
    bytes += pop.bytes
    for (let i = 0; i < pop.length; i += BATCH) {
      const b0 = performance.now()
      const batch = new PackedBatch(pop, i, Math.min(i + BATCH, pop.length))
      await task.process(batch)
      sinceCommit += batch.length
      if (sinceCommit >= commitEvery) {
        peakRss = Math.max(peakRss, process.memoryUsage().rss) // the cache is largest just before a commit evicts
        const c0 = performance.now()
        await task.commit()
        commitMs += performance.now() - c0
        sinceCommit = 0
      }
      const b1 = performance.now()
      engineMs += b1 - b0
      done += batch.length
      if (b1 - lastLog > 2000) {
        lastLog = b1
        log(`core: ${done.toLocaleString()} / ${o.events.toLocaleString()} events, ${Math.round(done / (engineMs / 1000)).toLocaleString()} events/s, ${task.cache.size.toLocaleString()} users cached, RSS ${Math.round(process.memoryUsage().rss / 1e6).toLocaleString()} MB`)
      }
    }
  }
  peakRss = Math.max(peakRss, process.memoryUsage().rss)
  const c0 = performance.now()
  await task.commit()
  commitMs += performance.now() - c0
  engineMs += performance.now() - c0
  const total = done
  const engineRate = total / (engineMs / 1000)
  log(`core: engine ${Math.round(engineRate).toLocaleString()} events/s including commits (${(commitMs / 1000).toFixed(1)} s of ${(engineMs / 1000).toFixed(1)} s)`)

  // 3. Per-event latency (decode + processing), measured on a second pass over a slice, same task.
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 1e10, numberOfSignificantValueDigits: 3 })
  const lat = await PartitionTask.open({ topology, store, sink: alerts, cacheCapacity, latency: histogram })
  const n = Math.min(o.latencyEvents, total)
  // The day after the main pass, with fresh event ids: stream time goes on from where it was,
  // so each zone's midnight fires on its own, as in the main pass (a jump over all three at once
  // would load every user with a timer in one batch: the cache bound applies only between batches).
  const shifted = buildPopulation(o.users, n, 1, 7, BENCH_START + o.days * DAY, o.events)
  // Commits every ~100k events (not in the histogram): the day it moves through fires each
  // zone's midnight timers, and only a commit lets a bounded cache evict the users they loaded.
  for (let i = 0, b = 1; i < n; i += BATCH, b++) {
    await lat.process(new PackedBatch(shifted, i, Math.min(i + BATCH, n)))
    if (b % 25 === 0) await lat.commit()
  }

  // 4. The churn model's share: scoring alone (spell features + coefficients), over the cached
  // users whose silence has a spell record; and the learning cost of one labelled day.
  let modelNs = Number.NaN
  let labelNs = Number.NaN
  const learner = task.learner
  if (learner !== null) {
    const states = [...task.cache.values()].filter((s) => s.spellDay !== NEVER_DAY)
    const rounds = Math.max(1, Math.ceil(200_000 / Math.max(1, states.length)))
    let acc = 0
    const m0 = performance.now()
    for (let r = 0; r < rounds; r++) for (const s of states) acc += learner.z(s, 3)
    modelNs = states.length === 0 ? Number.NaN : (performance.now() - m0) * 1e6 / (rounds * states.length)
    // Labels go to a scratch learner: the task's own must not learn from the benchmark's loop.
    const scratch = new ChurnLearner(learner.model, [])
    const l0 = performance.now()
    for (const s of states) scratch.label(s, 3, s.lastEventTs, 0)
    labelNs = states.length === 0 ? Number.NaN : (performance.now() - l0) * 1e6 / states.length
    log(`core: model ${learner.model.version}: ${modelNs.toFixed(0)} ns a score, ${labelNs.toFixed(0)} ns a label (${acc !== 0 ? 'ok' : '-'})`)
  }

  // 5. Size: encoded state per user, and RocksDB's directory after close.
  let stateBytes = 0
  let cached = 0
  for (const s of task.cache.values()) { stateBytes += encodeState(s).length; cached++ }
  let users = 0
  for (let u = 0; u < o.users; u++) users += seen[u]
  await lat.commit()
  await store.close()
  const disk = await settledDirectoryBytes(dir)
  rmSync(dir, { recursive: true, force: true })
  const rss = process.memoryUsage().rss
  return {
    users: o.users,
    events: total,
    usersWithEvents: users,
    cacheCapacity,
    chunkEvents: chunk,
    avroBytesPerEvent: Math.round(bytes / total),
    decodeOnlyEventsPerSec: Math.round(decodeRate),
    engineEventsPerSec: Math.round(engineRate),
    ratioToDecodeOnly: Math.round(engineRate / decodeRate * 1000) / 1000,
    commitShare: Math.round(commitMs / engineMs * 1000) / 1000,
    latencyEvents: n,
    p50us: histogram.getValueAtPercentile(50) / 1000,
    p99us: histogram.getValueAtPercentile(99) / 1000,
    p999us: histogram.getValueAtPercentile(99.9) / 1000,
    stateBytesPerUser: Math.round(stateBytes / Math.max(1, cached)),
    diskBytesPerUser: Math.round(disk / Math.max(1, users)),
    rssMB: Math.round(Math.max(rss, peakRss) / 1e6),
    enginePassPeakRssMB: Math.round(peakRss / 1e6),
    model: learner === null ? 'none' : learner.model.version,
    modelScoreNs: Math.round(modelNs),
    modelLabelNs: Math.round(labelNs),
    alerts: task.stats.alertTotal,
    latencyPassDeadLetters: lat.stats.deadLetterTotal
  }
}
