import { CHANNELS, EVENT_TYPES, type UserEvent } from './user-event.js'
import { isKnownZone } from '../time/zones.js'

const TYPES = new Set<string>(EVENT_TYPES)
const CHANNEL_SET = new Set<string>(CHANNELS)
// An ISO-8601 instant must say its offset: a local time without one is ambiguous.
export const ISO_INSTANT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-](\d{2}):?(\d{2}))$/
// Years 2000..2100: anything outside is a unit mistake (seconds or microseconds), not an event.
export const MIN_TS = 946684800000
export const MAX_TS = 4102444800000
/** PURCHASE amounts above this are a unit or data error; state keeps integer cents exactly below 2^53. */
export const MAX_AMOUNT = 1e9
/** Ids are keys (state, timer buckets): long enough for any UUID or composite id, short enough to index. */
export const MAX_ID_LENGTH = 256

/** Returns what is wrong with a decoded-but-unchecked JSON object, or null when it is a valid event. */
export function validateEventObject (o: Record<string, unknown>): string | null {
  if (typeof o.userId !== 'string' || o.userId.length === 0) return 'userId: missing or not a non-empty string'
  if (o.type === 'ERASE') return eraseRequest(o)
  if (typeof o.eventId !== 'string' || o.eventId.length === 0) return 'eventId: missing or not a non-empty string'
  const idp = idProblem(o.eventId, o.userId)
  if (idp !== null) return idp
  if (typeof o.type !== 'string') return 'type: missing'
  if (!TYPES.has(o.type)) return `type: unknown event type "${o.type.slice(0, 40)}"`
  if (o.ts === undefined || o.ts === null) return 'ts: missing'
  if (typeof o.ts === 'number') {
    if (!Number.isInteger(o.ts)) return 'ts: epoch millis must be an integer'
  } else if (typeof o.ts === 'string') {
    const m = ISO_INSTANT.exec(o.ts)
    if (m === null) return `ts: "${o.ts.slice(0, 40)}" is not an ISO-8601 instant with an offset`
    // Date.parse rolls impossible dates over (2026-02-30 → 2 March, T24:00 → next day): refuse them.
    if (!isCalendarInstant(m)) return `ts: "${o.ts.slice(0, 40)}" is not a real calendar date and time`
    const ms = Date.parse(o.ts)
    if (Number.isNaN(ms)) return `ts: "${o.ts.slice(0, 40)}" is not a valid date`
    o.ts = ms
  } else {
    return 'ts: must be epoch millis or an ISO-8601 instant'
  }
  if ((o.ts as number) < MIN_TS || (o.ts as number) > MAX_TS) return 'ts: outside 2000..2100 (seconds or microseconds instead of millis?)'
  return validateOptionalFields(o)
}

/**
 * An ERASE needs only its userId: a right-to-be-forgotten request is honoured whatever else it
 * carries. Its ts, when it is a valid instant, says from when on the user's older events are
 * refused (`erased`); otherwise the ts is NaN and stream time stands in for it. Other fields are
 * ignored (cleared).
 */
function eraseRequest (o: Record<string, unknown>): string | null {
  const userId = o.userId as string
  if (userId.length > MAX_ID_LENGTH) return `userId: at most ${MAX_ID_LENGTH} characters`
  if (!userId.isWellFormed()) return 'userId: not well-formed Unicode (lone surrogate)'
  if (typeof o.eventId !== 'string' || o.eventId.length > MAX_ID_LENGTH || !o.eventId.isWellFormed()) o.eventId = ''
  let ts = Number.NaN
  if (typeof o.ts === 'number' && Number.isInteger(o.ts)) ts = o.ts
  else if (typeof o.ts === 'string' && ISO_INSTANT.test(o.ts)) ts = Date.parse(o.ts)
  o.ts = ts >= MIN_TS && ts <= MAX_TS ? ts : Number.NaN
  o.tz = o.targetId = o.durationMs = o.amount = o.channel = o.taskId = null
  return null
}

export function isCalendarInstant (m: RegExpExecArray): boolean {
  const year = Number(m[1])
  const month = Number(m[2])
  const day = Number(m[3])
  if (month < 1 || month > 12 || day < 1) return false
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate()
  if (day > daysInMonth) return false
  if (Number(m[4]) > 23 || Number(m[5]) > 59 || (m[6] !== undefined && Number(m[6]) > 59)) return false
  if (m[7] !== undefined && (Number(m[7]) > 18 || Number(m[8]) > 59)) return false
  return true
}

/** Ids become store keys as UTF-8: a lone surrogate would encode as U+FFFD and collide with others. */
function idProblem (eventId: string, userId: string): string | null {
  if (eventId.length > MAX_ID_LENGTH || userId.length > MAX_ID_LENGTH) return `eventId, userId: at most ${MAX_ID_LENGTH} characters`
  if (!eventId.isWellFormed() || !userId.isWellFormed()) return 'eventId, userId: not well-formed Unicode (lone surrogate)'
  return null
}

function validateOptionalFields (o: Record<string, unknown>): string | null {
  if (o.tz !== undefined && o.tz !== null) {
    if (typeof o.tz !== 'string' || !isKnownZone(o.tz)) return `tz: "${String(o.tz).slice(0, 40)}" is not an IANA time zone`
  }
  if (o.targetId !== undefined && o.targetId !== null && typeof o.targetId !== 'string') return 'targetId: must be a string'
  // Ids, like eventId and userId: a record is kept in the store (and its changelog) while it
  // waits for a later event to confirm its time, and a topic refuses records over 1 MB.
  if (typeof o.targetId === 'string' && o.targetId.length > MAX_ID_LENGTH) return `targetId: at most ${MAX_ID_LENGTH} characters`
  // (UTF-8, in the store and on Kafka, would turn a lone surrogate into U+FFFD: the id would change on the way)
  if (typeof o.targetId === 'string' && !o.targetId.isWellFormed()) return 'targetId: not well-formed Unicode (lone surrogate)'
  // an Avro int: a JSON record must be writable to Kafka as the same record
  if (o.durationMs !== undefined && o.durationMs !== null && (!Number.isInteger(o.durationMs) || (o.durationMs as number) < 0 || (o.durationMs as number) > 2147483647)) return 'durationMs: must be an integer in 0..2147483647 (an Avro int)'
  if (o.amount !== undefined && o.amount !== null && (typeof o.amount !== 'number' || !Number.isFinite(o.amount))) return 'amount: must be a finite number'
  if (o.channel !== undefined && o.channel !== null && (typeof o.channel !== 'string' || !CHANNEL_SET.has(o.channel))) return `channel: must be one of ${CHANNELS.join(', ')}`
  if (o.taskId !== undefined && o.taskId !== null && typeof o.taskId !== 'string') return 'taskId: must be a string'
  if (typeof o.taskId === 'string' && o.taskId.length > MAX_ID_LENGTH) return `taskId: at most ${MAX_ID_LENGTH} characters`
  if (typeof o.taskId === 'string' && !o.taskId.isWellFormed()) return 'taskId: not well-formed Unicode (lone surrogate)'
  if (o.type === 'PURCHASE' && (typeof o.amount !== 'number' || o.amount < 0)) return 'amount: PURCHASE needs a non-negative amount'
  if (typeof o.amount === 'number' && Math.abs(o.amount) > MAX_AMOUNT) return `amount: above ${MAX_AMOUNT} (a unit mistake?)`
  if ((o.type === 'CONSENT_GRANTED' || o.type === 'CONSENT_REVOKED' || o.type === 'MESSAGE_DELIVERED' || o.type === 'MESSAGE_OPENED') && (o.channel === undefined || o.channel === null)) return `channel: ${o.type} needs a channel`
  return null
}

/** Semantic checks for a record that arrived as Avro (the schema already fixed the types). */
export function validateDecodedEvent (e: UserEvent): string | null {
  if (e.userId.length === 0) return 'userId: empty'
  if (e.type === 'ERASE') return eraseRequest(e as unknown as Record<string, unknown>)
  if (e.eventId.length === 0) return 'eventId: empty'
  const idp = idProblem(e.eventId, e.userId)
  if (idp !== null) return idp
  if (e.ts < MIN_TS || e.ts > MAX_TS) return 'ts: outside 2000..2100 (seconds or microseconds instead of millis?)'
  return validateOptionalFields(e as unknown as Record<string, unknown>)
}

/** Copies a validated JSON object into the exact record shape avsc produces. */
export function toUserEvent (o: Record<string, unknown>): UserEvent {
  return {
    eventId: o.eventId as string,
    userId: o.userId as string,
    type: o.type as UserEvent['type'],
    ts: o.ts as number,
    tz: (o.tz as string | undefined) ?? null,
    targetId: (o.targetId as string | undefined) ?? null,
    durationMs: (o.durationMs as number | undefined) ?? null,
    amount: (o.amount as number | undefined) ?? null,
    channel: (o.channel as UserEvent['channel'] | undefined) ?? null,
    taskId: (o.taskId as string | undefined) ?? null
  }
}
