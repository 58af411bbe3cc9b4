import { EbbError, Errors } from '../errors.js'
import type { KvStore, StoreBatch } from './kv-store.js'
import { stateKey, stateKeyView } from './keys.js'
import { decodeState, encodeStateView } from './state-codec.js'
import type { UserState } from './user-state.js'

/**
 * The write-back cache in front of the store (Kafka Streams' caching layer). The hot path reads
 * and writes UserState objects here, synchronously; the store is touched only by
 *   - loadMissing: one batched async multi-get for a batch's misses, before its loop,
 *   - getOrLoadSync: the timer path's synchronous fallback,
 *   - flush: one atomic write of every dirty state, at commit points.
 * It is bounded: after a flush it evicts least-recently-used users down to `capacity`.
 * Eviction never happens inside a batch, so a state object stays valid for the whole batch.
 */
export class StateCache {
  private readonly map = new Map<string, UserState>()
  /** users known not to be in the store (loaded and absent), valid until the next flush */
  private readonly absent = new Set<string>()
  /** users erased since the last flush: their stored state is deleted at the flush */
  private readonly erased = new Set<string>()
  /** states changed since the last flush, so a flush costs O(dirty), not O(cache) */
  private dirtyList: UserState[] = []
  private epoch = 1
  hits = 0
  misses = 0

  constructor (private readonly store: KvStore, readonly capacity: number) {}

  get size (): number { return this.map.size }

  /** states changed since the last flush */
  get dirtyCount (): number { return this.dirtyList.length }

  /** A cached state, bumped to most-recently-used at most once per epoch (one Map re-insert per user between two flushes). */
  get (userId: string): UserState | undefined {
    const s = this.map.get(userId)
    if (s !== undefined) {
      if (s.touched !== this.epoch) {
        this.map.delete(userId)
        this.map.set(userId, s)
        s.touched = this.epoch
      }
      this.hits++
    }
    return s
  }

  isKnownAbsent (userId: string): boolean { return this.absent.has(userId) }

  /** Loads every listed user that is neither cached nor known absent, in one multi-get. */
  async loadMissing (userIds: Iterable<string>): Promise<void> {
    const want = this.missingOf(userIds)
    if (want.length === 0) return
    let values: Array<Buffer | undefined>
    try {
      values = await this.store.getMany(want.map(stateKey))
    } catch (err) {
      throw new EbbError(Errors.STORE_IO, (err as Error).message)
    }
    this.admit(want, values)
  }

  /** Synchronous variant for users the timer path needs; see kv-store.ts. */
  loadMissingSync (userIds: Iterable<string>): void {
    const want = this.missingOf(userIds)
    if (want.length === 0) return
    this.admit(want, this.store.getManySync(want.map(stateKey)))
  }

  getOrLoadSync (userId: string): UserState | undefined {
    const s = this.get(userId)
    if (s !== undefined || this.absent.has(userId)) return s
    this.loadMissingSync([userId])
    return this.get(userId)
  }

  /**
   * A user's state for a reader outside the record's path (the HTTP API): the cached object, or
   * a copy decoded from the store that is not admitted to the cache, so a query neither evicts
   * nor counts as a miss, and cannot race the batch that is loading its misses.
   */
  peekSync (userId: string): UserState | undefined {
    const s = this.map.get(userId)
    if (s !== undefined || this.absent.has(userId) || this.erased.has(userId)) return s
    const [v] = this.store.getManySync([stateKey(userId)])
    return v === undefined ? undefined : decodeState(userId, v)
  }

  private missingOf (userIds: Iterable<string>): string[] {
    const want: string[] = []
    const seen = new Set<string>()
    for (const id of userIds) {
      if (this.map.has(id) || this.absent.has(id) || this.erased.has(id) || seen.has(id)) continue
      seen.add(id)
      want.push(id)
    }
    return want
  }

  private admit (ids: string[], values: Array<Buffer | undefined>): void {
    for (let i = 0; i < ids.length; i++) {
      const v = values[i]
      this.misses++
      if (v === undefined) { this.absent.add(ids[i]); continue }
      const s = decodeState(ids[i], v)
      s.touched = this.epoch
      this.map.set(ids[i], s)
    }
  }

  /** Adds a new user's state (dirty). */
  put (s: UserState): void {
    this.markDirty(s)
    s.touched = this.epoch
    this.absent.delete(s.userId)
    this.erased.delete(s.userId)
    this.map.set(s.userId, s)
  }

  /**
   * Called before every change to a state (the hot path calls it once per event and per timer,
   * before touching the state): a state a deferred commit still has to encode is encoded first.
   */
  markDirty (s: UserState): void {
    if (s.snapshotPending) this.encodeDeferredOne(s)
    if (s.dirty) return
    s.dirty = true
    this.dirtyList.push(s)
  }

  /** Forgets a user (ERASE): gone from memory now, from the store at the next flush. */
  erase (userId: string): void {
    const s = this.map.get(userId)
    if (s !== undefined) {
      // A deferred commit prepared before this ERASE still writes the state it saw. (Nothing
      // changes an erased state object afterwards; encoding it now keeps that from mattering.)
      if (s.snapshotPending) this.encodeDeferredOne(s)
      s.erased = true
    }
    this.map.delete(userId)
    this.absent.add(userId)
    this.erased.add(userId)
  }

  /**
   * Adds the store operations for every dirty state and every erased user to the commit's
   * batch, and marks them clean. Keys and values are views into scratch buffers (the batch
   * copies them), so a commit allocates nothing per user.
   */
  drainDirty (batch: StoreBatch): number {
    // The deferred commit's two steps at once: the same operations in the same order.
    const n = this.deferDirty(batch)
    this.encodeDeferred(Number.POSITIVE_INFINITY)
    return n
  }

  /** states of the last deferDirty, in order; those from `deferredAt` on may still be pending */
  private deferred: UserState[] = []
  private deferredAt = 0
  private deferredBatch: StoreBatch | undefined

  /**
   * The erased users' deletes into `batch`, and the dirty states listed for it, taken as they are
   * now but encoded later (encodeDeferred), a chunk at a time in Kafka mode's pipelined commit
   * while the partition goes on processing, all at once in drainDirty. A state changed before
   * its turn is encoded just before the change (markDirty, erase), so the batch ends up byte for
   * byte what encoding everything now would have written (test/unit/deferred-commit.test.ts).
   * Returns how many states wait.
   */
  deferDirty (batch: StoreBatch): number {
    if (this.deferredBatch !== undefined) this.encodeDeferred(Number.POSITIVE_INFINITY) // the previous one is finished first
    for (const id of this.erased) if (!this.map.has(id)) batch.del(stateKeyView(id))
    const list: UserState[] = []
    for (const s of this.dirtyList) {
      // erased after it was changed (a flag, not a lookup: 20k Map lookups on a large cache
      // were ~4 ms of the commit's synchronous start)
      if (s.erased) continue
      s.snapshotPending = true
      list.push(s)
    }
    this.deferred = list
    this.deferredAt = 0
    this.deferredBatch = batch
    return list.length
  }

  /** Encodes up to `max` of the deferred states into their batch; true when none is left. */
  encodeDeferred (max: number): boolean {
    const list = this.deferred
    let n = 0
    while (this.deferredAt < list.length && n < max) {
      const s = list[this.deferredAt++]
      if (!s.snapshotPending) continue // encoded already, before a change
      this.encodeDeferredOne(s)
      n++
    }
    if (this.deferredAt < list.length) return false
    this.deferred = []
    this.deferredAt = 0
    this.deferredBatch = undefined
    return true
  }

  private encodeDeferredOne (s: UserState): void {
    ;(this.deferredBatch as StoreBatch).put(stateKeyView(s.userId), encodeStateView(s))
    s.snapshotPending = false // after the put: a put that threw leaves the state pending, not lost from the commit
  }

  /** After a successful flush: evict least-recently-used users down to capacity; start a new epoch. */
  afterFlush (): void {
    // Only now is the work durable: a failed write keeps the dirty list and erased ids for the retry.
    this.flushing()
    this.written()
  }

  /**
   * The states drained into a batch that is not written yet (Kafka mode: its transaction is in
   * flight while the partition goes on): changes from now on mark them dirty again, for the next
   * batch. Until written(), nothing is evicted (the store does not hold their state yet) and the
   * erased stay known absent (the store still holds them).
   */
  flushing (): void {
    for (const s of this.dirtyList) s.dirty = false
    this.dirtyList = []
    for (const id of this.erased) this.absent.add(id)
    this.erased.clear()
  }

  /** The batch drained at the last flushing() is in the store: evict down to capacity, start a new epoch. */
  written (): void {
    this.absent.clear()
    this.epoch++
    let excess = this.map.size - this.capacity
    if (excess <= 0) return
    for (const [id, s] of this.map) {
      if (excess <= 0) break
      if (s.dirty) continue
      this.map.delete(id)
      excess--
    }
  }

  /** Every cached user (for tests and the API; not the hot path). */
  values (): IterableIterator<UserState> { return this.map.values() }
}
