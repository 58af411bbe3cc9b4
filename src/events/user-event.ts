/**
 * The UserEvent record (README, "The event contract") as the engine sees it, whether it came from Avro or JSON Lines.
 * Types are small integers inside the engine so that hot-path dispatch is a switch on an int.
 */
export const EVENT_TYPES = [
  'LOGIN', 'FOLLOW', 'UNFOLLOW', 'VIEW', 'POST', 'INTERACT', 'PURCHASE',
  'MESSAGE_DELIVERED', 'MESSAGE_OPENED', 'CONSENT_GRANTED', 'CONSENT_REVOKED', 'ERASE'
] as const
export type EventTypeName = typeof EVENT_TYPES[number]

export const enum EventType {
  LOGIN = 0, FOLLOW = 1, UNFOLLOW = 2, VIEW = 3, POST = 4, INTERACT = 5, PURCHASE = 6,
  MESSAGE_DELIVERED = 7, MESSAGE_OPENED = 8, CONSENT_GRANTED = 9, CONSENT_REVOKED = 10, ERASE = 11
}

export const CHANNELS = ['PUSH', 'SMS', 'EMAIL', 'IN_APP'] as const
export type ChannelName = typeof CHANNELS[number]

/** The decoded record, field for field the Avro schema (avsc produces exactly this shape). */
export interface UserEvent {
  eventId: string
  userId: string
  type: EventTypeName
  ts: number
  tz: string | null
  targetId: string | null
  durationMs: number | null
  amount: number | null
  channel: ChannelName | null
  taskId: string | null
}

const TYPE_INDEX: Record<string, number> = Object.create(null)
EVENT_TYPES.forEach((t, i) => { TYPE_INDEX[t] = i })

/** Event type name → engine index, -1 when unknown. */
export function eventTypeIndex (name: string): number {
  const i = TYPE_INDEX[name]
  return i === undefined ? -1 : i
}
