import { isMap, isScalar, isSeq, type Node } from 'yaml'
import { readConfigText, YamlDoc } from '../config/yaml.js'
import { type InterventionConfig, parseIntervention } from '../intervention/config.js'
import { EVENT_TYPES } from '../events/user-event.js'
import { SIGNALS_BY_NAME, type SignalDefinition, type SignalId } from '../signals/registry.js'
import { DEFAULT_SIGNAL_PARAMS, type SignalParams } from '../signals/signals.js'
import { COUNT_DAYS, DROP_WINDOW_DAYS, FOLLOW_DAYS } from '../state/user-state.js'
import { isKnownZone } from '../time/zones.js'
import { type ChurnModel, loadModel } from '../model/model.js'
import type { ThresholdSpec } from '../model/learner.js'
import { isAbsolute, dirname, resolve } from 'node:path'

export type Op = '>=' | '>' | '<=' | '<'
const OPS: readonly Op[] = ['>=', '>', '<=', '<']
/**
 * earlierThan's default: the model's alerts may be this much less precise than its reference's
 * (1.5 points), leaving room within the 2 points an operator would call "as precise" for the
 * estimate's noise (docs/churn-model.md, "The threshold").
 */
export const DEFAULT_PRECISION_ALLOWANCE = 0.015

export interface Condition {
  readonly signal: SignalDefinition
  readonly signalId: SignalId
  readonly op: Op
  /** the threshold; for a churnScore condition with a chosen threshold, its prior (the partition's learner moves it) */
  readonly threshold: number
  /** index into Topology.modelThresholds when the threshold is chosen by the learner, else -1 */
  readonly auto: number
}

/** A churnScore threshold that the partition's learner chooses (`threshold: { alertsLike: inactive_7d }`). */
export interface ModelThreshold {
  readonly spec: ThresholdSpec
  /** the index of the reference rule (alertsLike, precisionLike), else -1 */
  readonly refIndex: number
  /** when the reference is `daysInactive >= c` alone: c (the model rule alerts with it while it warms up), else NaN */
  readonly refDays: number
}

export interface Rule {
  readonly id: string
  readonly index: number
  readonly description: string
  readonly when: readonly Condition[]
  /** false when the rule needs something the topology lacks (a model); see disabledReason */
  readonly enabled: boolean
  readonly disabledReason?: string
}

export interface Topology {
  readonly file: string
  readonly defaultTimezone: string
  readonly allowedLatenessMs: number
  readonly graceMs: number
  /**
   * Bounded event time (docs/time.md): an event dated more than this after stream time does not
   * move it by itself; it waits for the partition's next event to confirm it (or goes to the
   * dead letters as `future`).
   */
  readonly maxStepMs: number
  /** Kafka: an event dated more than this after its record's broker timestamp is `future` (Infinity: off) */
  readonly maxAheadOfRecordMs: number
  readonly params: SignalParams
  /**
   * The rule ids in the file's order. Rules run in id order (`rules`); state written before a
   * store kept its rule map indexed the rules in file order (src/rules/slots.ts reads it so).
   */
  readonly ruleIdsInFileOrder: readonly string[]
  readonly modelPath: string | null
  /** the churn model `model:` names (loaded and checked with the topology); scores churnScore */
  readonly model: ChurnModel | null
  readonly rules: readonly Rule[]
  /** per event type: bit mask of enabled rules whose signals that event type can move */
  readonly rulesByEventType: Int32Array
  /** bit mask of every enabled rule: evaluated at each user's local midnight */
  readonly timerRules: number
  /** a user is watched by daily timers until this many days after their last activity */
  readonly timerHorizonDays: number
  /** the recall-task stage (README, "From alert to recall task"); null: alerts only */
  readonly intervention: InterventionConfig | null
  /** churnScore thresholds chosen by each partition's learner (docs/churn-model.md) */
  readonly modelThresholds: readonly ModelThreshold[]
}

export const MAX_RULES = 31

/**
 * Loads and validates a topology file. Every problem is reported as `file:line: what is wrong`
 * (EBB_TOPOLOGY_INVALID, exit 2), so a typo never turns into a rule that silently never fires.
 */
export function loadTopology (file: string, opts: TopologyOptions = {}): Topology {
  return parseTopology(readConfigText(file), file, opts)
}

export interface TopologyOptions {
  /** false: do not read the model file (`ebb train`, which writes one, replays with a neutral model) */
  loadModel?: boolean
}

export function parseTopology (text: string, file: string, opts: TopologyOptions = {}): Topology {
  const y = new YamlDoc(text, file)
  const root = y.root
  if (!isMap(root)) return y.fail(root, 'the topology must be a YAML mapping')
  const fail = (node: Node | null | undefined, what: string): never => y.fail(node, what)
  const get = (map: Node | null | undefined, key: string): Node | undefined => y.get(map, key)
  const onlyKeys = (map: Node | undefined, where: string, allowed: readonly string[]): void => { y.onlyKeys(map, where, allowed) }
  const num = (node: Node | undefined, where: string, dflt: number, min: number, max: number, integer = false): number => y.num(node, where, dflt, min, max, integer)
  const duration = (node: Node | undefined, where: string, dflt: number): number => y.duration(node, where, dflt)
  onlyKeys(root, 'topology', ['version', 'defaultTimezone', 'time', 'signals', 'model', 'rules', 'intervention'])

  const version = get(root, 'version')
  if (version === undefined || !isScalar(version) || version.value !== 1) fail(version ?? root, 'version: expected 1')

  const tzNode = get(root, 'defaultTimezone')
  const defaultTimezone = tzNode !== undefined && isScalar(tzNode) ? String(tzNode.value) : 'Asia/Shanghai'
  if (!isKnownZone(defaultTimezone)) fail(tzNode, `defaultTimezone: "${defaultTimezone}" is not an IANA time zone`)

  const time = get(root, 'time')
  onlyKeys(time, 'time', ['allowedLateness', 'grace', 'future'])
  const allowedLatenessMs = duration(get(time, 'allowedLateness'), 'time.allowedLateness', 5 * 60_000)
  const graceMs = duration(get(time, 'grace'), 'time.grace', 86_400_000)
  const future = get(time, 'future')
  onlyKeys(future, 'time.future', ['maxStep', 'maxAheadOfRecord'])
  const maxStepMs = duration(get(future, 'maxStep'), 'time.future.maxStep', 86_400_000)
  if (maxStepMs < 1000) fail(get(future, 'maxStep'), 'time.future.maxStep: at least 1s')
  const aheadNode = get(future, 'maxAheadOfRecord')
  const maxAheadOfRecordMs = aheadNode !== undefined && isScalar(aheadNode) && aheadNode.value === 'off' ? Number.POSITIVE_INFINITY : duration(aheadNode, 'time.future.maxAheadOfRecord', 3_600_000)
  if (allowedLatenessMs > 7 * 86_400_000) fail(get(time, 'allowedLateness'), 'time.allowedLateness: at most 7d')
  if (graceMs > 30 * 86_400_000) fail(get(time, 'grace'), 'time.grace: at most 30d (state windows are 35 days)')

  const sig = get(root, 'signals')
  const d = DEFAULT_SIGNAL_PARAMS
  const uf = get(sig, 'unfollowRatio7d')
  const drops = get(sig, 'drops')
  const rfm = get(sig, 'rfm')
  const resp = get(sig, 'responseRate')
  onlyKeys(sig, 'signals', ['unfollowRatio7d', 'drops', 'rfm', 'responseRate'])
  onlyKeys(uf, 'signals.unfollowRatio7d', ['windowDays', 'minFollowBase'])
  onlyKeys(drops, 'signals.drops', ['recentDays', 'baselineDays', 'minWeeklyViews', 'minWeeklyInteractions', 'minWeeklyPosts'])
  onlyKeys(rfm, 'signals.rfm', ['high', 'mid'])
  onlyKeys(get(rfm, 'high'), 'signals.rfm.high', ['monetary', 'activeDays'])
  onlyKeys(get(rfm, 'mid'), 'signals.rfm.mid', ['monetary', 'activeDays'])
  onlyKeys(resp, 'signals.responseRate', ['high', 'mid'])
  const params: SignalParams = {
    unfollowWindowDays: num(get(uf, 'windowDays'), 'signals.unfollowRatio7d.windowDays', d.unfollowWindowDays, 1, FOLLOW_DAYS, true),
    minFollowBase: num(get(uf, 'minFollowBase'), 'signals.unfollowRatio7d.minFollowBase', d.minFollowBase, 1, 1e6, true),
    drop: {
      recentDays: num(get(drops, 'recentDays'), 'signals.drops.recentDays', d.drop.recentDays, 1, 28, true),
      baselineDays: num(get(drops, 'baselineDays'), 'signals.drops.baselineDays', d.drop.baselineDays, 7, 34, true),
      minWeeklyViews: num(get(drops, 'minWeeklyViews'), 'signals.drops.minWeeklyViews', d.drop.minWeeklyViews, 0.1, 1e6),
      minWeeklyInteractions: num(get(drops, 'minWeeklyInteractions'), 'signals.drops.minWeeklyInteractions', d.drop.minWeeklyInteractions, 0.1, 1e6),
      minWeeklyPosts: num(get(drops, 'minWeeklyPosts'), 'signals.drops.minWeeklyPosts', d.drop.minWeeklyPosts, 0.1, 1e6)
    },
    rfm: {
      highMonetary: num(get(get(rfm, 'high'), 'monetary'), 'signals.rfm.high.monetary', d.rfm.highMonetary, 0, 1e12),
      highFrequency: num(get(get(rfm, 'high'), 'activeDays'), 'signals.rfm.high.activeDays', d.rfm.highFrequency, 1, 90, true),
      midMonetary: num(get(get(rfm, 'mid'), 'monetary'), 'signals.rfm.mid.monetary', d.rfm.midMonetary, 0, 1e12),
      midFrequency: num(get(get(rfm, 'mid'), 'activeDays'), 'signals.rfm.mid.activeDays', d.rfm.midFrequency, 1, 90, true)
    },
    response: {
      high: num(get(resp, 'high'), 'signals.responseRate.high', d.response.high, 0, 1),
      mid: num(get(resp, 'mid'), 'signals.responseRate.mid', d.response.mid, 0, 1)
    }
  }
  if (params.drop.recentDays + params.drop.baselineDays > DROP_WINDOW_DAYS) fail(get(drops, 'baselineDays') ?? drops, `signals.drops: recentDays + baselineDays is ${params.drop.recentDays + params.drop.baselineDays}; the state keeps ${DROP_WINDOW_DAYS} complete days`)
  if (params.rfm.midMonetary > params.rfm.highMonetary) fail(get(get(rfm, 'mid'), 'monetary'), 'signals.rfm.mid.monetary: above high.monetary')
  if (params.rfm.midFrequency > params.rfm.highFrequency) fail(get(get(rfm, 'mid'), 'activeDays'), 'signals.rfm.mid.activeDays: above high.activeDays')
  if (params.response.mid > params.response.high) fail(get(resp, 'mid'), 'signals.responseRate.mid: above high')

  const modelNode = get(root, 'model')
  const modelName = modelNode !== undefined && isScalar(modelNode) && modelNode.value !== null ? String(modelNode.value) : null
  // Relative to the topology file, like the plan library.
  const modelPath = modelName === null ? null : isAbsolute(modelName) ? modelName : resolve(dirname(file), modelName)

  const modelThresholds: Array<{ spec: ThresholdSpec, refIndex: number, refNode: Node | undefined }> = []
  /** One `{ signal, op, threshold }` condition (rules and churn types). */
  const condition = (cn: Node, where: string, allowAuto = false): Condition => {
    onlyKeys(cn, `${where}: condition`, ['signal', 'op', 'threshold'])
    const sNode = get(cn, 'signal')
    const name = sNode !== undefined && isScalar(sNode) ? String(sNode.value) : ''
    const def = SIGNALS_BY_NAME.get(name)
    if (def === undefined) return fail(sNode ?? cn, `${where}: unknown signal "${name}" (known: ${[...SIGNALS_BY_NAME.keys()].join(', ')})`)
    const opNode = get(cn, 'op')
    const op = (opNode !== undefined && isScalar(opNode) ? String(opNode.value) : '') as Op
    if (!OPS.includes(op)) fail(opNode ?? cn, `${where}: op "${op}" must be one of ${OPS.join(' ')}`)
    const tNode = get(cn, 'threshold') ?? fail(cn, `${where}: condition needs a threshold`)
    if (isMap(tNode)) {
      if (!def.needsModel) fail(tNode, `${where}: only a churnScore threshold can be chosen by the model (${name} needs a number)`)
      if (!allowAuto) fail(tNode, `${where}: a chosen churnScore threshold is for rules; give a number here`)
      if (op !== '>=' && op !== '>') fail(opNode, `${where}: a chosen churnScore threshold needs op ">=" or ">"`)
      const spec = thresholdSpec(tNode, `${where}: threshold`)
      modelThresholds.push({ spec, refIndex: -1, refNode: tNode })
      return { signal: def, signalId: def.id, op, threshold: 0.5, auto: modelThresholds.length - 1 }
    }
    const threshold = num(tNode, `${where}: threshold for ${name}`, 0, def.min, def.max, def.integer)
    return { signal: def, signalId: def.id, op, threshold, auto: -1 }
  }
  /** `{ earlierThan: R[, precisionAllowance: D] }`, `{ alertsLike: R }`, `{ precisionLike: R }`, `{ precision: P }`, `{ alertsPer1kUsersPerDay: X }` or `{ probability: P }`. */
  const thresholdSpec = (tNode: Node, where: string): ThresholdSpec => {
    const kinds = ['earlierThan', 'alertsLike', 'precisionLike', 'precision', 'alertsPer1kUsersPerDay', 'probability']
    onlyKeys(tNode, where, [...kinds, 'precisionAllowance'])
    const present = kinds.filter((k) => get(tNode, k) !== undefined)
    if (present.length !== 1) fail(tNode, `${where}: give exactly one of ${kinds.join(', ')}`)
    const kind = present[0]
    const v = get(tNode, kind)
    const allowance = get(tNode, 'precisionAllowance')
    if (allowance !== undefined && kind !== 'earlierThan') fail(allowance, `${where}: precisionAllowance goes with earlierThan`)
    if (kind === 'earlierThan') {
      const rule = v !== undefined && isScalar(v) ? String(v.value) : ''
      return { kind, rule, allowance: allowance === undefined ? DEFAULT_PRECISION_ALLOWANCE : num(allowance, `${where}.precisionAllowance`, DEFAULT_PRECISION_ALLOWANCE, 0, 0.5) }
    }
    if (kind === 'alertsLike' || kind === 'precisionLike') {
      const rule = v !== undefined && isScalar(v) ? String(v.value) : ''
      return { kind, rule }
    }
    if (kind === 'alertsPer1kUsersPerDay') return { kind, value: num(v, `${where}.${kind}`, 1, 0.001, 1000) }
    return { kind: kind as 'precision' | 'probability', value: num(v, `${where}.${kind}`, 0.5, 0.001, 0.999) }
  }

  const rulesNode = get(root, 'rules')
  if (!isSeq(rulesNode) || rulesNode.items.length === 0) return fail(rulesNode ?? root, 'rules: expected a non-empty list')
  if (rulesNode.items.length > MAX_RULES) fail(rulesNode, `rules: at most ${MAX_RULES}`)
  const rules: Rule[] = []
  const ids = new Set<string>()
  rulesNode.items.forEach((item, index) => {
    const node = item as Node
    if (!isMap(node)) fail(node, 'rules: each rule is a mapping with id and when')
    onlyKeys(node, 'rule', ['id', 'description', 'when'])
    const idNode = get(node, 'id')
    const id = idNode !== undefined && isScalar(idNode) ? String(idNode.value) : ''
    if (!/^[a-z][a-z0-9_]{0,63}$/.test(id)) fail(idNode ?? node, `rule id "${id}" must be lower_snake_case`)
    if (ids.has(id)) fail(idNode, `rule id "${id}" is used twice`)
    ids.add(id)
    const descNode = get(node, 'description')
    const whenNode = get(node, 'when')
    if (!isSeq(whenNode) || whenNode.items.length === 0) throw fail(whenNode ?? node, `rule ${id}: "when" must list at least one condition`)
    const when: Condition[] = whenNode.items.map((c) => condition(c as Node, `rule ${id}`, true))
    const needsModel = when.some((c) => c.signal.needsModel)
    const enabled = !needsModel || modelPath !== null
    rules.push({
      id, index, description: descNode !== undefined && isScalar(descNode) ? String(descNode.value) : '', when, enabled,
      disabledReason: enabled ? undefined : 'needs a churn model: set `model:` in the topology'
    })
  })

  // Rules run in id order, not file order: rules that fire at the same instant emit their alerts
  // (and the first of an episode takes the recall task) the same way however the file is
  // arranged, so reordering the rules of a topology changes no output (docs/rules.md).
  const ruleIdsInFileOrder = rules.map((r) => r.id)
  rules.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  rules.forEach((r, i) => { (r as { index: number }).index = i })

  // A relative threshold names another rule, which must exist, run, and not depend on the model.
  const resolvedThresholds: ModelThreshold[] = modelThresholds.map((t) => {
    if (t.spec.kind !== 'alertsLike' && t.spec.kind !== 'precisionLike' && t.spec.kind !== 'earlierThan') return { spec: t.spec, refIndex: -1, refDays: Number.NaN }
    const ref = rules.find((r) => r.id === (t.spec as { rule: string }).rule)
    const where = `threshold: ${t.spec.kind}`
    if (ref === undefined) return fail(t.refNode, `${where}: no rule "${t.spec.rule}" (rules: ${rules.map((r) => r.id).join(', ')})`)
    if (ref.when.some((c) => c.signal.needsModel)) return fail(t.refNode, `${where}: rule ${ref.id} uses churnScore itself; name a rule that does not`)
    const only = ref.when.length === 1 ? ref.when[0] : undefined
    const refDays = only !== undefined && only.signal.name === 'daysInactive' && (only.op === '>=' || only.op === '>') ? only.threshold + (only.op === '>' ? 1 : 0) : Number.NaN
    if (t.spec.kind === 'earlierThan' && Number.isNaN(refDays)) fail(t.refNode, `${where}: rule ${ref.id} must have one condition, daysInactive >= N: the model alerts at the latest when it does`)
    return { spec: t.spec, refIndex: ref.index, refDays }
  })
  const rulesByEventType = new Int32Array(EVENT_TYPES.length)
  let timerRules = 0
  let horizon = COUNT_DAYS
  for (const r of rules) {
    if (!r.enabled) continue
    timerRules |= 1 << r.index
    for (const c of r.when) {
      for (let t = 0; t < EVENT_TYPES.length; t++) if ((c.signal.affectedBy & (1 << t)) !== 0) rulesByEventType[t] |= 1 << r.index
      if (c.signal.name === 'daysInactive') horizon = Math.max(horizon, c.threshold + 2)
    }
  }
  const interventionNode = get(root, 'intervention')
  const intervention = interventionNode === undefined ? null : parseIntervention(y, interventionNode, condition, modelPath !== null)
  // Loaded last: a mistake in the topology itself is reported first.
  const model = modelPath === null || opts.loadModel === false ? null : loadModel(modelPath)
  return { file, defaultTimezone, allowedLatenessMs, graceMs, maxStepMs, maxAheadOfRecordMs, params, modelPath, model, rules, ruleIdsInFileOrder, rulesByEventType, timerRules, timerHorizonDays: horizon, intervention, modelThresholds: resolvedThresholds }
}
