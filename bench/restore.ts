import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { count, Progress, rate } from '../src/cli/progress.js'
import { CHANGELOG_SUFFIX } from '../src/kafka/config.js'
import { PlatformaticClient } from '../src/kafka/platformatic-client.js'
import { topologyPath } from '../src/paths.js'
import { loadTopology } from '../src/rules/topology.js'
import { PartitionTask } from '../src/runtime/partition-task.js'
import { RocksStore } from '../src/state/rocks-store.js'
import { META_PREFIX } from '../src/state/keys.js'
import { buildPopulation, PackedBatch } from './population.js'
import { ebbRunConfig, ensureBroker, rssMB, startEbb, stopBroker } from './kafka-env.js'
import { CountingSink } from './timers.js'

const BATCH = 4096
/** A store's user states and timer buckets (not its local metadata), `n` records at a time. */
function * dataRecords (store: RocksStore, n: number): Generator<Array<[Buffer, Buffer]>> {
  const cursor = store.scanSync(Buffer.from([0]), Buffer.alloc(64, 0xff))
  try {
    for (let c = cursor.next(n); c.length > 0; c = cursor.next(n)) yield c.filter(([k]) => k[0] !== META_PREFIX)
  } finally {
    cursor.close()
  }
}
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/**
 * restore: a changelog restore through Kafka, as `ebb run` does it when a partition opens on an
 * instance with no local state (a new machine, a lost disk, a partition moved by a rebalance).
 *
 * 1. `users` users get state from the engine (PartitionTask over RocksDB, 3 events a user), and
 *    every record of that store (user states and timer buckets) is written to the changelog
 *    topic with a transactional producer, as Ebb's commits write it.
 * 2. `ebb run` starts on an empty state directory; its input partition opens and replays the
 *    changelog (read_committed) into RocksDB. Measured from its own log line ("state restored":
 *    the records, and the seconds from asking for the end offset — its reader's connect and
 *    group join included — to the last RocksDB write) and, from outside,
 *    the time from process start to the partition being ready.
 */
export async function benchRestore (o: { users: number }, log: (s: string) => void): Promise<Record<string, number | string>> {
  const broker = ensureBroker()
  const dir = mkdtempSync(join(tmpdir(), 'ebb-bench-restore-'))
  const client = new PlatformaticClient({ brokers: [broker.bootstrap], ssl: false, sasl: null }, 'ebb-bench')
  const admin = await client.admin()
  let ebb: ReturnType<typeof startEbb> | undefined
  let keepLogs = false
  try {
    // ---- 1. the state, from the engine -------------------------------------------------------
    log(`restore: building the state of ${count(o.users)} users (3 events each) with the engine`)
    const store = await RocksStore.open(join(dir, 'source'))
    const task = await PartitionTask.open({ topology: loadTopology(topologyPath('default.yaml')), store, sink: new CountingSink(), cacheCapacity: o.users * 2 })
    const pop = buildPopulation(o.users, o.users * 3, 2, 11)
    for (let i = 0; i < pop.length; i += BATCH) await task.process(new PackedBatch(pop, i, Math.min(i + BATCH, pop.length)))
    await task.commit()

    const run = `bench-restore-${Date.now()}`
    const app = `${run}-app`
    const input = `${run}.events`
    const changelog = app + CHANGELOG_SUFFIX
    await admin.createTopics([{ topic: input, partitions: 1, replicationFactor: 1 }, { topic: changelog, partitions: 1, replicationFactor: 1, compact: true }])
    const producer = await client.producer({ transactionalId: `${run}-writer` })
    const progress = new Progress('bench restore')
    let records = 0
    let bytes = 0
    const p0 = performance.now()
    // One transaction per 100k records, like a sequence of Ebb's commits.
    for (const chunk of dataRecords(store, 100_000)) {
      if (chunk.length === 0) continue
      const txn = await producer.transaction()
      // Requests of at most ~512 KB, as Ebb's commits send them (the broker refuses a record
      // batch over max.message.bytes, 1 MB; a timer bucket alone can be ~14 KB).
      let batch: Array<{ key: Buffer, value: Buffer }> = []
      let size = 0
      for (const [key, value] of chunk) {
        batch.push({ key, value })
        size += key.length + value.length + 16
        bytes += key.length + value.length
        if (size >= 512 * 1024) { await txn.sendBatch([{ topic: changelog, records: batch }]); batch = []; size = 0 }
      }
      if (batch.length > 0) await txn.sendBatch([{ topic: changelog, records: batch }])
      await txn.commit()
      records += chunk.length
      progress.tick(() => `writing the changelog: ${count(records)} records (${rate(records, performance.now() - p0)})`)
    }
    const writeRate = records / ((performance.now() - p0) / 1000)
    await producer.close()
    await store.close()
    log(`restore: ${count(records)} changelog records (${Math.round(bytes / records)} B each, key and value) in ${changelog}`)

    // ---- 2. ebb run restores them ------------------------------------------------------------
    const stateDir = join(dir, 'ebb')
    const config = ebbRunConfig({ app, bootstrap: broker.bootstrap, input, partitions: 1, stateDir })
    const logFile = join(dir, 'ebb.log')
    const s0 = performance.now()
    ebb = startEbb(config, join(dir, 'ebb.yaml'), logFile, 'info')
    let restored: { records: number, seconds: number, firstRecordSeconds: number } | undefined
    let rss = 0
    const wait = new Progress('bench restore')
    while (restored === undefined) {
      if (ebb.child.exitCode !== null) { keepLogs = true; throw new Error(`ebb run exited (${ebb.child.exitCode}); see ${logFile}`) }
      if (performance.now() - s0 > 600_000) { keepLogs = true; throw new Error(`no restore within 10 minutes; see ${logFile}`) }
      rss = Math.max(rss, rssMB(ebb.child.pid))
      const text = existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''
      for (const line of text.split('\n')) {
        if (!line.includes('"state restored"')) continue
        const j = JSON.parse(line) as { records: number, seconds: number, firstRecordSeconds: number }
        restored = { records: j.records, seconds: j.seconds, firstRecordSeconds: j.firstRecordSeconds }
      }
      wait.tick(() => `ebb run restoring ${count(records)} records`)
      if (restored === undefined) await sleep(50)
    }
    const startToRestoredSec = (performance.now() - s0) / 1000
    ebb.child.kill('SIGTERM')
    await ebb.exited
    // The restored store holds what was written: the same number of records, read back from RocksDB.
    const check = await RocksStore.open(join(stateDir, app, '0', `${input}-0`))
    let inStore = 0
    for (const c of dataRecords(check, 100_000)) inStore += c.length
    await check.close()
    const perSec = restored.records / Math.max(restored.seconds, 1e-3)
    log(`restore: ebb run restored ${count(restored.records)} records in ${restored.seconds.toFixed(2)} s (${count(Math.round(perSec))} records/s); ${startToRestoredSec.toFixed(1)} s from process start`)
    return {
      users: o.users,
      changelogRecords: records,
      changelogBytesPerRecord: Math.round(bytes / Math.max(1, records)),
      changelogWriteRecordsPerSec: Math.round(writeRate),
      restoredRecords: restored.records,
      recordsInRestoredStore: inStore,
      restoreSeconds: restored.seconds,
      restoreRecordsPerSec: Math.round(perSec),
      restoreFirstRecordSec: restored.firstRecordSeconds,
      restoreRecordsPerSecAfterFirstRecord: Math.round(restored.records / Math.max(restored.seconds - restored.firstRecordSeconds, 1e-3)),
      processStartToRestoredSec: Math.round(startToRestoredSec * 10) / 10,
      ebbRssMB: rss
    }
  } catch (err) {
    keepLogs = true
    throw err
  } finally {
    if (ebb !== undefined && ebb.child.exitCode === null) { ebb.child.kill('SIGKILL'); await ebb.exited }
    await admin.close().catch(() => {})
    if (keepLogs) log(`restore: logs kept in ${dir}`)
    else rmSync(dir, { recursive: true, force: true })
    if (broker.started) stopBroker()
  }
}
