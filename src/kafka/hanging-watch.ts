import { log } from '../log.js'
import type { AdminPort, OpenTransaction } from './client.js'
import { abortable } from './waits.js'

/**
 * Finds and aborts *hanging* transactions on the partitions Ebb writes with transactions: open on
 * a partition while no coordinator owns them (KIP-664), so no marker will ever end them, and the
 * partition's last stable offset stays at their first record for good — a restore of the
 * changelog stops there, and a read_committed consumer of an output (the dispatch service) reads
 * nothing past it. Kafka leaves them to an operator (`kafka-transactions.sh find-hanging`, then
 * `abort`); this does the same two steps through the admin port (hanging-transactions.ts), for:
 * - the changelog reader, on a partition whose restore stays behind the group's offset;
 * - the runner's output watch, on an output partition whose last stable offset has not moved
 *   while records wait behind it.
 * A transaction is aborted only once it has been seen hanging — the same producer, epoch and start
 * offset, owned by no coordinator — for `timeoutMs` (hangingTransactionTimeout): a transaction
 * that ends meanwhile is not touched, nor one whose coordinator's marker is on its way. One that
 * a coordinator owns never is: the coordinator ends it, at the latest at its timeout (10 s).
 */
export class HangingTransactionWatch {
  /** transactions aborted, by topic (/metrics) */
  readonly aborted = new Map<string, number>()
  /** per "topic/partition", the hanging transactions seen ("producerId/epoch@startOffset"): since when, and when last */
  private readonly seen = new Map<string, Map<string, { since: number, last: number }>>()

  /** the longest time between two looks at a partition that still counts as watching it all along */
  readonly maxGapMs: number

  constructor (private readonly admin: () => AdminPort, readonly timeoutMs: number, private readonly now: () => number = Date.now) {
    // The looks come every few seconds (a stuck restore retries its consistency check every
    // restoreConsistencyTimeout + 5 s; the output watch every half timeout, at most 30 s).
    this.maxGapMs = Math.max(60_000, timeoutMs)
  }

  /**
   * Looks at the transactions open on the partition; aborts the ones seen hanging for the
   * timeout. True when one was aborted. Never throws: what fails is logged (with the command an
   * operator can run instead), and the caller's own wait goes on.
   */
  async abortHung (topic: string, partition: number, signal?: AbortSignal): Promise<boolean> {
    if (this.timeoutMs <= 0) return false
    let open: OpenTransaction[]
    try {
      open = await abortable(this.admin().openTransactions(topic, partition), signal)
    } catch (err) {
      log.warn({ topic, partition, err: (err as Error).message }, 'could not list the transactions open on a partition')
      return false
    }
    const where = `${topic}/${partition}`
    const now = this.now()
    const before = this.seen.get(where) ?? new Map<string, { since: number, last: number }>()
    const still = new Map<string, { since: number, last: number }>()
    let aborted = false
    for (const t of open) {
      if (t.coordinatorHasIt) continue
      const key = `${t.producerId}/${t.producerEpoch}@${t.startOffset}`
      // Hanging all along means seen at every look: a look missed for longer than maxGapMs (the
      // partition moved away, the coordinators were out) starts the clock again.
      const seen = before.get(key)
      const since = seen === undefined || now - seen.last > this.maxGapMs ? now : seen.since
      still.set(key, { since, last: now })
      const fields = { topic, partition, producerId: String(t.producerId), producerEpoch: t.producerEpoch, startOffset: String(t.startOffset), transactionalId: t.transactionalId, hangingSeconds: Math.round((now - since) / 1000) }
      if (now - since < this.timeoutMs) {
        if (since === now) log.warn(fields, `a hanging transaction (open, and no coordinator owns it) hides what follows it; aborted if it still hangs in ${Math.round(this.timeoutMs / 1000)} s`)
        continue
      }
      try {
        await abortable(this.admin().abortTransaction(topic, partition, t), signal)
        this.aborted.set(topic, (this.aborted.get(topic) ?? 0) + 1)
        still.delete(key)
        aborted = true
        log.warn(fields, 'aborted a hanging transaction (as kafka-transactions.sh abort would)')
      } catch (err) {
        log.error({ ...fields, err: (err as Error).message }, `aborting a hanging transaction failed; an operator can: kafka-transactions.sh --bootstrap-server … abort --topic ${topic} --partition ${partition} --start-offset ${t.startOffset}`)
      }
    }
    if (still.size > 0) this.seen.set(where, still)
    else this.seen.delete(where)
    // Asked because something is stuck, and nothing here is hanging: say what is open, so that a
    // stall with no hanging transaction to blame can be told apart (coordinator-owned ones, or
    // none at all: then the records are missing, not hidden).
    if (still.size === 0 && !aborted) log.warn({ topic, partition, open: open.map((t) => ({ producerId: String(t.producerId), producerEpoch: t.producerEpoch, startOffset: String(t.startOffset), transactionalId: t.transactionalId, coordinatorHasIt: t.coordinatorHasIt })) }, `no hanging transaction on the partition (${open.length} open, each owned by a coordinator)`)
    return aborted
  }
}

/**
 * The runner's watch on its output topics (exactly-once only: at-least-once writes its outputs
 * outside transactions): at each call, the partitions whose last stable offset is behind their high
 * watermark and has not moved since the previous call are handed to `abortHung`. A healthy
 * partition's stable offset moves with every commit, so it is never looked at twice.
 */
export class OutputWatch {
  /** per "topic/partition": the last stable offset when it was behind the high watermark */
  private behind = new Map<string, bigint>()
  private running = false

  constructor (private readonly admin: () => AdminPort, private readonly hanging: HangingTransactionWatch, private readonly topics: readonly string[]) {}

  async check (signal?: AbortSignal): Promise<void> {
    if (this.running) return
    this.running = true
    try {
      const next = new Map<string, bigint>()
      for (const topic of this.topics) {
        const [stable, high] = await Promise.all([abortable(this.admin().endOffsets(topic), signal), abortable(this.admin().highWatermarks(topic), signal)])
        for (const [partition, lso] of stable) {
          if (lso >= (high.get(partition) ?? 0n)) continue
          const where = `${topic}/${partition}`
          if (this.behind.get(where) === lso) await this.hanging.abortHung(topic, partition, signal)
          next.set(where, lso)
        }
      }
      this.behind = next
    } catch (err) {
      if (signal?.aborted !== true) log.warn({ err: (err as Error).message }, 'the output watch could not read the outputs\' offsets')
    } finally {
      this.running = false
    }
  }
}
