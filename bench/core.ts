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
import { BENCH_START, buildPopulation, PackedBatch } from './population.js'

export interface CoreOptions { users: number, events: number, days: number, latencyEvents: number }

const BATCH = 4096

/**
 * decode → state → signals → rules on one core, with RocksDB state, against the avsc
 * decode-only loop over the same records in the same run.
 */
export async function benchCore (o: CoreOptions, log: (s: string) => void): Promise<Record<string, number | string>> {
  log(`core: building ${o.events.toLocaleString()} Avro events over ${o.users.toLocaleString()} users, ${o.days} days`)
  const pop = buildPopulation(o.users, o.events, o.days)
  const total = pop.length
  const all = pop.all
  const off = pop.offsets

  // 1. The ceiling: avsc decode alone.
  let sink = 0
  for (let i = 0; i < Math.min(total, 200_000); i++) sink += decodeAvroEvent(all.subarray(off[i], off[i + 1])).ts & 1 // warm-up
  let t0 = performance.now()
  for (let i = 0; i < total; i++) sink += decodeAvroEvent(all.subarray(off[i], off[i + 1])).ts & 1
  const decodeMs = performance.now() - t0
  const decodeRate = total / (decodeMs / 1000)
  log(`core: decode-only ${Math.round(decodeRate).toLocaleString()} events/s (${sink & 1})`)

  // 2. The engine, RocksDB state in a temp dir, a cache that holds the population.
  const dir = mkdtempSync(join(tmpdir(), 'ebb-bench-core-'))
  const topology = loadTopology(topologyPath('default.yaml'))
  const store = await RocksStore.open(dir)
  const alerts = new MemorySink()
  const task = await PartitionTask.open({ topology, store, sink: alerts, cacheCapacity: o.users * 2 })
  // A commit every 1M events: about a second of input at the target rate (Kafka Streams commits
  // every 100 ms with exactly-once, 30 s without; the cost per commit is the dirty users, not the events).
  const commitEvery = 1_000_000
  let sinceCommit = 0
  let commitMs = 0
  let lastLog = performance.now()
  t0 = performance.now()
  for (let i = 0; i < total; i += BATCH) {
    const batch = new PackedBatch(pop, i, Math.min(i + BATCH, total))
    await task.process(batch)
    sinceCommit += batch.length
    if (sinceCommit >= commitEvery) {
      const c0 = performance.now()
      await task.commit()
      commitMs += performance.now() - c0
      sinceCommit = 0
    }
    if (performance.now() - lastLog > 2000) {
      lastLog = performance.now()
      log(`core: ${(i + batch.length).toLocaleString()} / ${total.toLocaleString()} events, ${Math.round((i + batch.length) / ((lastLog - t0) / 1000)).toLocaleString()} events/s`)
    }
  }
  const c0 = performance.now()
  await task.commit()
  commitMs += performance.now() - c0
  const engineMs = performance.now() - t0
  const engineRate = total / (engineMs / 1000)
  log(`core: engine ${Math.round(engineRate).toLocaleString()} events/s including commits (${(commitMs / 1000).toFixed(1)} s of ${(engineMs / 1000).toFixed(1)} s)`)

  // 3. Per-event latency (decode + processing), measured on a second pass over a slice, same task.
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 1e10, numberOfSignificantValueDigits: 3 })
  const lat = await PartitionTask.open({ topology, store, sink: alerts, cacheCapacity: o.users * 2, latency: histogram })
  const n = Math.min(o.latencyEvents, total)
  // Same events again would be duplicates; a later window of time keeps them fresh.
  const shifted = buildPopulation(o.users, n, 1, 7, BENCH_START + (o.days + 1) * 86_400_000)
  for (let i = 0; i < n; i += BATCH) await lat.process(new PackedBatch(shifted, i, Math.min(i + BATCH, n)))

  // 4. The churn model's share: scoring alone (features + model), over the cached users.
  let modelNs = Number.NaN
  const model = topology.model
  if (model !== null) {
    const states = [...task.cache.values()].filter((s) => s.lastLoginTs >= 0)
    const rounds = Math.max(1, Math.ceil(200_000 / Math.max(1, states.length)))
    let acc = 0
    const m0 = performance.now()
    for (let r = 0; r < rounds; r++) for (const s of states) acc += model.score(s, s.headDay, s.lastEventTs, topology.params)
    modelNs = states.length === 0 ? Number.NaN : (performance.now() - m0) * 1e6 / (rounds * states.length)
    log(`core: model ${model.version}: ${modelNs.toFixed(0)} ns a score (${acc > 0 ? 'ok' : '-'})`)
  }

  // 5. Size: encoded state per user, and RocksDB's directory after close.
  let stateBytes = 0
  let users = 0
  for (const s of task.cache.values()) { stateBytes += encodeState(s).length; users++ }
  await lat.commit()
  await store.close()
  const disk = await settledDirectoryBytes(dir)
  rmSync(dir, { recursive: true, force: true })
  const rss = process.memoryUsage().rss
  return {
    users: o.users,
    events: total,
    avroBytesPerEvent: Math.round(pop.bytes / total),
    decodeOnlyEventsPerSec: Math.round(decodeRate),
    engineEventsPerSec: Math.round(engineRate),
    ratioToDecodeOnly: Math.round(engineRate / decodeRate * 1000) / 1000,
    commitShare: Math.round(commitMs / engineMs * 1000) / 1000,
    latencyEvents: n,
    p50us: histogram.getValueAtPercentile(50) / 1000,
    p99us: histogram.getValueAtPercentile(99) / 1000,
    p999us: histogram.getValueAtPercentile(99.9) / 1000,
    stateBytesPerUser: Math.round(stateBytes / Math.max(1, users)),
    diskBytesPerUser: Math.round(disk / Math.max(1, users)),
    rssMB: Math.round(rss / 1e6),
    model: model === null ? 'none' : model.version,
    modelScoreNs: Math.round(modelNs),
    alerts: task.stats.alertTotal,
    latencyPassDeadLetters: lat.stats.deadLetterTotal
  }
}
