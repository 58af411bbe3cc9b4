import { describe, expect, it } from 'vitest'
import { TopologyTestDriver } from '../../src/runtime/test-driver.js'
import { MemoryStore } from '../../src/state/memory-store.js'
import type { StoreBatch } from '../../src/state/kv-store.js'
import { taskIdOf } from '../../src/intervention/intervention-stage.js'
import { hex32 } from '../../src/state/hash.js'
import { at, defaultTopology } from '../helpers.js'

/**
 * Regression tests for invariants a review (and a fuzzer) broke. Each names what went wrong.
 */

const SH = 'Asia/Shanghai'
const line = (o: Record<string, unknown>): string => JSON.stringify({ eventId: `e-${Math.random()}`, tz: SH, ...o })

/** A store whose first `failures` batch writes fail, as a full disk would. */
class FlakyStore extends MemoryStore {
  constructor (private failures: number) { super() }
  override batch (): StoreBatch {
    const inner = super.batch()
    return {
      put: (k, v) => { inner.put(k, v) },
      del: (k) => { inner.del(k) },
      discard: () => { inner.discard() },
      write: async () => {
        if (this.failures > 0) { this.failures--; inner.discard(); throw new Error('disk full') }
        await inner.write()
      }
    }
  }
}

describe('regressions', () => {
  it('a PURCHASE amount too large for exact cents is a dead letter, and large valid totals stay readable', async () => {
    const store = new MemoryStore()
    const d = await TopologyTestDriver.create(defaultTopology(), store)
    await d.pipeRaw(line({ userId: 'u1', type: 'PURCHASE', ts: at('2026-03-02T10:00'), amount: 1e14 }))
    expect(d.deadLetters.map((x) => [x.reason, x.detail])).toEqual([['invalid', expect.stringContaining('amount: above')]])
    for (let i = 0; i < 5; i++) await d.pipe({ userId: 'u1', type: 'PURCHASE', ts: at('2026-03-02T10:00') + i, tz: SH, amount: 1e9 })
    await d.commit()
    const reopened = await TopologyTestDriver.create(defaultTopology(), store)
    expect(reopened.signals('u1', at('2026-03-02T12:00')).rfmMonetary90d).toBe(5e9)
  })

  it('an ERASE older than the watermark still erases the user (right to be forgotten)', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipe({ userId: 'u1', type: 'LOGIN', ts: at('2026-03-02T10:00'), tz: SH })
    await d.pipe({ userId: 'u2', type: 'LOGIN', ts: at('2026-03-09T10:00'), tz: SH }) // watermark a week on
    await d.pipe({ userId: 'u1', type: 'ERASE', ts: at('2026-03-02T11:00'), tz: SH }) // late by days
    expect(d.deadLetters).toEqual([])
    expect(d.user('u1')).toBeUndefined()
    expect(d.task.stats.usersErased).toBe(1)
  })

  it('a late PURCHASE on an older day does not make a later prune drop newer purchases', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipe(
      { userId: 'u1', type: 'PURCHASE', ts: at('2026-01-05T10:00'), tz: SH, amount: 5 },
      { userId: 'u1', type: 'PURCHASE', ts: at('2026-01-11T01:00'), tz: SH, amount: 20 },
      { userId: 'u1', type: 'PURCHASE', ts: at('2026-01-10T22:00'), tz: SH, amount: 10 } // late, within grace
    )
    expect(d.deadLetters).toEqual([])
    expect(d.user('u1')?.purchases.filter((_, i) => i % 2 === 0)).toEqual([...(d.user('u1')?.purchases.filter((_, i) => i % 2 === 0) ?? [])].sort((a, b) => a - b))
    // 90 days after 10 January: the 5 January and 10 January purchases left the window, 11 January's has not.
    await d.pipe({ userId: 'u1', type: 'VIEW', ts: at('2026-04-10T12:00'), tz: SH })
    expect(d.signals('u1', at('2026-04-10T12:00')).rfmMonetary90d).toBe(20)
  })

  it('ids with a lone surrogate are rejected: as UTF-8 keys they would collide', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipeRaw(
      '{"eventId":"a","userId":"x\\ud800","type":"LOGIN","ts":1772416800000}',
      '{"eventId":"b","userId":"x\\udc00","type":"LOGIN","ts":1772416800000}'
    )
    expect(d.deadLetters.map((x) => x.detail)).toEqual([expect.stringContaining('lone surrogate'), expect.stringContaining('lone surrogate')])
    expect(d.task.stats.usersCreated).toBe(0)
  })

  it('a targetId or taskId with a lone surrogate is refused too (UTF-8 would change it on its way to the store and to Kafka)', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipeRaw(
      '{"eventId":"a","userId":"u1","type":"FOLLOW","targetId":"c\\ud800","ts":1772416800000}',
      '{"eventId":"b","userId":"u1","type":"MESSAGE_OPENED","channel":"PUSH","taskId":"t\\udc00","ts":1772416800000}'
    )
    expect(d.deadLetters.map((x) => x.detail)).toEqual([expect.stringMatching(/targetId: not well-formed Unicode/), expect.stringMatching(/taskId: not well-formed Unicode/)])
  })

  it('a byte order mark before a line\'s JSON (Windows tools write one at the start of a file) is ignored, as JSON\'s RFC allows', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipeRaw('\uFEFF{"eventId":"a","userId":"u1","type":"LOGIN","ts":1772416800000}', '{"eventId":"b","userId":"u1","type":"LOGIN","ts":1772416860000}')
    expect(d.deadLetters).toEqual([])
    // one mark, not a run of them (each would have been one more recursion)
    await d.pipeRaw(`${'\uFEFF'.repeat(100_000)}{"eventId":"c","userId":"u1","type":"LOGIN","ts":1772416920000}`)
    expect(d.deadLetters.map((x) => x.reason)).toEqual(['undecodable'])
    expect(d.task.stats.usersCreated).toBe(1)
  })

  it('a commit that failed to write loses nothing when retried', async () => {
    const store = new FlakyStore(1)
    const d = await TopologyTestDriver.create(defaultTopology(), store)
    await d.pipe({ userId: 'u1', type: 'LOGIN', ts: at('2026-03-02T10:00'), tz: SH })
    d.settle() // the partition's first event, confirmed as the next one would
    await expect(d.commit()).rejects.toMatchObject({ code: 'EBB_STORE_IO' })
    await d.commit()
    // A fresh task on the store sees the state and the timer that the failed commit held.
    const reopened = await TopologyTestDriver.create(defaultTopology(), store)
    expect(reopened.user('u1')?.lastLoginTs).toBe(at('2026-03-02T10:00'))
    reopened.advanceTo(at('2026-03-10T00:00'))
    expect(reopened.alertsOf('inactive_7d').map((a) => a.firedAt)).toEqual([at('2026-03-10T00:00')])
  })

  it('impossible calendar instants are invalid, not rolled over', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipeRaw(
      line({ userId: 'u1', type: 'LOGIN', ts: '2026-02-30T10:00:00Z' }),
      line({ userId: 'u1', type: 'LOGIN', ts: '2026-03-01T24:00:00Z' }),
      line({ userId: 'u1', type: 'LOGIN', ts: '2026-03-01T10:60:00+08:00' }),
      line({ userId: 'u1', type: 'LOGIN', ts: '2024-02-29T10:00:00+08:00' }) // a leap day is real
    )
    d.settle()
    expect(d.deadLetters.map((x) => x.detail)).toEqual([
      expect.stringContaining('not a real calendar date'),
      expect.stringContaining('not a real calendar date'),
      expect.stringContaining('not a real calendar date')
    ])
    expect(d.user('u1')?.lastLoginTs).toBe(Date.parse('2024-02-29T10:00:00+08:00'))
  })

  it('task ids stay what they were: the one-pass taskIdOf equals the hash of the joined key it replaced', () => {
    // The reference: the definition before the one-pass rewrite. Ids are dedup keys downstream,
    // so an upgrade must not change the id of a task already sent.
    const hash32 = (text: string, seed: number): number => {
      let h = (0x811c9dc5 ^ seed) >>> 0
      for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
      h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b); h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35); h ^= h >>> 16
      return h >>> 0
    }
    const reference = (u: string, ts: number, plan: string, step: number): string => {
      const key = `${u}\u0000${ts}\u0000${plan}\u0000${step}`
      return 't' + hash32(key, 0x5bd1e995).toString(16).padStart(8, '0') + hash32(key, 0x27d4eb2f).toString(16).padStart(8, '0')
    }
    const users = ['u1', 'user-0000042', '', 'Ünïcødé-用户-😀', 'x'.repeat(300)]
    let checked = 0
    for (const u of users) {
      for (const ts of [0, 1_772_409_600_000, 1_772_409_600_123]) {
        for (const [plan, step] of [['gentle-nudge', 0], ['winback', 3], ['', 12]] as const) {
          expect(taskIdOf(u, ts, plan, step)).toBe(reference(u, ts, plan, step))
          checked++
        }
      }
    }
    expect(checked).toBe(45)
    expect(taskIdOf('u1', 1, 'p', 0)).toMatch(/^t[0-9a-f]{16}$/)
  })

  it('hex32 (the table-driven hex of task ids) writes what toString(16).padStart(8) wrote, for every byte at every position', () => {
    const values = [0, 1, 0xf, 0x10, 0xff, 0x100, 0x7fffffff, 0x80000000, 0xffffffff, 0xdeadbeef]
    for (let b = 0; b < 256; b++) for (let pos = 0; pos < 4; pos++) values.push((b * 2 ** (8 * pos)) >>> 0)
    for (let i = 0; i < 1000; i++) values.push(Math.imul(i + 1, 0x9e3779b1) >>> 0)
    for (const v of values) expect(hex32(v)).toBe(v.toString(16).padStart(8, '0'))
  })
})
