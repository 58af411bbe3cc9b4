import { EbbError, Errors } from '../errors.js'
import { decodeAvroEvent } from './avro.js'
import { decodeJsonEvent } from './jsonl.js'
import type { UserEvent } from './user-event.js'
import { validateDecodedEvent } from './validate.js'

/**
 * The decode stage: one record's bytes → a valid UserEvent, or an EbbError that says why not
 * (undecodable, invalid). A JSON line is decoded and checked field by field as it is read; an
 * Avro body's types are fixed by the schema, so it gets the semantic checks after decoding.
 * Every source (files, the embedded log, Kafka, a waiting future event) goes through here.
 */
export function decodeRecord (format: 'json' | 'avro', value: string | Buffer): UserEvent {
  if (format === 'json') return decodeJsonEvent(value as string)
  const e = decodeAvroEvent(value as Buffer)
  const problem = validateDecodedEvent(e)
  if (problem !== null) throw new EbbError(Errors.EVENT_INVALID, problem)
  return e
}
