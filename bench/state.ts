import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { topologyPath } from '../src/paths.js'
import { loadTopology } from '../src/rules/topology.js'
import { PartitionTask } from '../src/runtime/partition-task.js'
import { RocksStore, settledDirectoryBytes } from '../src/state/rocks-store.js'
import { BENCH_START, buildPopulation, PackedBatch } from './population.js'
import { CountingSink } from './timers.js'

const BATCH = 4096
const DAY = 86_400_000

/**
 * state: the state store's paths, each on its own.
 *   hit     every user of the batch is in the write-back cache (the steady state of a hot partition)
 *   miss    a cache of 1,000 users and a commit every batch: nearly every event reads RocksDB
 *           (one multi-get per batch) and every batch flushes
 *   flush   a commit of many dirty users: µs per user written (encode + RocksDB batch)
 *   restore the store side of a changelog restore: every key of the store written again into
 *           an empty RocksDB in the restore loop's batches (src/kafka/runner.ts); the Kafka fetch
 *           in front of it is not included here
 *   size    RocksDB bytes per user after a settled close
 */
export async function benchState (o: { users: number, events: number }, log: (s: string) => void): Promise<Record<string, number | string>> {
  const topology = loadTopology(topologyPath('default.yaml'))
  const dir = mkdtempSync(join(tmpdir(), 'ebb-bench-state-'))
  const dir2 = mkdtempSync(join(tmpdir(), 'ebb-bench-restore-'))
  try {
    log(`state: ${o.users.toLocaleString()} users, ${o.events.toLocaleString()} events a pass`)
    const store = await RocksStore.open(dir)
    const sink = new CountingSink()
    // Load: every user gets state (and stays in the cache for the hit pass).
    const load = buildPopulation(o.users, Math.max(o.events, o.users * 3), 2, 1)
    const hot = await PartitionTask.open({ topology, store, sink, cacheCapacity: o.users * 2 })
    for (let i = 0; i < load.length; i += BATCH) await hot.process(new PackedBatch(load, i, Math.min(i + BATCH, load.length)))
    const dirty = hot.cache.size
    const f0 = performance.now()
    await hot.commit()
    const flushMs = performance.now() - f0
    log(`state: flush of ${dirty.toLocaleString()} dirty users in ${(flushMs / 1000).toFixed(2)} s`)

    // Hit path: fresh events (a later time window) for users all in the cache; no commit inside.
    const later = buildPopulation(o.users, o.events, 1, 2, BENCH_START + 3 * DAY)
    let t0 = performance.now()
    for (let i = 0; i < later.length; i += BATCH) await hot.process(new PackedBatch(later, i, Math.min(i + BATCH, later.length)))
    const hitMs = performance.now() - t0
    await hot.commit()
    log(`state: hit path ${Math.round(later.length / (hitMs / 1000)).toLocaleString()} events/s`)

    // Miss path: a new task over the same store with a tiny cache, committing every batch.
    const cold = await PartitionTask.open({ topology, store, sink, cacheCapacity: 1000 })
    const evenLater = buildPopulation(o.users, o.events, 1, 3, BENCH_START + 5 * DAY)
    t0 = performance.now()
    for (let i = 0; i < evenLater.length; i += BATCH) {
      await cold.process(new PackedBatch(evenLater, i, Math.min(i + BATCH, evenLater.length)))
      await cold.commit()
    }
    const missMs = performance.now() - t0
    log(`state: miss path ${Math.round(evenLater.length / (missMs / 1000)).toLocaleString()} events/s`)

    // Restore: every key again, into an empty store, in batches like the changelog restore.
    const target = await RocksStore.open(dir2)
    const cursor = store.scanSync(Buffer.from([0]), Buffer.alloc(64, 0xff))
    let records = 0
    t0 = performance.now()
    for (;;) {
      const chunk = cursor.next(10_000)
      if (chunk.length === 0) break
      const b = target.batch()
      for (const [k, v] of chunk) b.put(k, v)
      await b.write()
      records += chunk.length
    }
    cursor.close()
    const restoreMs = performance.now() - t0
    log(`state: restore (store side) ${Math.round(records / (restoreMs / 1000)).toLocaleString()} records/s`)
    await target.close()
    await store.close()
    const disk = await settledDirectoryBytes(dir)
    return {
      users: o.users,
      eventsPerPass: o.events,
      hitPathEventsPerSec: Math.round(later.length / (hitMs / 1000)),
      missPathEventsPerSec: Math.round(evenLater.length / (missMs / 1000)),
      flushDirtyUsers: dirty,
      flushUsPerUser: Math.round(flushMs * 1000 / Math.max(1, dirty) * 100) / 100,
      restoreRecords: records,
      restoreStoreSideRecordsPerSec: Math.round(records / (restoreMs / 1000)),
      rocksdbBytesPerUser: Math.round(disk / o.users),
      rssMB: Math.round(process.memoryUsage().rss / 1e6)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
    rmSync(dir2, { recursive: true, force: true })
  }
}
