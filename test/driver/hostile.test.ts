import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { EbbError } from '../../src/errors.js'
import { encodeAvroEvent } from '../../src/events/avro.js'
import type { UserEvent } from '../../src/events/user-event.js'
import { MemorySink } from '../../src/io/sinks.js'
import { RuleSlots } from '../../src/rules/slots.js'
import { MAX_RULES, parseTopology } from '../../src/rules/topology.js'
import { PartitionTask } from '../../src/runtime/partition-task.js'
import { AvroBatch, LineBatch } from '../../src/runtime/record-batch.js'
import { KafkaBatch } from '../../src/kafka/wire.js'
import { TopologyTestDriver } from '../../src/runtime/test-driver.js'
import { MemoryStore } from '../../src/state/memory-store.js'
import { COUNT_DAYS, eventIdHash, OFF_VIEW, type UserState } from '../../src/state/user-state.js'
import { at, defaultTopology } from '../helpers.js'

const SH = 'Asia/Shanghai'

/** VIEW events counted on the user's current local day (the daily ring). */
const viewsToday = (s: UserState | undefined): number => s === undefined ? -1 : s.words[OFF_VIEW + (s.headDay % COUNT_DAYS)]

function event (userId: string, type: UserEvent['type'], local: string, extra: Partial<UserEvent> = {}): UserEvent {
  return { eventId: `${userId}-${type}-${local}`, userId, type, ts: at(local), tz: SH, targetId: null, durationMs: null, amount: null, channel: null, taskId: null, ...extra }
}

/** Avro records as a Kafka source hands them over, with the broker timestamp of each record. */
class TimedAvroBatch extends AvroBatch {
  constructor (values: Buffer[], private readonly times: number[]) { super(values, 'ebb.events', 0, 100n) }
  recordTime (i: number): number { return this.times[i] }
}

/** Every byte the store holds, keys and values, as one latin1 string to search. */
function storeBytes (store: MemoryStore): string {
  const c = store.scanSync(Buffer.alloc(0), Buffer.alloc(64, 0xff))
  let all = ''
  for (let rows = c.next(1000); rows.length > 0; rows = c.next(1000)) for (const [k, v] of rows) all += k.toString('latin1') + '\u0000' + v.toString('latin1') + '\u0000'
  c.close()
  return all
}

describe('bounded event time on Kafka: the record timestamp', () => {
  it('sends an event dated far ahead of its broker timestamp to the dead letters as future, and stream time stays', async () => {
    const sink = new MemorySink()
    const task = await PartitionTask.open({ topology: defaultTopology(), store: new MemoryStore(), sink })
    const now = at('2026-03-02T10:00')
    const good = event('a', 'LOGIN', '2026-03-02T10:00')
    const ahead = event('b', 'LOGIN', '2026-03-02T13:00') // 3 h after its record was written (limit 1 h)
    const within = event('c', 'LOGIN', '2026-03-02T10:40') // 40 min: allowed
    await task.process(new TimedAvroBatch([encodeAvroEvent(good), encodeAvroEvent(ahead), encodeAvroEvent(within)], [now, now, now]))
    expect(sink.deadLetters.map((d) => [d.reason, d.code, d.source.offset])).toEqual([['future', 'EBB_EVENT_FUTURE', '101']])
    expect(task.userState('b')).toBeUndefined()
    expect(task.userState('c')?.lastLoginTs).toBe(within.ts)
    // An event of the present after it is not late: stream time did not move to 13:00.
    await task.process(new TimedAvroBatch([encodeAvroEvent(event('d', 'LOGIN', '2026-03-02T10:05'))], [now + 300_000]))
    expect(sink.deadLetters).toHaveLength(1)
    expect(task.userState('d')).toBeDefined()
  })

  it('takes records without a timestamp on event time alone', async () => {
    const sink = new MemorySink()
    const task = await PartitionTask.open({ topology: defaultTopology(), store: new MemoryStore(), sink })
    await task.process(new TimedAvroBatch([encodeAvroEvent(event('a', 'LOGIN', '2026-03-02T10:00')), encodeAvroEvent(event('b', 'LOGIN', '2026-03-02T10:01'))], [Number.NaN, Number.NaN]))
    expect(sink.deadLetters).toEqual([])
    expect(task.userState('a')).toBeDefined()
  })
})

describe('bounded event time: the first event of a partition', () => {
  it.each([
    ['2099', '2099-01-01T00:00'],
    ['a year ahead', '2027-03-02T09:00'],
    ['three days ahead', '2026-03-05T09:00']
  ])('refuses a first event dated %s as future, and the stream after it loses nothing', async (_, local) => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipe({ userId: 'bad', type: 'LOGIN', ts: at(local), tz: SH })
    expect(d.task.heldEventTime).toBe(at(local)) // waits: nothing to compare it with yet
    const users = ['a', 'b', 'c', 'd']
    await d.pipe(...users.map((u, k) => ({ userId: u, type: 'LOGIN' as const, ts: at(`2026-03-02T09:0${k}`), tz: SH })))
    expect(d.deadLetters.map((x) => [x.reason, x.source.line])).toEqual([['future', 1]])
    expect(d.user('bad')).toBeUndefined()
    d.advanceTo(at('2026-03-10T00:00'))
    expect(d.alertsOf('inactive_7d').map((x) => x.userId).sort()).toEqual(users)
    expect(d.deadLetters).toHaveLength(1)
  })

  it('applies a first event that the second one confirms, before it', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipe({ userId: 'a', type: 'LOGIN', ts: at('2026-03-02T09:00'), tz: SH })
    expect(d.user('a')).toBeUndefined()
    await d.pipe({ userId: 'b', type: 'LOGIN', ts: at('2026-03-02T08:30'), tz: SH }) // 30 min earlier: within the step
    expect(d.deadLetters).toEqual([])
    expect(d.user('a')?.lastLoginTs).toBe(at('2026-03-02T09:00'))
    expect(d.user('b')?.lastLoginTs).toBe(at('2026-03-02T08:30'))
    expect(d.task.heldEventTime).toBeNull()
  })
})

describe('ERASE reaches the timer buckets', () => {
  it('after an ERASE and a commit no stored byte holds the user id, and their timers never fire', async () => {
    const store = new MemoryStore()
    const d = await TopologyTestDriver.create(defaultTopology(), store)
    const victim = 'victim-7f3a9c'
    await d.pipe(
      { userId: victim, type: 'LOGIN', ts: at('2026-03-02T09:00'), tz: SH },
      { userId: 'control-41d2', type: 'LOGIN', ts: at('2026-03-02T09:00'), tz: SH }
    )
    await d.commit()
    expect(storeBytes(store)).toContain(victim) // the state key and the timer bucket both name them
    await d.pipe({ userId: victim, type: 'ERASE', ts: at('2026-03-02T12:00') })
    await d.commit()
    const bytes = storeBytes(store)
    expect(bytes).not.toContain(victim)
    expect(bytes).toContain('control-41d2')
    d.advanceTo(at('2026-03-12T00:00'))
    expect(d.alertsOf('inactive_7d').map((a) => a.userId)).toEqual(['control-41d2'])
    await d.commit()
    expect(storeBytes(store)).not.toContain(victim)
  })

  it('refuses a Kafka record keyed by something else than its userId (its user would split over partitions); one with no key, or keyed by a non-ASCII userId, is read', async () => {
    const sink = new MemorySink()
    const task = await PartitionTask.open({ topology: defaultTopology(), store: new MemoryStore(), sink })
    const rec = (offset: string, key: string | null, u: string, t: string): { offset: string, key: Buffer | null, value: Buffer } => ({ offset, key: key === null ? null : Buffer.from(key), value: encodeAvroEvent(event(u, 'LOGIN', t)) })
    await task.process(new KafkaBatch([
      rec('0', 'a', 'a', '2026-03-02T09:00'),
      rec('1', 'hostile', 'good-user', '2026-03-02T09:01'),
      rec('2', null, 'b', '2026-03-02T09:02'),
      rec('3', 'ü-user', 'ü-user', '2026-03-02T09:03'),
      rec('4', 'ü-usex', 'ü-user', '2026-03-02T09:04'),
      rec('5', 'good-use', 'good-user', '2026-03-02T09:05'),
      { ...rec('6', null, 'café', '2026-03-02T09:06'), key: Buffer.from('café', 'latin1') } // as long as the id, but not its UTF-8
    ], 'in', 0, new Set([1])))
    expect(sink.deadLetters.map((d) => [d.reason, d.source.offset])).toEqual([['invalid', '1'], ['invalid', '4'], ['invalid', '5'], ['invalid', '6']])
    expect(sink.deadLetters[0].detail).toContain('key is not its userId')
    expect(sink.deadLetters[0].detail).not.toContain('good-user') // no personal data in the reason
    expect(task.userState('good-user')).toBeUndefined()
    for (const u of ['a', 'b', 'ü-user']) expect(task.userState(u)).toBeDefined()
  })

  it('erases with a raw Avro ERASE whose eventId is empty (its first byte is 0, like a Confluent frame\'s)', async () => {
    const sink = new MemorySink()
    const task = await PartitionTask.open({ topology: defaultTopology(), store: new MemoryStore(), sink })
    const login = (u: string, t: string): Buffer => encodeAvroEvent(event(u, 'LOGIN', t))
    await task.process(new KafkaBatch([{ offset: '0', value: login('gone', '2026-03-02T09:00') }, { offset: '1', value: login('kept', '2026-03-02T09:01') }], 'in', 0, new Set([1])))
    expect(task.userState('gone')).toBeDefined()
    const erase = encodeAvroEvent({ eventId: '', userId: 'gone', type: 'ERASE', ts: at('2026-03-02T10:00'), tz: null, targetId: null, durationMs: null, amount: null, channel: null, taskId: null })
    await task.process(new KafkaBatch([{ offset: '2', value: erase }, { offset: '3', value: login('kept', '2026-03-02T10:01') }], 'in', 0, new Set([1])))
    expect(sink.deadLetters).toEqual([])
    expect(task.userState('gone')).toBeUndefined()
    expect(task.userState('kept')).toBeDefined()
  })

  it('keeps a user who comes back after their ERASE (a new LOGIN dated after it)', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipe({ userId: 'u', type: 'LOGIN', ts: at('2026-03-02T09:00'), tz: SH })
    await d.pipe({ userId: 'u', type: 'ERASE', ts: at('2026-03-02T10:00') })
    await d.commit()
    await d.pipe(
      { userId: 'u', type: 'LOGIN', ts: at('2026-03-02T09:30'), tz: SH, eventId: 'retry' }, // a producer retry from before the ERASE
      { userId: 'u', type: 'LOGIN', ts: at('2026-03-02T11:00'), tz: SH }
    )
    expect(d.deadLetters.map((x) => [x.reason, x.code])).toEqual([['erased', 'EBB_EVENT_ERASED']])
    expect(d.user('u')?.lastLoginTs).toBe(at('2026-03-02T11:00'))
    d.advanceTo(at('2026-03-10T00:00'))
    expect(d.alertsOf('inactive_7d').map((a) => a.userId)).toEqual(['u'])
  })
})

describe('eventId hashes', () => {
  it('tells apart two eventIds whose 32-bit FNV-1a hashes collide', async () => {
    // A birthday search over FNV-1a alone (the hash of earlier versions) finds a colliding pair.
    const seen = new Map<number, string>()
    let pair: [string, string] | null = null
    for (let i = 0; pair === null; i++) {
      const id = `e${i.toString(36)}`
      eventIdHash.of(id)
      const other = seen.get(eventIdHash.h1)
      if (other !== undefined) pair = [other, id]
      else seen.set(eventIdHash.h1, id)
    }
    eventIdHash.of(pair[0]); const a = [eventIdHash.h1, eventIdHash.h2]
    eventIdHash.of(pair[1]); const b = [eventIdHash.h1, eventIdHash.h2]
    expect(a[0]).toBe(b[0])
    expect(a[1]).not.toBe(b[1])
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipe(
      { userId: 'u', type: 'VIEW', ts: at('2026-03-02T09:00'), tz: SH, eventId: pair[0], targetId: 'c1', durationMs: 1000 },
      { userId: 'u', type: 'VIEW', ts: at('2026-03-02T09:01'), tz: SH, eventId: pair[1], targetId: 'c1', durationMs: 1000 },
      { userId: 'u', type: 'VIEW', ts: at('2026-03-02T09:02'), tz: SH, eventId: pair[1], targetId: 'c1', durationMs: 1000 } // a true duplicate
    )
    expect(d.deadLetters.map((x) => x.reason)).toEqual(['duplicate'])
    expect(viewsToday(d.user('u'))).toBe(2)
  })
})

describe('field limits', () => {
  it.each([
    ['Z', 'tz'], ['UTC+05:30', 'tz'], ['+08:00', 'tz'], ['EST5EDT ', 'tz']
  ])('refuses the zone %j: only IANA zone ids', async (tz, field) => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipe({ userId: 'u', type: 'LOGIN', ts: at('2026-03-02T09:00'), tz })
    expect(d.deadLetters).toHaveLength(1)
    expect(d.deadLetters[0].reason).toBe('invalid')
    expect(d.deadLetters[0].detail).toContain(field)
    expect(d.user('u')).toBeUndefined()
  })

  it('refuses a durationMs that the Avro int cannot carry, and takes the largest one that fits', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipe(
      { userId: 'u', type: 'VIEW', ts: at('2026-03-02T09:00'), tz: SH, targetId: 'c', durationMs: 2 ** 31 },
      { userId: 'u', type: 'VIEW', ts: at('2026-03-02T09:01'), tz: SH, targetId: 'c', durationMs: 2 ** 31 - 1 }
    )
    d.settle()
    expect(d.deadLetters.map((x) => [x.reason, x.source.line])).toEqual([['invalid', 1]])
    expect(d.deadLetters[0].detail).toContain('durationMs')
    expect(viewsToday(d.user('u'))).toBe(1)
  })
})

describe('dead letters that fit their output', () => {
  it('keeps the first bytes, the length and the SHA-256 of a record larger than the output allows', async () => {
    const sink = new MemorySink()
    const task = await PartitionTask.open({ topology: defaultTopology(), store: new MemoryStore(), sink, maxDeadLetterBytes: 1000 })
    const big = '{"eventId":"x","userId":"' + 'A'.repeat(5000) + '", broken'
    const small = '{"broken'
    await task.process(new LineBatch([big, small], 'in.jsonl', 7))
    expect(sink.deadLetters).toHaveLength(2)
    const [d1, d2] = sink.deadLetters
    expect(d1.reason).toBe('undecodable')
    expect(d1.rawBytes).toBe(Buffer.byteLength(big))
    expect(Buffer.from(d1.raw, 'base64').toString('utf8')).toBe(big.slice(0, 1000))
    expect(d1.rawSha256).toBe(createHash('sha256').update(big).digest('hex'))
    expect(d1.source.line).toBe(7)
    // A record that fits is kept whole, with no hash.
    expect(Buffer.from(d2.raw, 'base64').toString('utf8')).toBe(small)
    expect(d2.rawBytes).toBe(small.length)
    expect(d2.rawSha256).toBeNull()
  })
})

describe('a held event that is large', () => {
  it('is stored as its dead letter would keep it (first bytes, length, SHA-256), so its changelog record stays small; refused after a restart, its dead letter says so', async () => {
    const store = new MemoryStore()
    const first = await PartitionTask.open({ topology: defaultTopology(), store, sink: new MemorySink() })
    // The first event of a partition waits for a later one to confirm its time; unknown JSON fields
    // are ignored, so 600 KB of them make a valid record of 600 KB (over the 512 KB a dead letter keeps).
    const line = JSON.stringify({ eventId: 'e1', userId: 'u', type: 'LOGIN', ts: at('2026-03-10T09:00'), tz: SH, note: 'n'.repeat(600_000) })
    await first.process(new LineBatch([line], 'in.jsonl', 1))
    expect(first.heldEventTime).toBe(at('2026-03-10T09:00'))
    await first.commit()
    const held = await store.getMany([Buffer.from('mheld')])
    expect(held[0]).toBeDefined()
    expect(held[0]?.length ?? 0).toBeLessThan(8 * 1024) // not 1.2 MB (the line twice), which a topic refuses
    // Opened again on the same store (a restart), a next event two days earlier does not confirm it.
    const sink = new MemorySink()
    const again = await PartitionTask.open({ topology: defaultTopology(), store, sink })
    expect(again.heldEventTime).toBe(at('2026-03-10T09:00'))
    await again.process(new LineBatch([JSON.stringify({ eventId: 'e2', userId: 'v', type: 'LOGIN', ts: at('2026-03-08T09:00'), tz: SH })], 'in.jsonl', 2))
    expect(sink.deadLetters.map((d) => [d.reason, d.source.line])).toEqual([['future', 1]])
    const [d] = sink.deadLetters
    expect(d.rawBytes).toBe(Buffer.byteLength(line))
    expect(d.rawSha256).toBe(createHash('sha256').update(line).digest('hex'))
    expect(Buffer.from(d.raw, 'base64').toString('utf8')).toBe(line.slice(0, Buffer.from(d.raw, 'base64').length))
    expect(again.heldEventTime).toBe(at('2026-03-08T09:00')) // the next first event waits in turn
  })

  it('one of 300 KB keeps its bytes whole, once, as its dead letter would', async () => {
    const store = new MemoryStore()
    const first = await PartitionTask.open({ topology: defaultTopology(), store, sink: new MemorySink() })
    const line = JSON.stringify({ eventId: 'e1', userId: 'u', type: 'LOGIN', ts: at('2026-03-10T09:00'), tz: SH, note: 'n'.repeat(300_000) })
    await first.process(new LineBatch([line], 'in.jsonl', 1))
    await first.commit()
    const [held] = await store.getMany([Buffer.from('mheld')])
    expect(held?.length ?? 0).toBeLessThan(Buffer.byteLength(line) + 1024)
    const sink = new MemorySink()
    const again = await PartitionTask.open({ topology: defaultTopology(), store, sink })
    await again.process(new LineBatch([JSON.stringify({ eventId: 'e2', userId: 'v', type: 'LOGIN', ts: at('2026-03-08T09:00'), tz: SH })], 'in.jsonl', 2))
    expect(Buffer.from(sink.deadLetters[0]?.raw ?? '', 'base64').toString('utf8')).toBe(line)
    expect(sink.deadLetters[0]?.rawSha256).toBeNull()
  })

  it('one stored by an older version that today\'s rules refuse goes to the dead letters at open, and the partition opens', async () => {
    const store = new MemoryStore()
    const first = await PartitionTask.open({ topology: defaultTopology(), store, sink: new MemorySink() })
    await first.process(new LineBatch([JSON.stringify({ eventId: 'e1', userId: 'u', type: 'LOGIN', ts: at('2026-03-10T09:00'), tz: SH })], 'in.jsonl', 1))
    await first.commit()
    // The same record as an older version stored it (format byte 0, the raw line, the body), with a
    // targetId those rules took and today's (at most 256 characters) refuse.
    const old = JSON.stringify({ eventId: 'e1', userId: 'u', type: 'FOLLOW', ts: at('2026-03-10T09:00'), tz: SH, targetId: 't'.repeat(300) })
    const where = Buffer.from(JSON.stringify({ topic: null, partition: null, offset: null, file: 'in.jsonl', line: 1 }))
    const head = Buffer.alloc(9)
    head.writeUInt32BE(where.length, 1)
    head.writeUInt32BE(Buffer.byteLength(old), 5)
    const batch = store.batch()
    batch.put(Buffer.from('mheld'), Buffer.concat([head, where, Buffer.from(old), Buffer.from(old)]))
    await batch.write()
    const sink = new MemorySink()
    const again = await PartitionTask.open({ topology: defaultTopology(), store, sink })
    expect(again.heldEventTime).toBeNull()
    expect(sink.deadLetters.map((d) => [d.reason, d.source.line, Buffer.from(d.raw, 'base64').toString('utf8')])).toEqual([['invalid', 1, old]])
    await again.commit()
    expect((await store.getMany([Buffer.from('mheld')]))[0]).toBeUndefined()
  })

  it('a small one keeps its bytes once, and reads back the same', async () => {
    const store = new MemoryStore()
    const first = await PartitionTask.open({ topology: defaultTopology(), store, sink: new MemorySink() })
    const line = JSON.stringify({ eventId: 'e1', userId: 'u', type: 'LOGIN', ts: at('2026-03-10T09:00'), tz: SH })
    await first.process(new LineBatch([line], 'in.jsonl', 1))
    await first.commit()
    const [held] = await store.getMany([Buffer.from('mheld')])
    expect(held?.length ?? 0).toBeLessThan(Buffer.byteLength(line) + 100) // the line once, with its source
    const sink = new MemorySink()
    const again = await PartitionTask.open({ topology: defaultTopology(), store, sink })
    await again.process(new LineBatch([JSON.stringify({ eventId: 'e2', userId: 'v', type: 'LOGIN', ts: at('2026-03-08T09:00'), tz: SH })], 'in.jsonl', 2))
    expect(Buffer.from(sink.deadLetters[0]?.raw ?? '', 'base64').toString('utf8')).toBe(line)
    expect(sink.deadLetters[0]?.rawSha256).toBeNull()
  })
})

describe('rule state by id', () => {
  const rulesYaml = (ids: string[]): string => 'version: 1\ndefaultTimezone: UTC\nmodel: null\nrules:\n' + ids.map((id, k) => `  - id: ${id}\n    when:\n      - { signal: daysInactive, op: ">=", threshold: ${k + 1} }\n`).join('')

  it('reads a store written before the rule map with the file order that indexed it then, and keeps it from then on', async () => {
    const store = new MemoryStore()
    const first = parseTopology(rulesYaml(['zeta', 'alpha']), 'old.yaml')
    expect(first.rules.map((r) => r.id)).toEqual(['alpha', 'zeta']) // run in id order
    const slots = await RuleSlots.load(store, first, 'state')
    expect(slots.bit(first.rules.findIndex((r) => r.id === 'zeta'))).toBe(1) // file position 0
    expect(slots.bit(first.rules.findIndex((r) => r.id === 'alpha'))).toBe(2)
    const b = store.batch(); slots.drain(b); await b.write(); slots.committed()
    // The same rules, another file order: the stored map wins.
    const later = parseTopology(rulesYaml(['alpha', 'zeta', 'new']), 'new.yaml')
    const again = await RuleSlots.load(store, later, 'state')
    expect(again.bit(later.rules.findIndex((r) => r.id === 'zeta'))).toBe(1)
    expect(again.bit(later.rules.findIndex((r) => r.id === 'alpha'))).toBe(2)
    expect(again.bit(later.rules.findIndex((r) => r.id === 'new'))).toBe(4)
  })

  it('refuses, with what to do, a topology whose new rule finds no free bit', async () => {
    const store = new MemoryStore()
    const full = Array.from({ length: MAX_RULES }, (_, k) => `r${String(k).padStart(2, '0')}`)
    const slots = await RuleSlots.load(store, parseTopology(rulesYaml(full), 'full.yaml'), 'state')
    const b = store.batch(); slots.drain(b); await b.write()
    const err = await RuleSlots.load(store, parseTopology(rulesYaml([...full.slice(1), 'extra']), 'more.yaml'), 'the-state-dir').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(EbbError)
    expect((err as EbbError).code).toBe('EBB_RULES_INCOMPATIBLE')
    expect((err as EbbError).message).toContain('the-state-dir')
    expect((err as EbbError).message).toContain('extra')
  })
})
