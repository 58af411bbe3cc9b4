import { EbbError, Errors } from '../errors.js'
import { log } from '../log.js'
import { metaKey, STATE_PREFIX } from '../state/keys.js'
import type { RocksStore } from '../state/rocks-store.js'
import { abortable } from './waits.js'
import type { AdminPort, KafkaClient } from './client.js'
import type { HangingTransactionWatch } from './hanging-watch.js'
import { changelogTopic, type RunConfig } from './config.js'

/** the changelog offset the local store has applied everything before (local only) */
export const META_CHANGELOG = metaKey('changelog')
/** the next input offset the state has seen everything before (written with the offsets, in the same transaction) */
export const META_INPUT = metaKey('input-offset')
/** how long an opening partition waits for a previous owner's last transaction to land */
const CONSISTENT_RESTORE_ATTEMPTS = 50
const CONSISTENT_RESTORE_WAIT_MS = 200

/**
 * Restore, as Kafka Streams' StoreChangelogReader: brings a partition's local RocksDB store up
 * to the end of its changelog partition (read committed), from the changelog position the store
 * recorded, and until the state agrees with the group's committed offset.
 * Progress per partition is kept for /metrics and the status lines.
 */
export class ChangelogReader {
  /** changelog records restored, and still to restore, per partition */
  readonly progress = new Map<number, { restored: number, remaining: number }>()

  constructor (private readonly client: KafkaClient, private readonly admin: () => AdminPort, private readonly config: RunConfig, private readonly hanging: HangingTransactionWatch) {}

  /**
   * Restores the store and returns the input offset its state has seen once
   * that agrees with the group's committed offset (or where to resume when the group has lost
   * its offsets: stateAhead). Both are written by one transaction, so they
   * disagree only while a previous owner's last transaction is still landing: one that was in
   * flight when it lost the partition (the client's group member rejoins without waiting for the
   * runner, so nothing holds the rebalance while a commit is in flight; the member's generation
   * fences only the offsets, KIP-447, not a transaction that already committed them). Read between the two, such a transaction would leave the state
   * without its records' effects while the fetch position skips them — a lost update. So the
   * restore repeats until the two agree. The tail can stay hidden longer: a transaction left open
   * on the changelog by a producer that died holds back what read_committed may see (the last
   * stable offset) until the broker aborts it (the transaction timeout). Resuming at the group's
   * offset then would lose the hidden records' effects for good (a chaos run did: 4,800 records of
   * a partition's state), so it is never done for a store that records its input offset: after
   * `restoreConsistencyTimeout` the open fails, retriably, and the partition is tried again at its
   * next batch or assignment. Only a store written before the input offset was recorded (no key)
   * falls back, after the wait, to the group's offset.
   *
   * A tail hidden by a *hanging* transaction would never show: open on the partition while no
   * coordinator owns it, so no marker will ever end it (a chaos run met one after two broker
   * kills: the partition stayed closed for good). Such a transaction is aborted here, as an
   * operator would with `kafka-transactions.sh find-hanging` and `abort`, once it has been seen
   * hanging for `hangingTransactionTimeout` (hanging-watch.ts). A transaction whose coordinator
   * owns it is never touched: the coordinator ends it, at the latest at its timeout.
   *
   * `signal`: aborts when the runner closes or the group rebalances (the partition may not be
   * this instance's any more): the restore (its fetches, its waits, the admin requests of its
   * consistency check) stops at once instead of reading on for a partition that moved, or riding
   * out a broker outage for its own timeouts, and its store can close. What it wrote stays: the
   * store's changelog position moves only at the end, and reading from the old one again
   * rewrites the same records.
   */
  async restoreConsistent (partition: number, store: RocksStore, signal?: AbortSignal): Promise<bigint | null> {
    const c = this.config
    const deadline = Date.now() + c.restoreConsistencyTimeoutMs
    for (let attempt = 1; ; attempt++) {
      await this.restorePartition(partition, store, signal)
      const [raw] = await store.getMany([META_INPUT])
      const seen = raw === undefined ? null : raw.readBigUInt64BE(0)
      const committed = (await abortable(this.admin().committedOffsets(c.applicationId, c.topics.input), signal)).get(partition) ?? null
      if (seen === committed) return seen
      // Ahead of the group for longer than a landing transaction takes (its changelog records can
      // be readable a moment before its offsets are): the group lost its offsets, or they moved.
      if (seen !== null && (committed === null || seen > committed) && Date.now() >= deadline) {
        // Or, at-least-once, a state written by a version that sent the changelog before the
        // offsets, outside a transaction (ahead by a commit by design): it resumes at the group's
        // offset, applying that input again, which at-least-once allows. Its commits are
        // transactions now, as exactly-once's are.
        if (c.processingGuarantee !== 'exactly_once' && committed !== null) {
          log.warn({ partition, stateAt: String(seen), committedAt: String(committed) }, 'at-least-once: the state has seen more of the input than the group committed (a state of an older version that crashed between its changelog and its offsets, or offsets moved back by hand): resuming at the group\'s offset, the input in between is applied again')
          return committed
        }
        return await this.stateAhead(partition, seen, committed, signal)
      }
      // Nothing was ever written to this changelog partition (a new application, or one `ebb
      // reset` started over): no transaction can be landing, the state is empty by design.
      if (seen === null && (await abortable(this.admin().endOffsets(changelogTopic(c)), signal)).get(partition) === 0n) {
        log.info({ partition, committedAt: String(committed) }, 'empty changelog (a new or reset application): starting at the group\'s offset on an empty state')
        return null
      }
      if (seen === null && attempt >= CONSISTENT_RESTORE_ATTEMPTS) {
        log.warn({ partition, committedAt: String(committed) }, 'the state (written by an older version) does not record its input offset; resuming at the group\'s offset')
        return null
      }
      if (seen !== null && Date.now() >= deadline) {
        if (await this.hanging.abortHung(changelogTopic(c), partition, signal)) continue
        // For the next stall's diagnosis: where the restore stopped against the changelog's last
        // stable offset (equal: nothing more is readable yet, hidden or never written).
        const [pos] = await store.getMany([META_CHANGELOG])
        const end = (await abortable(this.admin().endOffsets(changelogTopic(c)), signal)).get(partition) ?? 0n
        log.warn({ partition, restoredTo: pos === undefined ? null : String(pos.readBigUInt64BE(0)), changelogLastStable: String(end), stateAt: String(seen), committedAt: String(committed) }, 'restore behind the group\'s offset: the changelog\'s position against its end')
        throw new EbbError(Errors.RESTORE_BEHIND, partition, String(seen), String(committed), Math.round(c.restoreConsistencyTimeoutMs / 1000))
      }
      if (attempt === 1) log.info({ partition, stateAt: String(seen), committedAt: String(committed) }, 'the previous owner\'s last transaction is landing; restoring again once it has')
      await abortable(new Promise((resolve) => setTimeout(resolve, CONSISTENT_RESTORE_WAIT_MS)), signal)
    }
  }

  /**
   * The state has seen more of the input than the group has committed, for good. Exactly-once
   * commits both in one transaction, so the group's offset went missing or moved, not the state:
   *
   * - No offset at all, and the input reaches the state's offset: the broker dropped the group's
   *   offsets (`offsets.retention.minutes`, 7 days by default, counts from when the group's last
   *   member left: an application stopped for a week loses them) or someone deleted them. The
   *   state says where it stopped, so it resumes there, not at `autoOffsetReset` (from the start,
   *   that would apply every event a second time; from the end, skip what came meanwhile). What
   *   retention deleted meanwhile is gone: then from the input's start.
   * - No offset, and the input ends before the state's offset: the topic was deleted and created
   *   again (Ebb creates it with `createIfAbsent`), or truncated; the state belongs to input that no
   *   longer exists. Or an offset before the state's: moved back without the state
   *   (`kafka-consumer-groups --reset-offsets`), which would apply events twice. Neither is waited
   *   out: the process ends with what to do (`ebb reset`, which moves offsets and state together).
   */
  private async stateAhead (partition: number, seen: bigint, committed: bigint | null, signal?: AbortSignal): Promise<bigint> {
    const input = this.config.topics.input
    const end = (await abortable(this.admin().highWatermarks(input), signal)).get(partition)
    // (no answer for the partition is not an end of 0: retried, the open is tried again)
    if (end === undefined) throw new Error(`the brokers gave no end offset for ${input} partition ${partition}`)
    if (committed === null && seen <= end) {
      const start = (await abortable(this.admin().startOffsets(input), signal)).get(partition) ?? 0n
      const resumeAt = seen < start ? start : seen
      log.warn({ partition, stateAt: String(seen), resumeAt: String(resumeAt), inputStart: String(start) }, 'the group has no committed offset for this partition (expired after the broker\'s offsets.retention.minutes while no instance ran, or deleted): resuming where the state stopped')
      return resumeAt
    }
    throw new EbbError(Errors.STATE_AHEAD, partition, String(seen), committed === null
      ? `the group has no committed offset and ${input} ends at offset ${end}: the topic was deleted and created again, or truncated`
      : `the group has committed ${committed}, before it: the group's offsets were moved back without the state (kafka-consumer-groups --reset-offsets), which would apply those events twice`)
  }

  /** Replays the changelog partition from the store's position to its end (read committed). */
  private async restorePartition (partition: number, store: RocksStore, signal?: AbortSignal): Promise<void> {
    const topic = changelogTopic(this.config)
    const [meta] = await store.getMany([META_CHANGELOG])
    const from = meta === undefined ? 0n : meta.readBigUInt64BE(0)
    const end = (await abortable(this.admin().endOffsets(topic), signal)).get(partition)
    if (end === undefined) throw new Error(`the brokers gave no end offset for ${topic} partition ${partition}`) // (retried: the open is tried again)
    // The store's position past the changelog's end: the changelog was replaced under it. Judged
    // against the high watermark, not the read_committed end (a commit's marker may not be written
    // yet, another producer's open transaction or a hanging one holds the stable offset back),
    // with one offset for our own marker still to come (a commit records the offset after it).
    if (from > end) {
      const high = (await abortable(this.admin().highWatermarks(topic), signal)).get(partition)
      if (high !== undefined && from > high + 1n) throw new EbbError(Errors.CHANGELOG_LOST, partition, topic, String(from), String(high))
    }
    if (from >= end) { this.progress.set(partition, { restored: this.progress.get(partition)?.restored ?? 0, remaining: 0 }); return }
    const t0 = Date.now()
    const progress = { restored: 0, remaining: Number(end - from) }
    this.progress.set(partition, progress)
    log.info({ partition, from: String(from), end: String(end) }, 'restoring state from the changelog')
    // The last record to expect: with exactly-once the last offset is the commit marker. An
    // at-least-once changelog may end with a record of an older version (outside transactions):
    // it reads through the last offset, which a marker there is too (a read passes over markers).
    const last = end - (this.config.processingGuarantee === 'exactly_once' ? 2n : 1n)
    let firstAt = 0
    /** state tombstones (ERASEs) restored: the store is rewritten after, so no file keeps the erased */
    let erased = 0
    await this.client.readPartition(topic, partition, from, last, async (records) => {
      if (records.length === 0) return
      if (firstAt === 0) firstAt = Date.now()
      const b = store.batch()
      for (const m of records) {
        if (m.key === null) continue
        if (m.value === null) {
          b.del(m.key)
          if (m.key[0] === STATE_PREFIX) erased++
        } else b.put(m.key, m.value)
        progress.restored++
      }
      const next = BigInt(records[records.length - 1].offset) + 1n
      await b.write()
      progress.remaining = Number(end > next ? end - next : 0n)
    }, signal)
    const pos = Buffer.alloc(8)
    pos.writeBigUInt64BE(end)
    const b = store.batch()
    b.put(META_CHANGELOG, pos)
    await b.write()
    if (erased > 0) await store.purgeDeleted?.()
    progress.remaining = 0
    const secs = (Date.now() - t0) / 1000
    const firstRecordSec = firstAt === 0 ? secs : (firstAt - t0) / 1000
    log.info({ partition, records: progress.restored, seconds: secs, firstRecordSeconds: firstRecordSec, perSecond: Math.round(progress.restored / Math.max(secs, 1e-3)) }, 'state restored')
  }
}
