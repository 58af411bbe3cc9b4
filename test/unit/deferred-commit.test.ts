import { describe, expect, it } from 'vitest'
import { encodeJsonEvent } from '../../src/events/jsonl.js'
import type { UserEvent } from '../../src/events/user-event.js'
import { MemorySink } from '../../src/io/sinks.js'
import { ChangelogBatch } from '../../src/kafka/wire.js'
import { LineBatch } from '../../src/runtime/record-batch.js'
import { PartitionTask } from '../../src/runtime/partition-task.js'
import { makePopulation } from '../../src/sim/populations.js'
import { mulberry32 } from '../../src/sim/simulator.js'
import { STATE_PREFIX } from '../../src/state/keys.js'
import { MemoryStore } from '../../src/state/memory-store.js'
import { defaultTopology } from '../helpers.js'

/**
 * A pipelined commit encodes its dirty states a chunk at a time while the partition goes on
 * processing (StateCache.deferDirty): a state changed before its turn is encoded just before
 * the change. The invariant: every commit holds, byte for byte and in the same order, what a
 * commit that encoded every state at once would have held at the same point of the stream (its
 * states in another order: each key once) —
 * whatever the events in between do to those users (more events, duplicates, timers, ERASE).
 */
type Op = [string, string | null]
/**
 * A commit's operations: its states (and the deletes of users erased before it) sorted by key —
 * a deferred commit encodes them in another order, and each key comes once, so the order says
 * nothing to the store or the compacted changelog — then the rest (timers, learner, stream
 * time) in order.
 */
function ops (b: ChangelogBatch): { states: Op[], rest: Op[] } {
  const op = (r: { key: Buffer | string | null, value: Buffer | null }): Op => [(r.key as Buffer).toString('hex'), r.value === null ? null : r.value.toString('hex')]
  const all = b.records.map(op)
  const states = all.filter(([k]) => isStateKey(k)).sort((x, y) => x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)
  expect(new Set(states.map(([k]) => k)).size).toBe(states.length)
  return { states, rest: all.filter(([k]) => !isStateKey(k)) }
}
const isStateKey = (hex: string): boolean => Buffer.from(hex, 'hex')[0] === STATE_PREFIX

/** every key and value of a store, in key order */
function contents (store: MemoryStore): string[] {
  const out: string[] = []
  const cursor = store.scanSync(Buffer.from([0]), Buffer.alloc(64, 0xff))
  for (let page = cursor.next(1000); page.length > 0; page = cursor.next(1000)) for (const [k, v] of page) out.push(`${k.toString('hex')}=${v.toString('hex')}`)
  return out
}

function stream (seed: number): UserEvent[] {
  const pop = makePopulation('mixed', { users: 400, days: 24, seed, churnRate: 0.3 })
  const rng = mulberry32(seed)
  const out: UserEvent[] = []
  for (const day of pop.days()) {
    for (const e of day) {
      out.push(e)
      if (rng() < 0.01) out.push({ ...e }) // a duplicate: dead-lettered, and the user touched
      if (rng() < 0.003) out.push({ ...e, eventId: `${e.eventId}-erase`, type: 'ERASE', targetId: null, durationMs: null, amount: null, channel: null, taskId: null })
    }
  }
  return out
}

async function run (seed: number): Promise<{ commits: number, deferredSeen: number, changedBeforeTurn: number }> {
  const events = stream(seed)
  const topology = defaultTopology()
  const eager = { store: new MemoryStore(), sink: new MemorySink() }
  const deferred = { store: new MemoryStore(), sink: new MemorySink() }
  // A cache smaller than the population: users are evicted once a commit is written, and read
  // back from the store later, so a state missing from a local write would show.
  const a = await PartitionTask.open({ topology, store: eager.store, sink: eager.sink, cacheCapacity: 150 })
  const b = await PartitionTask.open({ topology, store: deferred.store, sink: deferred.sink, cacheCapacity: 150 })
  const rng = mulberry32(seed + 1)
  let inFlight: { a: ChangelogBatch, b: ChangelogBatch, waiting: number, byChunks: number } | undefined
  let commits = 0
  let deferredSeen = 0
  let changedBeforeTurn = 0
  /** encodes up to `max` of B's waiting states, counting them */
  const chunk = (max: number): boolean => {
    const f = inFlight as NonNullable<typeof inFlight>
    const before = f.b.states.records.length
    const done = b.encodeDeferred(max)
    f.byChunks += f.b.states.records.length - before
    return done
  }
  let i = 0
  /** the next batch of the stream, to both tasks */
  const next = async (): Promise<void> => {
    const n = 1 + Math.floor(rng() * 400)
    const lines = events.slice(i, i + n).map(encodeJsonEvent)
    i += n
    await a.process(new LineBatch(lines, 'eager', i))
    await b.process(new LineBatch(lines, 'deferred', i))
  }
  /** lands the commit in flight: B's last states encoded, then both batches compared and written */
  const land = async (): Promise<void> => {
    if (inFlight === undefined) return
    while (!chunk(7));
    // the states not encoded by a chunk were encoded just before a change
    changedBeforeTurn += inFlight.waiting - inFlight.byChunks
    expect(ops(inFlight.b)).toEqual(ops(inFlight.a))
    await inFlight.a.write()
    await inFlight.b.write()
    a.written()
    b.written()
    inFlight = undefined
    expect(contents(deferred.store)).toEqual(contents(eager.store))
  }
  while (i < events.length) {
    await next()
    // B's commit in flight encodes a few states between batches, as the runner's chunks do
    // between the partitions' slices; most of its users wait through several batches.
    if (inFlight !== undefined) chunk(Math.floor(rng() * 20))
    if (rng() < 0.25) {
      await land() // one commit in flight at most, as in the runner
      const ca = new ChangelogBatch(eager.store.batch())
      // (B's states go to local batches of their own, written before the rest, as the runner's pipelined commits do)
      const cb = new ChangelogBatch(deferred.store.batch(), () => deferred.store.batch())
      expect(a.prepareCommit(ca)).toBe(0)
      const waiting = b.prepareCommit(cb, cb.states)
      a.prepared()
      b.prepared()
      deferredSeen += waiting
      inFlight = { a: ca, b: cb, waiting, byChunks: 0 }
      commits++
    }
  }
  await land()
  expect(deferred.sink.alerts).toEqual(eager.sink.alerts)
  expect(deferred.sink.deadLetters.length).toBe(eager.sink.deadLetters.length)
  return { commits, deferredSeen, changedBeforeTurn }
}

describe('a pipelined commit that encodes its states while the partition goes on', () => {
  it('holds exactly what an immediate encoding would have, on streams with duplicates, timers and erasures', async () => {
    for (const seed of [3, 17]) {
      const r = await run(seed)
      expect(r.commits).toBeGreaterThan(20)
      // the case under test happened: many states waited, and many were changed before their turn
      expect(r.deferredSeen).toBeGreaterThan(2000)
      expect(r.changedBeforeTurn).toBeGreaterThan(200)
    }
  }, 60_000)
})
