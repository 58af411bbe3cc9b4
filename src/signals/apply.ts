import { CHANNELS, EventType, type UserEvent } from '../events/user-event.js'
import { COUNT_DAYS, FOLLOW_DAYS, NEVER_DAY, OFF_FOLLOW, OFF_INTERACT, OFF_POST, OFF_UNFOLLOW, OFF_VIEW, type UserState } from '../state/user-state.js'

/** Consent bit of a channel: its position in CHANNELS (the schema's enum order). */
const CHANNEL_BIT: Record<string, number> = Object.fromEntries(CHANNELS.map((c, i) => [c, i]))

/**
 * Applies one event to a user's state: the only place the state changes for an event.
 * `day` is the event's local day in the user's zone. O(1) apart from ring clearing on a new day.
 */
export function applyEvent (s: UserState, e: UserEvent, type: EventType, day: number): void {
  if (s.firstDay === NEVER_DAY || day < s.firstDay) s.firstDay = day
  s.advanceTo(day)
  if (e.ts > s.lastEventTs) s.lastEventTs = e.ts
  switch (type) {
    case EventType.LOGIN:
      s.markLogin(day)
      s.markActive(day)
      s.addLoginHour(s.zone.localHour(e.ts))
      if (e.ts > s.lastLoginTs) { s.lastLoginTs = e.ts; s.lastLoginDay = day }
      break
    case EventType.FOLLOW:
      s.addCount(OFF_FOLLOW, FOLLOW_DAYS, day)
      s.followCount++
      s.markActive(day)
      break
    case EventType.UNFOLLOW:
      s.addCount(OFF_UNFOLLOW, FOLLOW_DAYS, day)
      // Follows made before Ebb saw the user are unknown; the count never goes negative.
      if (s.followCount > 0) s.followCount--
      s.markActive(day)
      break
    case EventType.VIEW:
      s.addCount(OFF_VIEW, COUNT_DAYS, day)
      s.markActive(day)
      break
    case EventType.POST:
      s.addCount(OFF_POST, COUNT_DAYS, day)
      s.markActive(day)
      break
    case EventType.INTERACT:
      s.addCount(OFF_INTERACT, COUNT_DAYS, day)
      s.markActive(day)
      break
    case EventType.PURCHASE:
      s.addPurchase(day, e.amount ?? 0)
      if (day > s.lastPurchaseDay) s.lastPurchaseDay = day
      s.markActive(day)
      break
    case EventType.MESSAGE_DELIVERED:
      s.addMessage(day, 1, 0)
      break
    case EventType.MESSAGE_OPENED:
      s.addMessage(day, 0, 1)
      break
    case EventType.CONSENT_GRANTED:
      if (e.channel !== null) { s.consentRevoked &= ~(1 << CHANNEL_BIT[e.channel]); s.consentGranted |= 1 << CHANNEL_BIT[e.channel] }
      break
    case EventType.CONSENT_REVOKED:
      if (e.channel !== null) { s.consentRevoked |= 1 << CHANNEL_BIT[e.channel]; s.consentGranted &= ~(1 << CHANNEL_BIT[e.channel]) }
      break
    case EventType.ERASE:
      break
  }
}
