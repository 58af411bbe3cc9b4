import type { KvStore, StoreBatch } from '../state/kv-store.js'
import { timerBucketKey, timerKeyDue } from '../state/keys.js'

/**
 * Per-user event-time timers, persisted in the store and fired in (due, userId) order when the
 * watermark passes them. A user has at most one timer; the due time that counts is the one its
 * owner reports (the user's state), so re-arming and cancelling write nothing for the old due.
 *
 * Store layout: `'t' ‖ due (8 B, BE) ‖ seq (4 B, BE)` → a bucket: the user ids armed for `due`
 * between two commits, sorted in UTF-8 byte order, at most BUCKET per key. Byte order of the keys
 * is due order. An entry whose user was re-armed or cancelled since stays in its bucket and is
 * skipped when the due fires (its owner reports another due): lazy deletion. A bucket is deleted
 * as a whole once its due has fired. Compared with one key per user — a delete and a put for
 * every re-arm, i.e. every active user every midnight — a commit writes about one key per
 * thousand timers.
 *
 * Memory does not grow with the number of pending timers: in memory are the user ids armed
 * since the last commit (bounded by the commit interval) and a few numbers. Firing reads the
 * buckets of one due at a time.
 */
export interface TimerOwner {
  /** the due time the user's timer has now (0: none); entries for any other due are stale */
  currentDue (userId: string): number
  /** a timer fires; the owner may re-arm it with set() */
  onTimer (userId: string, due: number): void
  /** the users of a group about to fire, so their state can load in one read */
  prefetch (userIds: string[]): void
}

const BUCKET = 1024
const PREFETCH = 1024
const WIDE = /[\uD800-\uFFFF]/

export class TimerService {
  /** due → user ids armed for it since the last commit (may repeat, may be stale) */
  private pending = new Map<number, string[]>()
  private pendingMin = Number.POSITIVE_INFINITY
  /**
   * The pending lists of a drained batch that is not in the store yet (Kafka mode: its
   * transaction is in flight while the partition goes on), and the keys they are written under:
   * fire() reads them as it reads the store, until inflightWritten().
   */
  private inflight = new Map<number, string[]>()
  private inflightKeys = new Map<number, Buffer[]>()
  private inflightMin = Number.POSITIVE_INFINITY
  /** the keys the last drain() wrote, per due */
  private drainedKeys = new Map<number, Buffer[]>()
  /** lower bound of the smallest due in the store */
  private storeMin = Number.POSITIVE_INFINITY
  /** every timer with due ≤ firedUntil has fired */
  private firedUntil: number
  /**
   * No live bucket in the store is due before this: scans start here, not at the start of the
   * index, so they do not walk over the tombstones of buckets already fired.
   */
  private scanFrom = 0
  /** buckets whose due has fired, deleted at the next commit */
  private firedBuckets: Buffer[] = []
  /** timers re-armed while firing that are already due: they fire in the same pass */
  private firingUntil = Number.NEGATIVE_INFINITY
  private rearmed = new Map<number, string[]>()
  /** next bucket sequence number; persisted with the task's metadata */
  seq: number
  fired = 0
  /** users erased since the last commit (and not armed again since): drain removes their ids */
  private forgotten = new Set<string>()

  /** `seq`: the next bucket number, as persisted by the last commit (keys must never repeat). */
  constructor (private readonly store: KvStore, firedUntil: number, seq: number) {
    this.firedUntil = Math.max(0, firedUntil)
    this.seq = seq
    // From the start of the index: a timer armed in the past (by a late event) is still due.
    this.storeMin = this.firstStoreDue(0)
    this.scanFrom = Number.isFinite(this.storeMin) ? this.storeMin : this.firedUntil + 1
  }

  /** Earliest time the watermark must reach for fire() to have anything to do. */
  get nextDue (): number {
    const m = Math.min(this.pendingMin, this.storeMin, this.inflightMin)
    return m > this.firedUntil ? m : this.firedUntil + 1
  }

  /** Arms a user's timer for `due` (the owner records it as the user's current due). */
  set (userId: string, due: number): void {
    if (due === 0) return // cancelling is the owner's: its current due becomes 0
    if (this.forgotten.size > 0) this.forgotten.delete(userId) // a new user of the same id
    const into = due <= this.firingUntil ? this.rearmed : this.pending
    const list = into.get(due)
    if (list === undefined) into.set(due, [userId])
    else list.push(userId)
    if (into === this.pending && due < this.pendingMin) this.pendingMin = due
  }

  /**
   * Fires every live timer with due ≤ watermark, in (due, userId) order. Handlers may re-arm;
   * timers re-armed at a due already passed fire in the same pass. Returns the count.
   */
  fire (watermark: number, owner: TimerOwner): number {
    if (watermark < this.nextDue) return 0
    this.firingUntil = watermark
    const cursor = this.store.scanSync(timerBucketKey(this.scanFrom, 0), timerBucketKey(watermark, 0xffffffff))
    let entries: Array<[Buffer, Buffer]> = []
    let ei = 0
    /** the due of the next stored bucket, fetching the next chunk of the scan when needed */
    const nextStoreDue = (): number => {
      if (ei === entries.length) { entries = cursor.next(64); ei = 0 }
      return ei < entries.length ? timerKeyDue(entries[ei][0]) : Number.POSITIVE_INFINITY
    }
    let count = 0
    try {
      for (;;) {
        const due = Math.min(nextStoreDue(), minKey(this.pending, watermark), minKey(this.inflight, watermark), minKey(this.rearmed, watermark))
        if (!Number.isFinite(due)) break
        // Everyone due at `due`: the stored buckets, the commit's pending list, the re-armed.
        const users: string[] = []
        while (nextStoreDue() === due) {
          const [key, value] = entries[ei++]
          decodeBucket(value, users)
          this.firedBuckets.push(key)
        }
        takeList(this.pending, due, users)
        if (this.inflight.has(due)) {
          // not in the store yet: its buckets are deleted by the next commit, after they land
          takeList(this.inflight, due, users)
          for (const key of this.inflightKeys.get(due) ?? []) this.firedBuckets.push(key)
          this.inflightKeys.delete(due)
        }
        takeList(this.rearmed, due, users)
        sortUnique(users)
        for (let i = 0; i < users.length; i += PREFETCH) {
          const group = users.slice(i, i + PREFETCH)
          owner.prefetch(group)
          for (const userId of group) {
            if (owner.currentDue(userId) !== due) continue // re-armed elsewhere or cancelled since
            owner.onTimer(userId, due)
            count++
          }
        }
      }
    } finally {
      cursor.close()
      this.firingUntil = Number.NEGATIVE_INFINITY
      this.rearmed.clear()
    }
    this.firedUntil = watermark
    this.scanFrom = watermark + 1
    this.fired += count
    this.pendingMin = minKey(this.pending, Number.POSITIVE_INFINITY)
    this.inflightMin = minKey(this.inflight, Number.POSITIVE_INFINITY)
    this.storeMin = this.firstStoreDue(watermark + 1)
    return count
  }

  private firstStoreDue (from: number): number {
    const cursor = this.store.scanSync(timerBucketKey(from, 0), timerBucketKey(Number.MAX_SAFE_INTEGER, 0xffffffff))
    try {
      const [first] = cursor.next(1)
      return first === undefined ? Number.POSITIVE_INFINITY : timerKeyDue(first[0])
    } finally {
      cursor.close()
    }
  }

  /**
   * An ERASE: the user's id leaves the timers at the next commit, from the pending lists and from
   * every stored bucket not yet fired (lazy deletion would keep it until the bucket fires).
   */
  forget (userId: string): void { this.forgotten.add(userId) }

  /** Writes the commit's timers as buckets and deletes the fired ones, in the commit's batch. */
  drain (batch: StoreBatch): void {
    for (const key of this.firedBuckets) batch.del(key)
    if (this.forgotten.size > 0) this.purgeForgotten(batch)
    this.drainedKeys = new Map()
    for (const [due, list] of this.pending) {
      // Unsorted: fire() sorts and dedups what it gathers for a due (from here, the store, the
      // commit in flight), so sorting here too cost a commit's synchronous start ~10 ms on 20k
      // armed users without changing what fires, or in what order.
      const keys: Buffer[] = []
      for (let i = 0; i < list.length; i += BUCKET) {
        const key = timerBucketKey(due, this.seq++)
        keys.push(key)
        batch.put(key, encodeBucket(list, i, Math.min(i + BUCKET, list.length)))
      }
      this.drainedKeys.set(due, keys)
      if (due < this.scanFrom) this.scanFrom = due // armed in the past by a late event
    }
    if (this.pendingMin < this.storeMin) this.storeMin = this.pendingMin
  }

  /**
   * After the commit's batch was written: the pending ids are stored, the fired buckets gone.
   * Until then both are kept, so a failed write can be retried without losing a timer (the
   * retry writes the buckets under new sequence numbers; the discarded batch wrote nothing).
   */
  committed (): void {
    this.drainedUnwritten()
    this.inflightWritten()
  }

  /**
   * The drained batch is on its way but not in the store yet, and timers go on meanwhile: what it
   * holds moves to the in-flight lists (fire() reads them), new arms start a new pending list.
   */
  drainedUnwritten (): void {
    this.forgotten.clear()
    this.firedBuckets = []
    this.inflight = this.pending
    this.inflightKeys = this.drainedKeys
    this.inflightMin = this.pendingMin
    this.drainedKeys = new Map()
    this.pending = new Map()
    this.pendingMin = Number.POSITIVE_INFINITY
  }

  /** The drained batch is in the store: its buckets are read from there now. */
  inflightWritten (): void {
    if (this.inflightMin < this.storeMin) this.storeMin = this.inflightMin
    this.inflight = new Map()
    this.inflightKeys = new Map()
    this.inflightMin = Number.POSITIVE_INFINITY
  }

  /**
   * Rewrites every unfired bucket that holds an erased id (O(live timers): ERASEs are rare, and
   * the commit that applies them rewrites the store anyway), and filters the pending lists.
   */
  private purgeForgotten (batch: StoreBatch): void {
    const gone = this.forgotten
    for (const [due, list] of this.pending) {
      const kept = list.filter((u) => !gone.has(u))
      if (kept.length === 0) this.pending.delete(due)
      else this.pending.set(due, kept)
    }
    const cursor = this.store.scanSync(timerBucketKey(this.firedUntil + 1, 0), timerBucketKey(Number.MAX_SAFE_INTEGER, 0xffffffff))
    try {
      for (let rows = cursor.next(256); rows.length > 0; rows = cursor.next(256)) {
        for (const [key, value] of rows) {
          const ids: string[] = []
          decodeBucket(value, ids)
          const kept = ids.filter((u) => !gone.has(u))
          if (kept.length === ids.length) continue
          if (kept.length === 0) batch.del(key)
          else batch.put(key, encodeBucket(kept, 0, kept.length))
        }
      }
    } finally {
      cursor.close()
    }
  }

  /** Timers armed since the last commit (their user ids are held until it). */
  get pendingTimers (): number {
    let n = 0
    for (const l of this.pending.values()) n += l.length
    return n
  }
}

function minKey (m: Map<number, string[]>, atMost: number): number {
  let best = Number.POSITIVE_INFINITY
  for (const k of m.keys()) if (k <= atMost && k < best) best = k
  return best
}

function takeList (m: Map<number, string[]>, due: number, into: string[]): void {
  const l = m.get(due)
  if (l === undefined) return
  for (const u of l) into.push(u)
  m.delete(due)
}

/** Sorts user ids in UTF-8 byte order (the store's order) and drops repeats, in place. */
function sortUnique (ids: string[]): void {
  let wide = false
  for (const id of ids) if (WIDE.test(id)) { wide = true; break }
  // Native order is UTF-16 order, which equals UTF-8 byte order unless a wide char is involved.
  if (wide) ids.sort(compareUtf8)
  else ids.sort()
  let w = 0
  for (let i = 0; i < ids.length; i++) if (i === 0 || ids[i] !== ids[w - 1]) ids[w++] = ids[i]
  ids.length = w
}

/** A bucket: for each user id, its UTF-8 length as one or two bytes (< 32768), then the bytes. */
function encodeBucket (ids: string[], from: number, to: number): Buffer {
  let n = 0
  for (let i = from; i < to; i++) { const len = Buffer.byteLength(ids[i]); n += len + (len < 128 ? 1 : 2) }
  const b = Buffer.allocUnsafe(n)
  let o = 0
  for (let i = from; i < to; i++) {
    const len = Buffer.byteLength(ids[i])
    if (len < 128) b[o++] = len
    else { b[o++] = 0x80 | (len >>> 8); b[o++] = len & 0xff }
    o += b.write(ids[i], o)
  }
  return b
}

function decodeBucket (b: Buffer, into: string[]): void {
  let o = 0
  while (o < b.length) {
    let len = b[o++]
    if (len >= 128) len = ((len & 0x7f) << 8) | b[o++]
    into.push(b.toString('utf8', o, o + len))
    o += len
  }
}

/**
 * Orders strings as their UTF-8 bytes order (the store's key order), so timers interleave the
 * same way whatever the commit points were. UTF-16 code units order like UTF-8 bytes except that
 * surrogates (U+D800–DFFF) must sort above U+E000–FFFF.
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
