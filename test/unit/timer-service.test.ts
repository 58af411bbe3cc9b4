import { afterEach, describe, expect, it } from 'vitest'
import { compareUtf8, type TimerOwner, TimerService } from '../../src/runtime/timer-service.js'
import type { KvStore } from '../../src/state/kv-store.js'
import { MemoryStore } from '../../src/state/memory-store.js'
import { RocksStore } from '../../src/state/rocks-store.js'
import { tempDir } from '../helpers.js'

type Fired = Array<[string, number]>

/** The owner of the timers, as the partition task is: it holds each user's current due. */
class Owner implements TimerOwner {
  readonly dues = new Map<string, number>()
  fired: Fired = []
  rearm: ((userId: string, due: number) => void) | undefined
  constructor (readonly t: () => TimerService) {}
  arm (userId: string, due: number): void { this.dues.set(userId, due); this.t().set(userId, due) }
  cancel (userId: string): void { this.dues.set(userId, 0) }
  currentDue (userId: string): number { return this.dues.get(userId) ?? 0 }
  onTimer (userId: string, due: number): void {
    this.dues.set(userId, 0)
    this.fired.push([userId, due])
    this.rearm?.(userId, due)
  }

  prefetch (): void {}
  fire (until: number): Fired {
    this.fired = []
    this.t().fire(until, this)
    return this.fired
  }
}

async function flush (t: TimerService, store: KvStore): Promise<void> {
  const batch = store.batch()
  t.drain(batch)
  await batch.write()
  t.committed()
}

/** The timers drained into a batch that is on its way (a commit in flight), not yet written. */
function drainInFlight (t: TimerService, store: KvStore): ReturnType<KvStore['batch']> {
  const batch = store.batch()
  t.drain(batch)
  t.drainedUnwritten()
  return batch
}

describe('TimerService', () => {
  const cleanups: Array<() => void> = []
  afterEach(() => { for (const c of cleanups.splice(0)) c() })

  it('fires in (due, userId) order, only up to the watermark, each once', async () => {
    const store = new MemoryStore()
    const t = new TimerService(store, 0, 0)
    const o = new Owner(() => t)
    o.arm('b', 2000)
    o.arm('a', 3000)
    o.arm('c', 1000)
    await flush(t, store) // some in the store…
    o.arm('a2', 2000) // …and some still in memory: the order is the same
    expect(o.fire(2500)).toEqual([['c', 1000], ['a2', 2000], ['b', 2000]])
    expect(o.fire(2500)).toEqual([])
    expect(o.fire(5000)).toEqual([['a', 3000]])
  })

  it('re-arming replaces the old timer and cancelling removes it, in memory and in the store', async () => {
    const store = new MemoryStore()
    const t = new TimerService(store, 0, 0)
    const o = new Owner(() => t)
    o.arm('u', 1000)
    await flush(t, store)
    o.arm('u', 5000) // replace a stored timer
    o.arm('v', 2000)
    o.arm('v', 6000) // replace a timer never flushed
    o.arm('w', 1500)
    o.cancel('w')
    expect(o.fire(4000)).toEqual([]) // the old entries are stale: none fires
    await flush(t, store)
    expect(store.size).toBe(2) // one bucket at 5000, one at 6000: fired buckets are deleted
    expect(o.fire(10_000)).toEqual([['u', 5000], ['v', 6000]])
    await flush(t, store)
    expect(store.size).toBe(0)
  })

  it('fires timers re-armed by a handler within the same pass when already due', () => {
    const store = new MemoryStore()
    const t = new TimerService(store, 0, 0)
    const o = new Owner(() => t)
    o.arm('d', 1000)
    o.rearm = (u, due) => { o.arm(u, due + 1000) } // a daily timer when the watermark jumped days
    expect(o.fire(3500)).toEqual([['d', 1000], ['d', 2000], ['d', 3000]])
    expect(o.currentDue('d')).toBe(4000)
  })

  it('fires 100k timers in order, from the store and from memory', async () => {
    const store = new MemoryStore()
    const t = new TimerService(store, 0, 0)
    const o = new Owner(() => t)
    const n = 100_000
    // Pseudo-random dues with many ties, half flushed, half pending.
    let x = 12345
    const expected: Array<[string, number]> = []
    for (let i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) & 0x7fffffff
      const due = 1_000_000 + (x % 5000) * 1000
      const user = `user-${i}`
      o.arm(user, due)
      expected.push([user, due])
      if (i === n / 2) await flush(t, store)
    }
    expected.sort((a, b) => a[1] - b[1] || compareUtf8(a[0], b[0]))
    const fired = o.fire(Number.MAX_SAFE_INTEGER - 1)
    expect(fired.length).toBe(n)
    expect(fired).toEqual(expected)
  })

  it('persists across a close and reopen of RocksDB, and keeps memory flat while timers wait there', async () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    let store = await RocksStore.open(dir)
    let t = new TimerService(store, 0, 0)
    const o = new Owner(() => t)
    for (let i = 0; i < 1000; i++) o.arm(`u${i}`, 10_000 + (i % 10) * 1000)
    expect(t.pendingTimers).toBe(1000)
    await flush(t, store)
    expect(t.pendingTimers).toBe(0) // nothing about the 1000 timers stays in memory
    let seq = t.seq
    await store.close()
    store = await RocksStore.open(dir)
    t = new TimerService(store, 0, seq)
    expect(t.nextDue).toBe(10_000)
    const fired = o.fire(12_500)
    expect(fired.length).toBe(300)
    expect(fired[0]).toEqual(['u0', 10_000])
    expect(fired.every(([, due], i) => i === 0 || due >= fired[i - 1][1])).toBe(true)
    o.arm('late', 20_000)
    await flush(t, store)
    seq = t.seq
    await store.close()
    store = await RocksStore.open(dir)
    t = new TimerService(store, 12_500, seq)
    const rest = o.fire(100_000)
    expect(rest.length).toBe(701) // the 300 fired ones were deleted, none fires twice
    expect(rest[rest.length - 1]).toEqual(['late', 20_000])
    await store.close()
  })

  it('orders user ids like their UTF-8 bytes, in memory and in stored buckets', async () => {
    const ids = ['b', 'a', '\uffff', '\ud83d\ude00', 'ab', 'é']
    const byBytes = [...ids].sort((p, q) => Buffer.compare(Buffer.from(p), Buffer.from(q)))
    expect([...ids].sort(compareUtf8)).toEqual(byBytes)
    const store = new MemoryStore()
    const t = new TimerService(store, 0, 0)
    const o = new Owner(() => t)
    for (const id of ids) o.arm(id, 1000)
    await flush(t, store)
    expect(o.fire(2000).map(([u]) => u)).toEqual(byBytes)
  })

  it('keeps firing while a drained batch is on its way (Kafka mode\'s pipelined commit): once each, and nothing left behind once it lands', async () => {
    const store = new MemoryStore()
    const t = new TimerService(store, 0, 0)
    const o = new Owner(() => t)
    o.arm('a', 1000)
    o.arm('b', 3000)
    const batch = drainInFlight(t, store) // not in the store, not pending either
    o.arm('c', 2000) // armed meanwhile: the next batch's
    expect(o.fire(2500)).toEqual([['a', 1000], ['c', 2000]])
    expect(t.nextDue).toBe(3000) // b, still in flight, is not forgotten
    await batch.write()
    // landed but not yet completed in memory: the store and the in-flight list both hold b, fired once
    expect(o.fire(3000)).toEqual([['b', 3000]])
    t.inflightWritten()
    expect(o.fire(10_000)).toEqual([])
    // the next commit deletes the buckets that fired while in flight: none is left in the store
    await flush(t, store)
    const c = store.scanSync(Buffer.from([0x74]), Buffer.from([0x75]))
    expect(c.next(100)).toEqual([])
    c.close()
  })

  it('a timer drained into a batch still in flight, due later, fires after the batch landed', async () => {
    const store = new MemoryStore()
    const t = new TimerService(store, 0, 0)
    const o = new Owner(() => t)
    o.arm('early', 500)
    o.arm('late', 5000)
    const batch = drainInFlight(t, store)
    expect(o.fire(1000)).toEqual([['early', 500]]) // a full pass, whose scan finds no store bucket for 'late' yet
    await batch.write()
    t.inflightWritten()
    expect(t.nextDue).toBe(5000)
    expect(o.fire(6000)).toEqual([['late', 5000]])
  })
})
