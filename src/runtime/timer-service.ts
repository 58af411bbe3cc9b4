import type { KvStore, StoreBatch } from '../state/kv-store.js'
import { timerKey, timerKeyDue, timerKeyUser, timerKeyView, timerRange } from '../state/keys.js'

/**
 * Per-user event-time timers, Flink-style: persisted in the store under 't' ‖ due ‖ userId, so
 * byte order is due-time order, and fired in (due, userId) order when the watermark passes them.
 * A user has at most one timer; its due time is also kept in the user's state, so re-arming
 * replaces the old key.
 *
 * Memory does not grow with the number of pending timers: in memory are only the timer changes
 * since the last flush (`pending`, one entry per user touched, bounded by the commit interval)
 * and a few numbers. Firing streams the store's index in chunks, merged with those changes.
 */
export type TimerHandler = (userId: string, due: number) => void
/** Called with the users of each chunk of stored timers about to fire, so their state loads in one read. */
export type TimerPrefetch = (userIds: string[]) => void

/** A user's timer change since the last flush: `flushed` is the due in the store (0: none), `due` the current one (0: none). */
interface PendingTimer { flushed: number, due: number }
/** `wide`: the userId has code units ≥ U+D800, where UTF-16 and UTF-8 orders can differ */
interface Due { due: number, userId: string, wide: boolean }

const WIDE = /[\uD800-\uFFFF]/

const CHUNK = 1024
const EMPTY = Buffer.alloc(0)

export class TimerService {
  private pending = new Map<string, PendingTimer>()
  /** lower bound of the smallest due among pending changes */
  private pendingMin = Number.POSITIVE_INFINITY
  /** lower bound of the smallest due in the store (may be a timer superseded in `pending`) */
  private storeMin = Number.POSITIVE_INFINITY
  /** every timer with due ≤ firedUntil has fired */
  private firedUntil: number
  /**
   * No live timer in the store is due before this. Scans start here, not at the start of the
   * index, so they do not walk over the tombstones of the timers already fired (RocksDB keeps
   * them until compaction: starting at the front made every pass slower than the last).
   */
  private scanFrom = 0
  private firingUntil = Number.NEGATIVE_INFINITY
  private readonly heap: Due[] = []
  fired = 0

  constructor (private readonly store: KvStore, firedUntil: number) {
    this.firedUntil = Math.max(0, firedUntil)
    // From the start of the index, not after firedUntil: a timer armed in the past (by a late
    // event) is still due, exactly as it would be had the task not restarted.
    this.storeMin = this.firstStoreDue(0)
    this.scanFrom = Number.isFinite(this.storeMin) ? this.storeMin : this.firedUntil + 1
  }

  /** Earliest time the watermark must reach for fire() to have anything to do. */
  get nextDue (): number {
    const m = this.pendingMin < this.storeMin ? this.pendingMin : this.storeMin
    return m > this.firedUntil ? m : this.firedUntil + 1
  }

  /** Arms (oldDue 0), replaces, or cancels (newDue 0) a user's timer. `oldDue` is the due the user's state holds. */
  set (userId: string, oldDue: number, newDue: number): void {
    if (oldDue === newDue) return
    const p = this.pending.get(userId)
    if (p === undefined) this.pending.set(userId, { flushed: oldDue, due: newDue })
    else p.due = newDue
    if (newDue === 0) return
    if (newDue < this.pendingMin) this.pendingMin = newDue
    // Re-armed while firing and already due: it fires in this same pass, in order.
    if (newDue <= this.firingUntil) heapPush(this.heap, { due: newDue, userId, wide: WIDE.test(userId) })
  }

  /**
   * Fires every timer with due ≤ watermark in (due, userId) order, calling `onTimer` for each.
   * A handler may re-arm timers; those already due fire in the same pass. Returns the count.
   */
  fire (watermark: number, onTimer: TimerHandler, prefetch: TimerPrefetch): number {
    if (watermark < this.nextDue) return 0
    const heap = this.heap
    const pending = this.pending
    this.firingUntil = watermark
    for (const [userId, p] of pending) if (p.due !== 0 && p.due <= watermark) heapPush(heap, { due: p.due, userId, wide: WIDE.test(userId) })
    const [, hi] = timerRange(watermark)
    const cursor = this.store.scanSync(timerKey(this.scanFrom, ''), hi)
    let dues: number[] = []
    let users: string[] = []
    let ci = 0
    let count = 0
    try {
      for (;;) {
        if (ci === dues.length) {
          const keys = cursor.nextKeys(CHUNK)
          dues = keys.map(timerKeyDue)
          users = keys.map(timerKeyUser)
          ci = 0
          if (keys.length > 0) prefetch(users)
        }
        // A stored timer of a user with a change since the last flush is superseded by `pending`.
        while (ci < dues.length && pending.has(users[ci])) ci++
        if (ci === dues.length && dues.length > 0) continue
        const storeDue = ci < dues.length ? dues[ci] : -1
        const top = heap.length > 0 ? heap[0] : undefined
        if (storeDue < 0 && top === undefined) break
        let due: number
        let userId: string
        if (top !== undefined && (storeDue < 0 || top.due < storeDue || (top.due === storeDue && compareUtf8(top.userId, users[ci]) <= 0))) {
          heapPop(heap)
          const p = pending.get(top.userId)
          if (p === undefined || p.due !== top.due) continue // replaced or cancelled after it was queued
          p.due = 0
          due = top.due
          userId = top.userId
        } else {
          due = storeDue
          userId = users[ci++]
          pending.set(userId, { flushed: due, due: 0 })
        }
        onTimer(userId, due)
        count++
      }
    } finally {
      cursor.close()
      this.firingUntil = Number.NEGATIVE_INFINITY
      heap.length = 0
    }
    this.firedUntil = watermark
    this.scanFrom = watermark + 1
    this.fired += count
    let m = Number.POSITIVE_INFINITY
    for (const p of pending.values()) if (p.due !== 0 && p.due < m) m = p.due
    this.pendingMin = m
    this.storeMin = this.firstStoreDue(watermark + 1)
    return count
  }

  private firstStoreDue (from: number): number {
    const cursor = this.store.scanSync(timerKey(from, ''), Buffer.from([0x74, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))
    try {
      const [k] = cursor.nextKeys(1)
      return k === undefined ? Number.POSITIVE_INFINITY : timerKeyDue(k)
    } finally {
      cursor.close()
    }
  }

  /** Moves the pending changes into the commit's batch, to be written atomically with the state. */
  drain (batch: StoreBatch): void {
    for (const [userId, p] of this.pending) {
      if (p.flushed === p.due) continue
      if (p.flushed !== 0) batch.del(timerKeyView(p.flushed, userId))
      if (p.due !== 0) {
        batch.put(timerKeyView(p.due, userId), EMPTY)
        if (p.due < this.scanFrom) this.scanFrom = p.due // armed in the past by a late event
      }
    }
    if (this.pendingMin < this.storeMin) this.storeMin = this.pendingMin
    this.pending = new Map()
    this.pendingMin = Number.POSITIVE_INFINITY
  }

  get pendingChanges (): number { return this.pending.size }
  get firedUpTo (): number { return this.firedUntil }
}

/**
 * Orders strings as their UTF-8 bytes order (the store's key order), so timers from the store
 * and from memory interleave the same way whatever the commit points were. UTF-16 code units
 * order like UTF-8 bytes except that surrogates (U+D800–DFFF) must sort above U+E000–FFFF.
 */
export function compareUtf8 (a: string, b: string): number {
  const n = a.length < b.length ? a.length : b.length
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i)
    let y = b.charCodeAt(i)
    if (x === y) continue
    if (x >= 0xd800) x = x <= 0xdfff ? x + 0x2000 : x - 0x800
    if (y >= 0xd800) y = y <= 0xdfff ? y + 0x2000 : y - 0x800
    return x - y
  }
  return a.length - b.length
}

function less (a: Due, b: Due): boolean {
  if (a.due !== b.due) return a.due < b.due
  // Native comparison is UTF-16 order, which equals UTF-8 byte order unless a wide char is involved.
  return a.wide || b.wide ? compareUtf8(a.userId, b.userId) < 0 : a.userId < b.userId
}

function heapPush (h: Due[], e: Due): void {
  h.push(e)
  let i = h.length - 1
  while (i > 0) {
    const p = (i - 1) >> 1
    if (!less(e, h[p])) break
    h[i] = h[p]
    i = p
  }
  h[i] = e
}

function heapPop (h: Due[]): void {
  const last = h.pop() as Due
  const n = h.length
  if (n === 0) return
  let i = 0
  for (;;) {
    const l = 2 * i + 1
    if (l >= n) break
    const r = l + 1
    const c = r < n && less(h[r], h[l]) ? r : l
    if (!less(h[c], last)) break
    h[i] = h[c]
    i = c
  }
  h[i] = last
}
