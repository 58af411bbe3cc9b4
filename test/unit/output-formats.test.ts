import { describe, expect, it } from 'vitest'
import { CONFLUENT_MAGIC, confluentBody, confluentFrame, confluentSchemaId, encodeAvroEvent } from '../../src/events/avro.js'
import type { AlertRecord } from '../../src/io/records.js'
import { alertJson } from '../../src/io/sinks.js'
import { decodeOutput, type InputMessage, KafkaBatch, KafkaSink } from '../../src/kafka/wire.js'

/** The output topics' value formats (outputFormat): raw Avro, the Confluent wire format, JSON. */
const alert: AlertRecord = {
  alertId: 'u1:1772236800000:inactive_7d', userId: 'u1', episodeId: 'u1:1772236800000', rule: 'inactive_7d', firedAt: 1772841600000, score: 0.8125,
  reasons: [{ code: 'DAYS_INACTIVE', signal: 'daysInactive', value: 7, op: '>=', threshold: 7, text: '7 days without a login' }],
  churnType: 'SILENT', valueTier: 'HIGH', responseTier: 'UNKNOWN', arm: 'TREATMENT', decision: 'TASK', taskId: 't1'
}

describe('output formats', () => {
  it('raw Avro by default; Confluent framing with the registered id; JSON as ebb replay writes it; each decodes back to the record', () => {
    const raw = new KafkaSink()
    const framed = new KafkaSink({ alert: { format: 'confluent', schemaId: 4242 }, task: { format: 'avro' }, outcome: { format: 'avro' }, deadLetter: { format: 'avro' } })
    const json = new KafkaSink({ alert: { format: 'json' }, task: { format: 'avro' }, outcome: { format: 'avro' }, deadLetter: { format: 'avro' } })
    for (const s of [raw, framed, json]) s.alert(alert)
    const [r, f, j] = [raw, framed, json].map((s) => s.drain().alerts[0])
    expect(f.value?.subarray(0, 5)).toEqual(Buffer.from([0, 0, 0, 0x10, 0x92]))
    expect(f.value?.subarray(5)).toEqual(r.value)
    expect(j.value?.toString()).toBe(alertJson(alert))
    expect(r.key?.toString()).toBe('u1')
    for (const [v, format] of [[r.value, 'avro'], [f.value, 'confluent'], [j.value, 'json']] as const) expect(decodeOutput('alert', v as Buffer, format)).toEqual(alert)
    expect(() => decodeOutput('alert', r.value as Buffer, 'confluent')).toThrow(/not in the Confluent wire format/)
  })
})

describe('Confluent framing of the input', () => {
  const body = encodeAvroEvent({ eventId: 'e1', userId: 'u1', type: 'LOGIN', ts: 1772236800000, tz: 'UTC', targetId: null, durationMs: null, amount: null, channel: null, taskId: null })
  const msg = (value: Buffer | null, offset = '0'): InputMessage => ({ offset, value })

  it('reads the schema id where there is one: raw bodies never start with the magic byte, short frames are no id', () => {
    expect(body[0]).not.toBe(CONFLUENT_MAGIC)
    expect(confluentSchemaId(body)).toBe(-1)
    const framed = confluentFrame(7, body)
    expect(confluentSchemaId(framed)).toBe(7)
    expect(confluentBody(framed)).toEqual(body)
    expect(confluentSchemaId(Buffer.from([0, 0, 0, 7]))).toBe(-1)
  })

  it('a batch reads framed bodies of known ids and raw bodies alike; an unknown id or a cut frame is a dead letter with its reason', () => {
    const b = new KafkaBatch([msg(body), msg(confluentFrame(7, body), '1'), msg(confluentFrame(9, body), '2'), msg(Buffer.from([0, 0, 7]), '3')], 'in', 0, new Set([7]))
    expect(b.value(0)).toEqual(body)
    expect(b.value(1)).toEqual(body)
    expect([0, 1].map((i) => b.rejection(i))).toEqual([null, null])
    expect(b.rejection(2)).toMatch(/^schema id 9 is unknown: without a schema registry only ids 7 \(knownSchemaIds\)/)
    expect(b.rejection(3)).toBe('Confluent framing cut short (under 5 bytes)')
    expect([...KafkaBatch.schemaIds([msg(body), msg(confluentFrame(7, body)), msg(confluentFrame(9, body)), msg(null)], new Set([7]))]).toEqual([9])
  })

  it('a raw ERASE with an empty eventId starts with 0 too: it is read as the ERASE it is; another event with an empty eventId is refused for that, not for a schema id', () => {
    const erase = encodeAvroEvent({ eventId: '', userId: 'good-user', type: 'ERASE', ts: 1772236800000, tz: null, targetId: null, durationMs: null, amount: null, channel: null, taskId: null })
    const login = encodeAvroEvent({ eventId: '', userId: 'good-user', type: 'LOGIN', ts: 1772236800000, tz: null, targetId: null, durationMs: null, amount: null, channel: null, taskId: null })
    expect(erase[0]).toBe(CONFLUENT_MAGIC)
    const b = new KafkaBatch([msg(erase), msg(login, '1'), msg(confluentFrame(9, body), '2')], 'in', 0, new Set([7]))
    expect(b.rejection(0)).toBeNull()
    expect(b.value(0)).toEqual(erase) // the whole value, not a "body" after a 5-byte header
    expect(b.rejection(1)).toMatch(/^eventId: empty/)
    expect(b.rejection(2)).toMatch(/^schema id 9 is unknown/) // a real frame stays one
    // no registry lookup for what is a raw body
    expect([...KafkaBatch.schemaIds([msg(erase), msg(login), msg(confluentFrame(9, body))], new Set([7]))]).toEqual([9])
  })
})
