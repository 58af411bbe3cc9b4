import type { KvStore } from '../state/kv-store.js'
import { timerKey, timerKeyDue, timerKeyUser, timerRange } from '../state/keys.js'

/**
 * Per-user event-time timers, Flink-style: persisted in the store under 't' ‖ due ‖ userId, so
 * byte order is due-time order, and fired in that order when the watermark passes them. A user
 * has at most one timer; its due time is also kept in the user's state, so re-arming deletes the
 * old key and writes the new one.
 *
 * Memory does not grow with the number of pending timers: in memory are only the timer writes
 * since the last flush (`pending`, bounded by the commit interval) and two numbers. Firing
 * streams the store's index in chunks, merged with the pending writes.
 */
export type TimerHandler = (userId: string, due: number) => void
/** Called with the users of each chunk of store timers about to fire, so their state can be loaded in one read. */
export type TimerPrefetch = (userIds: string[]) => void

interface HeapEntry { key: Buffer, due: number, userId: string }

const CHUNK = 1024

export class TimerService {
  /** timer key (latin1) → true: written since the last flush; false: deleted since the last flush */
  private pending = new Map<string, boolean>()
  /** lower bound of the smallest due among pending writes */
  private pendingMin = Number.POSITIVE_INFINITY
  /** lower bound of the smallest due in the store (may be a timer deleted in `pending`) */
  private storeMin = Number.POSITIVE_INFINITY
  /** every timer with due ≤ firedUntil has fired */
  private firedUntil: number
  private firingUntil = Number.NEGATIVE_INFINITY
  private heap: HeapEntry[] = []
  fired = 0

  constructor (private readonly store: KvStore, firedUntil: number) {
    this.firedUntil = Math.max(0, firedUntil)
    this.storeMin = this.firstStoreDueAfter(this.firedUntil)
  }

  /** Earliest time the watermark must reach for fire() to have anything to do. */
  get nextDue (): number {
    const m = this.pendingMin < this.storeMin ? this.pendingMin : this.storeMin
    return m > this.firedUntil ? m : this.firedUntil + 1
  }

  /** Arms, replaces (oldDue ≠ 0) or cancels (newDue = 0) a user's timer. */
  set (userId: string, oldDue: number, newDue: number): void {
    if (oldDue === newDue) return
    if (oldDue !== 0) this.pending.set(timerKey(oldDue, userId).toString('latin1'), false)
    if (newDue === 0) return
    const key = timerKey(newDue, userId)
    this.pending.set(key.toString('latin1'), true)
    if (newDue < this.pendingMin) this.pendingMin = newDue
    // Re-armed while firing, and already due: it fires in this same pass, in order.
    if (newDue <= this.firingUntil) heapPush(this.heap, { key, due: newDue, userId })
  }

  /**
   * Fires every timer with due ≤ watermark, in (due, userId) order, calling `onTimer` for each.
   * A handler may re-arm timers, which fire in the same pass when already due. Returns the count.
   */
  fire (watermark: number, onTimer: TimerHandler, prefetch: TimerPrefetch): number {
    if (watermark < this.nextDue) return 0
    const heap = this.heap
    this.firingUntil = watermark
    for (const [k, live] of this.pending) {
      if (!live) continue
      const key = Buffer.from(k, 'latin1')
      const due = timerKeyDue(key)
      if (due <= watermark) heapPush(heap, { key, due, userId: timerKeyUser(key) })
    }
    const [lo, hi] = timerRange(watermark)
    const cursor = this.store.scanSync(lo, hi)
    let chunk: Buffer[] = []
    let ci = 0
    let count = 0
    try {
      for (;;) {
        if (ci === chunk.length) {
          chunk = cursor.nextKeys(CHUNK)
          ci = 0
          if (chunk.length > 0) prefetch(chunk.map(timerKeyUser))
        }
        // Store keys that were deleted or rewritten since the last flush are superseded by `pending`.
        while (ci < chunk.length && this.pending.has(chunk[ci].toString('latin1'))) ci++
        if (ci === chunk.length && chunk.length > 0) continue
        const fromStore = ci < chunk.length ? chunk[ci] : undefined
        const top = heap.length > 0 ? heap[0] : undefined
        if (fromStore === undefined && top === undefined) break
        let key: Buffer
        if (top !== undefined && (fromStore === undefined || Buffer.compare(top.key, fromStore) <= 0)) {
          heapPop(heap)
          key = top.key
          const k = key.toString('latin1')
          if (this.pending.get(k) !== true) continue // cancelled or replaced after it was queued
          this.pending.set(k, false)
        } else {
          key = fromStore as Buffer
          ci++
          this.pending.set(key.toString('latin1'), false)
        }
        onTimer(timerKeyUser(key), timerKeyDue(key))
        count++
      }
    } finally {
      cursor.close()
      this.firingUntil = Number.NEGATIVE_INFINITY
      heap.length = 0
    }
    this.firedUntil = watermark
    this.fired += count
    this.recomputeMins(watermark)
    return count
  }

  private recomputeMins (after: number): void {
    let m = Number.POSITIVE_INFINITY
    for (const [k, live] of this.pending) {
      if (!live) continue
      const due = timerKeyDue(Buffer.from(k, 'latin1'))
      if (due < m) m = due
    }
    this.pendingMin = m
    this.storeMin = this.firstStoreDueAfter(after)
  }

  private firstStoreDueAfter (after: number): number {
    const [, hi] = timerRange(after)
    const cursor = this.store.scanSync(hi, Buffer.from([0x74, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))
    try {
      const [k] = cursor.nextKeys(1)
      return k === undefined ? Number.POSITIVE_INFINITY : timerKeyDue(k)
    } finally {
      cursor.close()
    }
  }

  /** Moves the pending writes into a flush, to be written atomically with the state. */
  drain (puts: Array<readonly [Buffer, Buffer]>, dels: Buffer[]): void {
    const empty = Buffer.alloc(0)
    for (const [k, live] of this.pending) {
      const key = Buffer.from(k, 'latin1')
      if (live) puts.push([key, empty])
      else dels.push(key)
    }
    if (this.pendingMin < this.storeMin) this.storeMin = this.pendingMin
    this.pending = new Map()
    this.pendingMin = Number.POSITIVE_INFINITY
  }

  get pendingWrites (): number { return this.pending.size }
  get firedUpTo (): number { return this.firedUntil }
}

function heapPush (h: HeapEntry[], e: HeapEntry): void {
  h.push(e)
  let i = h.length - 1
  while (i > 0) {
    const p = (i - 1) >> 1
    if (Buffer.compare(h[p].key, e.key) <= 0) break
    h[i] = h[p]
    i = p
  }
  h[i] = e
}

function heapPop (h: HeapEntry[]): void {
  const last = h.pop() as HeapEntry
  if (h.length === 0) return
  let i = 0
  const n = h.length
  for (;;) {
    const l = 2 * i + 1
    if (l >= n) break
    const r = l + 1
    const c = r < n && Buffer.compare(h[r].key, h[l].key) < 0 ? r : l
    if (Buffer.compare(h[c].key, last.key) >= 0) break
    h[i] = h[c]
    i = c
  }
  h[i] = last
}
