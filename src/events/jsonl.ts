import { EbbError, Errors } from '../errors.js'
import type { UserEvent } from './user-event.js'
import { toUserEvent, validateEventObject } from './validate.js'

/**
 * One JSON Lines record → UserEvent (README, "The event contract": the same record as the Avro one, times as epoch
 * millis or ISO-8601 instants). Throws EbbError EVENT_UNDECODABLE for text that is not a JSON
 * object and EVENT_INVALID for an object that breaks the contract; unknown fields are ignored
 * so producers can add fields before Ebb reads them (Avro's reader-schema rule).
 */
export function decodeJsonEvent (line: string): UserEvent {
  let o: unknown
  try {
    o = JSON.parse(line)
  } catch (err) {
    // A byte order mark (Windows tools write one at the start of a file): JSON's RFC lets a
    // parser ignore it, and JSON.parse does not. Looked for only here, off the common path.
    if (line.charCodeAt(0) !== 0xFEFF || line.charCodeAt(1) === 0xFEFF) throw new EbbError(Errors.EVENT_UNDECODABLE, (err as Error).message)
    return decodeJsonEvent(line.slice(1)) // (one mark, once: the recursion ends at the next character)
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new EbbError(Errors.EVENT_UNDECODABLE, 'a line must hold one JSON object')
  const problem = validateEventObject(o as Record<string, unknown>)
  if (problem !== null) throw new EbbError(Errors.EVENT_INVALID, problem)
  return toUserEvent(o as Record<string, unknown>)
}

/** The inverse, for simulate and tests: the record as one JSON line with epoch-millis times. */
export function encodeJsonEvent (e: UserEvent): string {
  let s = `{"eventId":${JSON.stringify(e.eventId)},"userId":${JSON.stringify(e.userId)},"type":"${e.type}","ts":${e.ts}`
  if (e.tz !== null) s += `,"tz":${JSON.stringify(e.tz)}`
  if (e.targetId !== null) s += `,"targetId":${JSON.stringify(e.targetId)}`
  if (e.durationMs !== null) s += `,"durationMs":${e.durationMs}`
  if (e.amount !== null) s += `,"amount":${e.amount}`
  if (e.channel !== null) s += `,"channel":"${e.channel}"`
  if (e.taskId !== null) s += `,"taskId":${JSON.stringify(e.taskId)}`
  return s + '}'
}
