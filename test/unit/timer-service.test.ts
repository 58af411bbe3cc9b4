import { afterEach, describe, expect, it } from 'vitest'
import { compareUtf8, TimerService } from '../../src/runtime/timer-service.js'
import type { KvStore } from '../../src/state/kv-store.js'
import { MemoryStore } from '../../src/state/memory-store.js'
import { RocksStore } from '../../src/state/rocks-store.js'
import { tempDir } from '../helpers.js'

type Fired = Array<[string, number]>
const noPrefetch = (): void => {}

async function flush (t: TimerService, store: KvStore): Promise<void> {
  const batch = store.batch()
  t.drain(batch)
  await batch.write()
}

function fireAll (t: TimerService, until: number): Fired {
  const fired: Fired = []
  t.fire(until, (u, due) => { fired.push([u, due]) }, noPrefetch)
  return fired
}

describe('TimerService', () => {
  const cleanups: Array<() => void> = []
  afterEach(() => { for (const c of cleanups.splice(0)) c() })

  it('fires in (due, userId) order, only up to the watermark, each once', async () => {
    const store = new MemoryStore()
    const t = new TimerService(store, 0)
    t.set('b', 0, 2000)
    t.set('a', 0, 3000)
    t.set('c', 0, 1000)
    await flush(t, store) // some in the store…
    t.set('a2', 0, 2000) // …and some still in memory: the order is the same
    expect(fireAll(t, 2500)).toEqual([['c', 1000], ['a2', 2000], ['b', 2000]])
    expect(fireAll(t, 2500)).toEqual([])
    expect(fireAll(t, 5000)).toEqual([['a', 3000]])
  })

  it('re-arming replaces the old timer, in memory and in the store', async () => {
    const store = new MemoryStore()
    const t = new TimerService(store, 0)
    t.set('u', 0, 1000)
    await flush(t, store)
    t.set('u', 1000, 5000) // replace a stored timer
    t.set('v', 0, 2000)
    t.set('v', 2000, 6000) // replace a timer never flushed
    t.set('w', 0, 1500)
    t.set('w', 1500, 0) // cancel
    expect(fireAll(t, 4000)).toEqual([])
    await flush(t, store)
    expect(store.size).toBe(2) // only u@5000 and v@6000 remain
    expect(fireAll(t, 10_000)).toEqual([['u', 5000], ['v', 6000]])
    await flush(t, store)
    expect(store.size).toBe(0)
  })

  it('fires timers re-armed by a handler within the same pass when already due', () => {
    const store = new MemoryStore()
    const t = new TimerService(store, 0)
    t.set('d', 0, 1000)
    const fired: Fired = []
    t.fire(3500, (u, due) => {
      fired.push([u, due])
      t.set(u, 0, due + 1000) // a daily timer when the watermark jumped several days
    }, noPrefetch)
    expect(fired).toEqual([['d', 1000], ['d', 2000], ['d', 3000]])
  })

  it('fires 100k timers in order, from the store and from memory', async () => {
    const store = new MemoryStore()
    const t = new TimerService(store, 0)
    const n = 100_000
    // Pseudo-random dues with many ties, half flushed, half pending.
    let x = 12345
    const expected: Array<[string, number]> = []
    for (let i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) & 0x7fffffff
      const due = 1_000_000 + (x % 5000) * 1000
      const user = `user-${i}`
      t.set(user, 0, due)
      expected.push([user, due])
      if (i === n / 2) await flush(t, store)
    }
    expected.sort((a, b) => a[1] - b[1] || compareUtf8(a[0], b[0]))
    const fired = fireAll(t, Number.MAX_SAFE_INTEGER - 1)
    expect(fired.length).toBe(n)
    expect(fired).toEqual(expected)
  })

  it('persists across a close and reopen of RocksDB, and keeps memory flat while timers wait there', async () => {
    const { dir, cleanup } = tempDir()
    cleanups.push(cleanup)
    let store = await RocksStore.open(dir)
    let t = new TimerService(store, 0)
    for (let i = 0; i < 1000; i++) t.set(`u${i}`, 0, 10_000 + (i % 10) * 1000)
    await flush(t, store)
    expect(t.pendingChanges).toBe(0) // nothing about the 1000 timers stays in memory
    await store.close()
    store = await RocksStore.open(dir)
    t = new TimerService(store, 0)
    expect(t.nextDue).toBe(10_000)
    const fired = fireAll(t, 12_500)
    expect(fired.length).toBe(300)
    expect(fired[0]).toEqual(['u0', 10_000])
    expect(fired.every(([, due], i) => i === 0 || due >= fired[i - 1][1])).toBe(true)
    await flush(t, store)
    await store.close()
    store = await RocksStore.open(dir)
    t = new TimerService(store, 12_500)
    const rest = fireAll(t, 100_000)
    expect(rest.length).toBe(700) // the 300 fired ones were deleted, none fires twice
    await store.close()
  })

  it('orders user ids like their UTF-8 bytes', () => {
    const ids = ['b', 'a', '\uffff', '\ud83d\ude00', 'ab', '']
    const byBytes = [...ids].sort((p, q) => Buffer.compare(Buffer.from(p), Buffer.from(q)))
    expect([...ids].sort(compareUtf8)).toEqual(byBytes)
  })
})
