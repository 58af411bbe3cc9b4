import { describe, expect, it } from 'vitest'
import { encodeAvroEvent } from '../../src/events/avro.js'
import type { UserEvent } from '../../src/events/user-event.js'
import { AvroBatch } from '../../src/runtime/record-batch.js'
import { TopologyTestDriver } from '../../src/runtime/test-driver.js'
import { defaultTopology } from '../helpers.js'

const base: UserEvent = { eventId: 'e1', userId: 'u1', type: 'LOGIN', ts: Date.parse('2026-03-01T10:00:00Z'), tz: null, targetId: null, durationMs: null, amount: null, channel: null, taskId: null }

describe('input validation: bad records become dead letters, never crashes', () => {
  it('rejects over-long ids, unknown zones, a PURCHASE without amount, a consent event without channel (JSON Lines)', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipeRaw(
      JSON.stringify({ ...base, userId: 'x'.repeat(300) }),
      JSON.stringify({ ...base, tz: 'Mars/Olympus' }),
      JSON.stringify({ ...base, tz: '+08:00' }),
      JSON.stringify({ ...base, type: 'PURCHASE' }),
      JSON.stringify({ ...base, type: 'CONSENT_REVOKED' }),
      JSON.stringify({ ...base, ts: 1772359200 }), // seconds, not millis
      'null',
      JSON.stringify(base)
    )
    d.settle() // the partition's first good event waits for a second (docs/time.md)
    expect(d.deadLetters.map((x) => [x.reason, x.source.line])).toEqual([1, 2, 3, 4, 5, 6].map((l) => ['invalid', l]).concat([['undecodable', 7]]))
    expect(d.deadLetters[0].detail).toMatch(/at most 256/)
    expect(d.deadLetters[1].detail).toMatch(/tz/)
    expect(d.deadLetters[3].detail).toMatch(/amount/)
    expect(d.user('u1')).toBeDefined() // the one good record went through
  })

  it('bounds targetId and taskId like the ids (256 characters): a 600 KB one is a dead letter, not a changelog record Kafka refuses', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.task.process(new AvroBatch([
      encodeAvroEvent({ ...base, type: 'FOLLOW', targetId: 't'.repeat(600_000) }),
      encodeAvroEvent({ ...base, eventId: 'e2', type: 'MESSAGE_OPENED', channel: 'PUSH', taskId: 'k'.repeat(257) }),
      encodeAvroEvent({ ...base, eventId: 'e3', type: 'FOLLOW', targetId: 't'.repeat(256) }),
      encodeAvroEvent({ ...base, eventId: 'e4', type: 'MESSAGE_OPENED', channel: 'PUSH', taskId: 'k'.repeat(256) })
    ], 'events', 0, 0n))
    d.settle()
    expect(d.deadLetters.map((x) => [x.reason, x.source.offset, x.detail.replace(/^.*\): /, '')])).toEqual([['invalid', '0', 'targetId: at most 256 characters'], ['invalid', '1', 'taskId: at most 256 characters']])
    expect(d.user('u1')).toBeDefined() // 256 is still an id
  })

  it('checks Avro records the same way, and dead-letters truncated or trailing bytes', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    const good = encodeAvroEvent(base)
    await d.task.process(new AvroBatch([
      encodeAvroEvent({ ...base, userId: 'y'.repeat(300) }),
      encodeAvroEvent({ ...base, tz: 'Nowhere/Land' }),
      good.subarray(0, good.length - 3),
      Buffer.concat([good, Buffer.from([1, 2])]),
      good
    ], 'events', 3, 100n))
    d.settle()
    expect(d.deadLetters.map((x) => [x.reason, x.source.offset, x.source.partition])).toEqual([
      ['invalid', '100', 3], ['invalid', '101', 3], ['undecodable', '102', 3], ['undecodable', '103', 3]
    ])
    expect(d.task.stats.eventsApplied).toBe(1)
  })
})
