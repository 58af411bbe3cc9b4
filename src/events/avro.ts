import avsc from 'avsc'
import { readFileSync } from 'node:fs'
import { schemaPath } from '../paths.js'
import type { UserEvent } from './user-event.js'

/** Loads an Avro type from schemas/. Named types are resolved within the file. */
export function loadAvroType (file: string): avsc.Type {
  return avsc.Type.forSchema(JSON.parse(readFileSync(schemaPath(file), 'utf8')))
}

let userEventType: avsc.Type | undefined
export function userEventAvroType (): avsc.Type {
  if (userEventType === undefined) userEventType = loadAvroType('user-event.avsc')
  return userEventType
}

/** Confluent wire format: magic byte 0, 4-byte big-endian schema id, then the Avro body. */
export const CONFLUENT_MAGIC = 0

/**
 * Decodes a raw Avro UserEvent body (no framing). Throws on truncated or malformed input;
 * callers route that to the dead-letter output. Avro enums cannot hold an unknown type, so a
 * decoded record needs only the semantic checks of validateEvent.
 */
export function decodeAvroEvent (buf: Buffer): UserEvent {
  // fromBuffer throws 'truncated buffer' / 'trailing data' itself, and allocates less than decode().
  return (userEventType ?? userEventAvroType()).fromBuffer(buf) as UserEvent
}

export function encodeAvroEvent (e: UserEvent): Buffer {
  return userEventAvroType().toBuffer(e)
}
