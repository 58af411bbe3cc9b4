import type { InterventionStage } from '../intervention/intervention-stage.js'
import type { AlertRecord, Reason } from '../io/records.js'
import type { OutputSink } from '../io/sinks.js'
import { signalValue } from '../signals/registry.js'
import { responseTier, type SignalParams, valueTier } from '../signals/signals.js'
import type { UserState } from '../state/user-state.js'
import type { Condition, Rule, Topology } from './topology.js'

/**
 * Edge-triggered rules grouped into risk episodes (SPEC §4).
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

  constructor (private readonly topology: Topology, private readonly sink: OutputSink, alertsByRule: Map<string, number>, private readonly intervention: InterventionStage | null = null) {
    this.rules = topology.rules.filter((r) => r.enabled)
    this.hasModelRule = topology.rules.map((r) => r.when.some((c) => c.signal.needsModel))
    this.alertsByRule = alertsByRule
  }

  /** Evaluates the rules in `mask` for a user on local day `today`; `at` is the event time the evaluation stands for. */
  evaluate (s: UserState, mask: number, today: number, at: number): void {
    const rules = this.rules
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]
      const bit = 1 << rule.index
      if ((mask & bit) === 0) continue
      if (conditionsHold(rule.when, s, today, this.topology.params)) {
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

  private fire (s: UserState, rule: Rule, today: number, at: number): void {
    if (s.episodeOpenTs === 0) s.episodeOpenTs = at
    s.ruleFired |= 1 << rule.index
    const episodeId = episodeIdOf(s.userId, s.episodeOpenTs)
    const p = this.topology.params
    const reasons: Reason[] = rule.when.map((c) => reasonOf(c, signalValue(c.signalId, s, today, p)))
    // A model alert explains its score: the features that raise it most (SPEC §4).
    const model = this.topology.model
    if (this.hasModelRule[rule.index] && model !== null) for (const r of model.reasons(s, today, at, p)) reasons.push(r)
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
    // The decision fields are filled before the alert leaves, so every alert says what was done.
    if (this.intervention !== null) this.intervention.decide(s, alert, rule, today, at)
    this.sink.alert(alert)
  }
}

/** Whether every condition holds for a user on local day `today` (rules and churn types). */
export function conditionsHold (when: readonly Condition[], s: UserState, today: number, p: SignalParams): boolean {
  for (let i = 0; i < when.length; i++) {
    const c = when[i]
    const v = signalValue(c.signalId, s, today, p)
    // NaN (an undefined signal) fails every comparison.
    const ok = c.op === '>=' ? v >= c.threshold : c.op === '>' ? v > c.threshold : c.op === '<=' ? v <= c.threshold : v < c.threshold
    if (!ok) return false
  }
  return true
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
