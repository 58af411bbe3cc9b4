import type { AlertRecord, Reason } from '../io/records.js'
import { type ChurnLearner, thresholdSpecText } from '../model/learner.js'
import { modelReasons } from '../model/model.js'
import { MIN_EVIDENCE_DAYS, spellLoginRate, spellLongestGap } from '../model/spell.js'
import { signalValue } from '../signals/registry.js'
import { daysInactive, responseTier, valueTier } from '../signals/signals.js'
import type { UserState } from '../state/user-state.js'
import { conditionsHold } from './conditions.js'
import { RuleSlots } from './slots.js'
import type { Condition, Rule, Topology } from './topology.js'

/** Where a fired alert goes next (the partition task runs the stages after the rules). */
export type AlertHandler = (s: UserState, alert: AlertRecord, rule: Rule, today: number, at: number) => void

/**
 * Edge-triggered rules grouped into risk episodes (docs/rules.md).
 *
 * Per user, two bit sets: ruleCond (the condition was true at the last evaluation) and
 * ruleFired (the rule fired in the open episode). A rule fires when its condition turns true
 * (false → true) and it has not fired in this episode. The first alert opens an episode; a LOGIN
 * after that closes it (closeEpisodeOnLogin), which lets every rule fire again at its next edge.
 */
export class RuleEvaluator {
  private readonly rules: readonly Rule[]
  private readonly hasModelRule: boolean[]
  readonly alertsByRule: Map<string, number>

  /** bit mask of the enabled rules on churnScore: a LOGIN resets their condition (a new question starts) */
  readonly modelRules: number

  /**
   * `emit` receives each alert as it fires, with the user and the instant: the partition task
   * hands it to the next stages in order (the recall stage decides, then the sink writes it).
   */
  constructor (private readonly topology: Topology, private readonly emit: AlertHandler, alertsByRule: Map<string, number>,
    private readonly learner: ChurnLearner | null = null, private readonly slots: RuleSlots = RuleSlots.ofTopology(topology)) {
    this.rules = topology.rules.filter((r) => r.enabled)
    this.hasModelRule = topology.rules.map((r) => r.when.some((c) => c.signal.needsModel))
    this.alertsByRule = alertsByRule
    let mask = 0
    for (const r of this.rules) if (this.hasModelRule[r.index]) mask |= slots.bit(r.index)
    this.modelRules = mask
  }

  /**
   * Evaluates the rules in `mask` (bits by rule.index) for a user on local day `today`; `at` is
   * the event time the evaluation stands for. The user's rule bits are the rules' slots (slots.ts).
   */
  evaluate (s: UserState, mask: number, today: number, at: number): void {
    const rules = this.rules
    const slotOf = this.slots.slotOf
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]
      if ((mask & (1 << rule.index)) === 0) continue
      const bit = 1 << slotOf[rule.index]
      if (conditionsHold(rule.when, s, today, this.topology.params, this.learner)) {
        if ((s.ruleCond & bit) !== 0) continue
        s.ruleCond |= bit
        if ((s.ruleFired & bit) === 0) this.fire(s, rule, today, at)
      } else {
        s.ruleCond &= ~bit
      }
    }
  }

  /** A LOGIN after the episode opened closes it. */
  closeEpisodeOnLogin (s: UserState, loginTs: number): void {
    if (s.episodeOpenTs !== 0 && loginTs > s.episodeOpenTs) {
      s.episodeOpenTs = 0
      s.ruleFired = 0
    }
  }

  /** The reason of a churnScore condition: the probability in words, the threshold and how it was chosen (or that the rule alerts like its reference for now). */
  private modelReason (c: Condition, s: UserState, today: number): Reason {
    const learner = this.learner
    const v = s.churnScore ?? Number.NaN
    let t = c.threshold
    let how = `fixed at ${c.threshold}`
    if (c.auto >= 0 && learner !== null) {
      const spec = this.topology.modelThresholds[c.auto].spec
      const fallback = learner.fallbackDays(c.auto, s)
      if (!Number.isNaN(fallback)) {
        const d = daysInactive(s, today)
        const warmUp = spec.kind === 'earlierThan'
          ? 'until it has counted 20 of that rule\'s alerts on this partition (from the first silence of a user it knows that ended before that rule alerted)'
          : 'until that rule has alerted 20 times on this partition'
        const why = learner.warming(c.auto) ? warmUp : `for a user it has known for less than ${MIN_EVIDENCE_DAYS} days`
        return {
          code: 'DAYS_INACTIVE',
          signal: 'daysInactive',
          value: d,
          op: '>=',
          threshold: fallback,
          text: `no login for ${d} full days: the churn model alerts like ${(spec as { rule: string }).rule} ${why} (then its threshold is ${thresholdSpecText(spec)})`
        }
      }
      t = learner.threshold(c.auto)
      how = thresholdSpecText(spec)
      const latest = learner.latestDays(c.auto)
      const d = daysInactive(s, today)
      if (d > latest) how = `${how}; held back on day ${latest} by its veto, when ${(spec as { rule: string }).rule} alerted`
      if (d > latest && !(v >= t)) {
        // postponed by the veto on the reference's day, and not reached the threshold since
        return {
          code: 'DAYS_INACTIVE',
          signal: 'daysInactive',
          value: d,
          op: '>=',
          threshold: 2 * latest,
          text: `no login for ${d} full days: the churn model held its alert back on day ${latest}, when ${(spec as { rule: string }).rule} alerted (its score was low enough to expect a login), and alerts now, ${d - latest} days later (its score, ${Math.round(v * 100)}%, is under the ${Math.round(t * 100)}% of an earlier alert)`
        }
      }
      if (d === latest && !(v >= t)) {
        const veto = learner.vetoBelow(c.auto)
        return {
          code: 'DAYS_INACTIVE',
          signal: 'daysInactive',
          value: d,
          op: '>=',
          threshold: latest,
          text: `no login for ${d} full days: the churn model alerts with ${(spec as { rule: string }).rule} (its score, ${Math.round(v * 100)}%, is under the ${Math.round(t * 100)}% of an earlier alert${veto > 0 ? ` and not under the ${Math.round(veto * 100)}% at which it would hold the alert back` : ''})`
        }
      }
    }
    return {
      code: c.signal.code,
      signal: c.signal.name,
      value: Math.round(v * 1e6) / 1e6,
      op: c.op,
      threshold: Math.round(t * 1e6) / 1e6,
      text: `churn model: ${Math.round(v * 100)}% chance of no login within 30 days (alert at ${Math.round(t * 100)}%, ${how})`
    }
  }

  private fire (s: UserState, rule: Rule, today: number, at: number): void {
    if (s.episodeOpenTs === 0) s.episodeOpenTs = at
    s.ruleFired |= this.slots.bit(rule.index)
    const episodeId = episodeIdOf(s.userId, s.episodeOpenTs)
    const p = this.topology.params
    const reasons: Reason[] = rule.when.map((c) => c.signal.needsModel ? this.modelReason(c, s, today) : reasonOf(c, signalValue(c.signalId, s, today, p)))
    // A model alert explains its score: the features that raise it most (docs/rules.md).
    const learner = this.learner
    if (this.hasModelRule[rule.index] && learner !== null && s.churnScore !== null) {
      const { contributions, features } = learner.explain(s, daysInactive(s, today))
      for (const r of modelReasons(contributions, features, spellLoginRate(s), spellLongestGap(s))) reasons.push(r)
    }
    const alert: AlertRecord = {
      alertId: `${episodeId}:${rule.id}`,
      userId: s.userId,
      episodeId,
      rule: rule.id,
      firedAt: at,
      score: this.hasModelRule[rule.index] ? s.churnScore : null,
      reasons,
      churnType: null,
      valueTier: valueTier(s, today, p),
      responseTier: responseTier(s, today, p),
      arm: null,
      decision: null,
      taskId: null
    }
    this.alertsByRule.set(rule.id, (this.alertsByRule.get(rule.id) ?? 0) + 1)
    // The reference of a relative model threshold: counted with the model's view of the user.
    if (learner?.isReference(rule.index) === true) learner.referenceAlert(rule.index, s.churnScore ?? Number.NaN)
    this.emit(s, alert, rule, today, at)
  }
}

/** Deterministic: the user and the event time of the episode's first alert. */
export function episodeIdOf (userId: string, openTs: number): string {
  return `${userId}:${openTs}`
}

function fmt (x: number, percent: boolean): string {
  if (percent) return `${Math.round(x * 100)}%`
  return Number.isInteger(x) ? String(x) : x.toFixed(2)
}

export function reasonOf (c: Condition, value: number): Reason {
  const text = c.signal.text
    .replace('{v%}', fmt(value, true)).replace('{t%}', fmt(c.threshold, true))
    .replace('{v}', fmt(value, false)).replace('{t}', fmt(c.threshold, false))
  return { code: c.signal.code, signal: c.signal.name, value: Math.round(value * 1e6) / 1e6, op: c.op, threshold: c.threshold, text }
}
