import { signalValue } from '../signals/registry.js'
import { daysInactive, type SignalParams } from '../signals/signals.js'
import type { UserState } from '../state/user-state.js'
import type { Condition } from './topology.js'

/**
 * Conditions on signals, the leaf both stages read: the rules (src/rules/evaluator.ts) and the
 * churn types of the recall stage (src/intervention/). It knows signals, nothing of either stage.
 */

/** The thresholds a partition's learner chooses (Condition.auto indexes them). */
export interface ThresholdSource {
  threshold: (auto: number) => number
  /** when the rule should alert like its reference for this user (warming up, or a user not known yet): the reference's daysInactive threshold; else NaN */
  fallbackDays: (auto: number, s: UserState) => number
  /** the daysInactive at which the rule alerts whatever the score (an earlierThan threshold: its reference's), else NaN */
  latestDays: (auto: number) => number
  /** under this probability the rule does not alert at latestDays (the model is confident the user is still around): it alerts later, when its score reaches the threshold, at the latest at 2 × latestDays */
  vetoBelow: (auto: number) => number
}

/** Whether every condition holds for a user on local day `today` (rules and churn types). */
export function conditionsHold (when: readonly Condition[], s: UserState, today: number, p: SignalParams, thresholds: ThresholdSource | null = null): boolean {
  for (let i = 0; i < when.length; i++) {
    const c = when[i]
    let v = signalValue(c.signalId, s, today, p)
    let t = c.threshold
    let op = c.op
    if (c.auto >= 0 && thresholds !== null) {
      const fallback = thresholds.fallbackDays(c.auto, s)
      if (Number.isNaN(fallback)) {
        t = thresholds.threshold(c.auto)
        const latest = thresholds.latestDays(c.auto)
        if (!Number.isNaN(latest)) {
          // earlierThan: before the reference's day on the score; on its day also unless the
          // score is under the veto (an unknown score does not veto); after it, a vetoed silence
          // is postponed, not dropped: it alerts once its score reaches the early threshold, and
          // at the latest on twice the reference's day (7 → 14: a week later). A silence already
          // alerted does not fire again: the rule fired in this episode.
          const d = daysInactive(s, today)
          if (d === latest ? v >= t || !(v < thresholds.vetoBelow(c.auto)) : v >= t || d >= 2 * latest) continue
          return false
        }
      } else { v = daysInactive(s, today); t = fallback; op = '>=' }
    }
    // NaN (an undefined signal) fails every comparison.
    const ok = op === '>=' ? v >= t : op === '>' ? v > t : op === '<=' ? v <= t : v < t
    if (!ok) return false
  }
  return true
}
