import { EventType } from '../events/user-event.js'
import type { UserState } from '../state/user-state.js'
import * as S from './signals.js'

/**
 * Every signal a rule can name in a topology: its number, what it means, which event types can
 * change it between two midnights (so a rule is re-evaluated only on events that can move it),
 * the thresholds that make sense for it (a rule outside them is rejected at load), and the words
 * a growth team reads in an alert's reasons.
 */
export const enum SignalId {
  daysInactive, loginDays7, loginDays28, unfollowRatio7d, consumptionDrop, interactionDrop, postDrop,
  rfmRecencyDays, rfmFrequency90d, rfmMonetary90d, responseRate, accountAgeDays, activeHour, churnScore
}

export interface SignalDefinition {
  readonly id: SignalId
  readonly name: string
  readonly code: string
  /** bit mask over EventType: events that can change the value on the same day (0: only the day's change can) */
  readonly affectedBy: number
  readonly min: number
  readonly max: number
  readonly integer: boolean
  readonly needsModel: boolean
  /** reason text; {v} is the value, {t} the threshold */
  readonly text: string
}

const bit = (...types: EventType[]): number => types.reduce((m, t) => m | (1 << t), 0)
const ENGAGEMENT = bit(EventType.LOGIN, EventType.FOLLOW, EventType.UNFOLLOW, EventType.VIEW, EventType.POST, EventType.INTERACT, EventType.PURCHASE)

export const SIGNALS: readonly SignalDefinition[] = [
  { id: SignalId.daysInactive, name: 'daysInactive', code: 'DAYS_INACTIVE', affectedBy: bit(EventType.LOGIN), min: 1, max: 365, integer: true, needsModel: false, text: 'no login for {v} full days (alert at {t})' },
  { id: SignalId.loginDays7, name: 'loginDays7', code: 'LOGIN_DAYS_7', affectedBy: bit(EventType.LOGIN), min: 0, max: 7, integer: true, needsModel: false, text: 'logged in on {v} of the last 7 days (threshold {t})' },
  { id: SignalId.loginDays28, name: 'loginDays28', code: 'LOGIN_DAYS_28', affectedBy: bit(EventType.LOGIN), min: 0, max: 28, integer: true, needsModel: false, text: 'logged in on {v} of the last 28 days (threshold {t})' },
  { id: SignalId.unfollowRatio7d, name: 'unfollowRatio7d', code: 'UNFOLLOW_BURST', affectedBy: bit(EventType.FOLLOW, EventType.UNFOLLOW), min: 0, max: 1, integer: false, needsModel: false, text: 'unfollowed {v%} of the creators they followed a week ago (alert at {t%})' },
  { id: SignalId.consumptionDrop, name: 'consumptionDrop', code: 'CONSUMPTION_DROP', affectedBy: 0, min: 0, max: 1, integer: false, needsModel: false, text: 'views this week down {v%} on their weekly average (alert at {t%})' },
  { id: SignalId.interactionDrop, name: 'interactionDrop', code: 'INTERACTION_DROP', affectedBy: 0, min: 0, max: 1, integer: false, needsModel: false, text: 'interactions this week down {v%} on their weekly average (alert at {t%})' },
  { id: SignalId.postDrop, name: 'postDrop', code: 'POST_DROP', affectedBy: 0, min: 0, max: 1, integer: false, needsModel: false, text: 'posts this week down {v%} on their weekly average (alert at {t%})' },
  { id: SignalId.rfmRecencyDays, name: 'rfmRecencyDays', code: 'PURCHASE_RECENCY', affectedBy: bit(EventType.PURCHASE), min: 0, max: 365, integer: true, needsModel: false, text: 'last purchase {v} days ago (threshold {t})' },
  { id: SignalId.rfmFrequency90d, name: 'rfmFrequency90d', code: 'ACTIVE_DAYS_90', affectedBy: ENGAGEMENT, min: 0, max: 90, integer: true, needsModel: false, text: 'active on {v} of the last 90 days (threshold {t})' },
  { id: SignalId.rfmMonetary90d, name: 'rfmMonetary90d', code: 'SPEND_90', affectedBy: bit(EventType.PURCHASE), min: 0, max: Number.MAX_VALUE, integer: false, needsModel: false, text: 'spent {v} in the last 90 days (threshold {t})' },
  { id: SignalId.responseRate, name: 'responseRate', code: 'RESPONSE_RATE', affectedBy: bit(EventType.MESSAGE_DELIVERED, EventType.MESSAGE_OPENED), min: 0, max: 1, integer: false, needsModel: false, text: 'opened {v%} of the messages delivered in 90 days (threshold {t%})' },
  { id: SignalId.accountAgeDays, name: 'accountAgeDays', code: 'ACCOUNT_AGE', affectedBy: 0, min: 0, max: 36500, integer: true, needsModel: false, text: 'account {v} days old (threshold {t})' },
  { id: SignalId.activeHour, name: 'activeHour', code: 'ACTIVE_HOUR', affectedBy: bit(EventType.LOGIN), min: 0, max: 23, integer: true, needsModel: false, text: 'usually logs in at {v}:00 (threshold {t})' },
  { id: SignalId.churnScore, name: 'churnScore', code: 'CHURN_SCORE', affectedBy: 0, min: 0, max: 1, integer: false, needsModel: true, text: 'churn model: {v%} chance of no login within 30 days (alert at {t%})' }
]

export const SIGNALS_BY_NAME: ReadonlyMap<string, SignalDefinition> = new Map(SIGNALS.map((s) => [s.name, s]))

/** The value of a signal for a user on a local day. A switch, not a table of closures: this runs per event. */
export function signalValue (id: SignalId, s: UserState, today: number, p: S.SignalParams): number {
  switch (id) {
    case SignalId.daysInactive: return S.daysInactive(s, today)
    case SignalId.loginDays7: return S.loginDays(s, today, 7)
    case SignalId.loginDays28: return S.loginDays(s, today, 28)
    case SignalId.unfollowRatio7d: return S.unfollowRatio(s, today, p)
    case SignalId.consumptionDrop: return S.consumptionDrop(s, today, p)
    case SignalId.interactionDrop: return S.interactionDrop(s, today, p)
    case SignalId.postDrop: return S.postDrop(s, today, p)
    case SignalId.rfmRecencyDays: return S.rfmRecency(s, today)
    case SignalId.rfmFrequency90d: return S.rfmFrequency(s, today)
    case SignalId.rfmMonetary90d: return S.rfmMonetary(s, today)
    case SignalId.responseRate: return S.responseRate(s, today)
    case SignalId.accountAgeDays: return S.accountAgeDays(s, today)
    case SignalId.activeHour: return S.activeHour(s)
    case SignalId.churnScore: return s.churnScore ?? Number.NaN
  }
}

/** All signals of a user on a day, by name (for the API, the demo and tests; not the hot path). */
export function allSignals (s: UserState, today: number, p: S.SignalParams): Record<string, number | string | null> {
  const out: Record<string, number | string | null> = {}
  for (const def of SIGNALS) {
    const v = signalValue(def.id, s, today, p)
    out[def.name] = Number.isNaN(v) ? null : v
  }
  out.valueTier = S.valueTier(s, today, p)
  out.responseTier = S.responseTier(s, today, p)
  return out
}
