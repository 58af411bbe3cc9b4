import { describe, expect, it } from 'vitest'
import { StateCache } from '../../src/state/state-cache.js'
import { MemoryStore } from '../../src/state/memory-store.js'
import { UserState } from '../../src/state/user-state.js'
import { zoneClock } from '../../src/time/zones.js'

/**
 * The write-back cache while a drained batch is on its way to the store (Kafka mode's pipelined
 * commit: the partition goes on processing while its transaction is in flight). The store must
 * never be read for a state it does not hold yet: not for a user drained and then evicted, not
 * for a user erased.
 */
const utc = zoneClock('UTC')
function user (id: string, logins: number): UserState {
  const s = new UserState(id, utc)
  s.lastLoginDay = logins
  return s
}

describe('StateCache between a flush and its write', () => {
  it('evicts nothing drained before the batch is written, and only clean users after', async () => {
    const store = new MemoryStore()
    const cache = new StateCache(store, 1) // room for one user
    cache.put(user('a', 1))
    cache.put(user('b', 2))
    const batch = store.batch()
    cache.drainDirty(batch)
    cache.flushing()
    // b changes again while the batch is in flight: it belongs to the next one
    const b = cache.get('b') as UserState
    b.lastLoginDay = 3
    cache.markDirty(b)
    expect(cache.size).toBe(2) // over capacity, but the store holds neither yet
    expect(cache.getOrLoadSync('a')?.lastLoginDay).toBe(1)
    await batch.write()
    cache.written()
    expect([...cache.values()].map((s) => s.userId)).toEqual(['b']) // a evicted (clean, written), b kept (dirty)
    expect(cache.getOrLoadSync('a')?.lastLoginDay).toBe(1) // read back from the store
    expect(cache.get('b')?.lastLoginDay).toBe(3)
  })

  it('an erased user stays gone while the batch that deletes it is in flight, and after', async () => {
    const store = new MemoryStore()
    const cache = new StateCache(store, 10)
    cache.put(user('gone', 5))
    const first = store.batch()
    cache.drainDirty(first)
    await first.write()
    cache.afterFlush() // 'gone' is in the store
    const gone = async (): Promise<void> => {
      expect(cache.getOrLoadSync('gone')).toBeUndefined()
      expect(cache.peekSync('gone')).toBeUndefined()
      await cache.loadMissing(['gone'])
      expect(cache.get('gone')).toBeUndefined()
    }
    cache.put(user('other', 1))
    const n = store.batch()
    cache.drainDirty(n)
    cache.flushing() // commit n in flight
    cache.erase('gone') // erased meanwhile: commit n+1 deletes it
    await n.write()
    cache.written() // n landed
    await gone()
    const n1 = store.batch()
    cache.drainDirty(n1)
    cache.flushing() // commit n+1, with the delete, in flight: the store still holds the state
    await gone()
    await n1.write()
    cache.written()
    await gone()
  })
})
