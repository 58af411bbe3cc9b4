import avsc from 'avsc'
import { isUtf8 } from 'node:buffer'
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
/** bytes before the Avro body of a Confluent-framed value */
export const CONFLUENT_HEADER = 5

/**
 * The schema id of a Confluent-framed value, or −1 when the value is not framed or too short to
 * hold the id. A raw Avro ebb.UserEvent body starts with the zig-zag length of its eventId, which
 * is not 0 for any valid event (an eventId cannot be empty); a body with an empty eventId is read
 * as a frame and dead-lettered as one (an unknown schema id), invalid either way. The one place
 * that reads the framing.
 */
export function confluentSchemaId (v: Buffer): number {
  return v.length >= CONFLUENT_HEADER && v[0] === CONFLUENT_MAGIC ? v.readUInt32BE(1) : -1
}

/** The Avro body of a Confluent-framed value (confluentSchemaId(v) ≥ 0). */
export function confluentBody (v: Buffer): Buffer { return v.subarray(CONFLUENT_HEADER) }

/** `body` framed with `schemaId`. */
export function confluentFrame (schemaId: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(CONFLUENT_HEADER + body.length)
  out[0] = CONFLUENT_MAGIC
  out.writeUInt32BE(schemaId, 1)
  body.copy(out, CONFLUENT_HEADER)
  return out
}

/**
 * Decodes a raw Avro UserEvent body (no framing). Throws on truncated or malformed input;
 * callers route that to the dead-letter output. Avro enums cannot hold an unknown type, so a
 * decoded record needs only the semantic checks of validateDecodedEvent (and its strings the
 * UTF-8 check, since avsc would replace invalid bytes).
 */
export function decodeAvroEvent (buf: Buffer): UserEvent {
  // fromBuffer throws 'truncated buffer' / 'trailing data' itself, and allocates less than decode().
  const e = (userEventType ?? userEventAvroType()).fromBuffer(buf) as UserEvent
  // avsc decodes invalid UTF-8 to U+FFFD, which would make `probe-\xff` and `probe-\xfe` one user.
  // A replacement character is rare: only then are the string fields' bytes checked.
  if (e.eventId.includes('\uFFFD') || e.userId.includes('\uFFFD') || e.tz?.includes('\uFFFD') === true || e.targetId?.includes('\uFFFD') === true || e.taskId?.includes('\uFFFD') === true) {
    const bad = invalidUtf8Field(buf)
    if (bad !== null) throw new Error(`${bad}: not valid UTF-8 (the exact bytes are in raw)`)
  }
  return e
}

let bytesType: avsc.Type | undefined
/** The first string field whose bytes are not UTF-8, read with the same schema's strings as bytes (the same wire format). */
function invalidUtf8Field (buf: Buffer): string | null {
  if (bytesType === undefined) {
    const schema = JSON.parse(readFileSync(schemaPath('user-event.avsc'), 'utf8'), (_k, v: unknown) => v === 'string' ? 'bytes' : v) as avsc.Schema
    bytesType = avsc.Type.forSchema(schema)
  }
  const r = bytesType.fromBuffer(buf) as Record<string, unknown>
  for (const [k, v] of Object.entries(r)) if (Buffer.isBuffer(v) && !isUtf8(v)) return k
  return null
}

export function encodeAvroEvent (e: UserEvent): Buffer {
  return userEventAvroType().toBuffer(e)
}
