import { describe, expect, it } from 'vitest'
import type { AlertRecord } from '../../src/io/records.js'
import { alertJson } from '../../src/io/sinks.js'
import { decodeOutput, KafkaSink } from '../../src/kafka/wire.js'

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
