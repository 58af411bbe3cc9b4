import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { isEbbError } from '../../src/errors.js'
import { LocalEngineView } from '../../src/http/engine-view.js'
import { buildServer } from '../../src/http/server.js'
import { RecentRecords } from '../../src/io/recent.js'
import { EbbMetrics } from '../../src/metrics/metrics.js'
import { alertsLikeTheta, chooseEarlierThan, chooseTheta, ChurnLearner, type Controller, countCrossings, gridIndexOfLogit, logit, sigmoid, THRESHOLD_GRID_SIZE, Z_SCALE } from '../../src/model/learner.js'
import { fitLogistic } from '../../src/model/logistic.js'
import { RecentReferenceAlerts } from '../../src/model/recent-alerts.js'
import { auc, calibration, quartiles } from '../../src/model/metrics.js'
import { loadModel, type ModelFile, modelReasons } from '../../src/model/model.js'
import { FEATURE_COUNT, FeatureId, FEATURES, spellFeatures } from '../../src/model/spell.js'
import { parseTopology } from '../../src/rules/topology.js'
import { TopologyTestDriver, type DriverEvent } from '../../src/runtime/test-driver.js'
import { UserState } from '../../src/state/user-state.js'
import { zoneClock } from '../../src/time/zones.js'
import { mulberry32 } from '../../src/sim/simulator.js'
import { at, handModel, tempDir } from '../helpers.js'

const tmp = tempDir('ebb-model-')
afterAll(() => { tmp.cleanup() })

function gauss (r: () => number): number { return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()) }

describe('fitting and measuring', () => {
  it('logistic regression recovers the weights a synthetic set was drawn with', () => {
    const r = mulberry32(7)
    const n = 40_000
    const d = 3
    const X = new Float64Array(n * d)
    const y = new Uint8Array(n)
    // Features with their own scale and offset: the fit standardises, so the recovered weight
    // per standard deviation is the true weight × the feature's sd.
    const scale = [1, 3, 0.5]
    const offset = [0, 10, -2]
    const w = [1.5, -0.8, 0.4]
    const b = -0.5
    for (let i = 0; i < n; i++) {
      let z = b
      for (let j = 0; j < d; j++) {
        const u = gauss(r)
        X[i * d + j] = offset[j] + scale[j] * u
        z += w[j] * u
      }
      y[i] = r() < 1 / (1 + Math.exp(-z)) ? 1 : 0
    }
    const fit = fitLogistic(X, y, n, d, { l2: 0 })
    for (let j = 0; j < d; j++) {
      expect(fit.mean[j]).toBeCloseTo(offset[j], 1)
      expect(fit.std[j]).toBeCloseTo(scale[j], 1)
      expect(Math.abs(fit.weights[j] - w[j])).toBeLessThan(0.06)
    }
    expect(Math.abs(fit.intercept - b)).toBeLessThan(0.06)
  })

  it('AUC counts ties as half, calibration bins and quartiles are what they say', () => {
    expect(auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBe(0.75)
    expect(auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1])).toBe(0.5)
    expect(auc([1, 2], [1, 1])).toBeNaN()
    const cal = calibration([0.05, 0.06, 0.95], [0, 1, 1])
    expect(cal[0]).toEqual({ from: 0, to: 0.1, count: 2, meanScore: 0.055, churnRate: 0.5 })
    expect(cal[9].count).toBe(1)
    expect(quartiles([4, 1, 3, 2, 5])).toEqual({ p25: 2, median: 3, p75: 4 })
  })
})

describe('the model file', () => {
  it('round-trips; an edited weight, another feature list or an old version is refused with what to do', () => {
    const m = handModel({ daysInactive: 0.8, silenceSurprise: 0.3 }, -1)
    const file = join(tmp.dir, 'hand.json')
    writeFileSync(file, JSON.stringify(m, null, 2))
    expect(loadModel(file).file).toEqual(m)
    const refused = (edit: (f: Record<string, unknown>) => void): string => {
      const f = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>
      edit(f)
      writeFileSync(join(tmp.dir, 'edited.json'), JSON.stringify(f))
      try { loadModel(join(tmp.dir, 'edited.json')); return '' } catch (err) { return isEbbError(err) ? `${err.code}: ${err.message}` : String(err) }
    }
    expect(refused((f) => { (f.prior as { weights: number[] }).weights[0] = 5 })).toMatch(/EBB_MODEL_INVALID: .*edited after `ebb train`/)
    expect(refused((f) => { (f.features as string[])[0] = 'moonPhase' })).toMatch(/"features" must be silenceSurprise, daysInactive/)
    expect(refused((f) => { f.version = 1 })).toMatch(/version 1 is not supported .*retrain it with `ebb train`/)
    expect(refused((f) => { (f.learning as { matureDays: number }).matureDays = 10 })).toMatch(/matureDays an integer in \[31, 60\]/)
  })

  it('a topology names its model relative to itself; a broken one, or a chosen threshold that cannot work, stops the load with file:line', () => {
    writeFileSync(join(tmp.dir, 'm.json'), JSON.stringify(handModel({ daysInactive: 1 }, 0)))
    const t = parseTopology('version: 1\nmodel: m.json\nrules:\n  - id: risk\n    when: [{ signal: churnScore, op: ">=", threshold: 0.5 }]\n', join(tmp.dir, 'topo.yaml'))
    expect(t.model?.kind).toBe('online-logistic')
    expect(t.rules[0].enabled).toBe(true)
    writeFileSync(join(tmp.dir, 'bad.json'), '{"format":"ebb.churn-model","version":9}')
    expect(() => parseTopology('version: 1\nmodel: bad.json\nrules:\n  - id: a\n    when: [{ signal: daysInactive, op: ">=", threshold: 7 }]\n', join(tmp.dir, 'topo.yaml'))).toThrow(/version 9 is not supported/)
    const bad = (threshold: string, extra = ''): string => {
      try {
        parseTopology(`version: 1\nmodel: m.json\nrules:\n  - id: week\n    when: [{ signal: daysInactive, op: ">=", threshold: 7 }]\n${extra}  - id: risk\n    when: [{ signal: churnScore, op: ">=", threshold: ${threshold} }]\n`, join(tmp.dir, 'topo.yaml'))
        return ''
      } catch (err) { return (err as Error).message }
    }
    expect(bad('{ alertsLike: nope }')).toMatch(/topo\.yaml:7: .*no rule "nope" \(rules: risk, week\)/)
    expect(bad('{ alertsLike: other }', '  - id: other\n    when: [{ signal: churnScore, op: ">=", threshold: 0.9 }]\n')).toMatch(/rule other uses churnScore itself/)
    expect(bad('{ alertsLike: week, precision: 0.5 }')).toMatch(/give exactly one of earlierThan, alertsLike, precisionLike, precision, alertsPer1kUsersPerDay, probability/)
    expect(bad('{ alertsLike: week, precisionAllowance: 0.01 }')).toMatch(/precisionAllowance goes with earlierThan/)
    expect(bad('{ earlierThan: week, precisionAllowance: 0.9 }')).toMatch(/precisionAllowance/)
    expect(bad('{ earlierThan: other }', '  - id: other\n    when: [{ signal: consumptionDrop, op: ">=", threshold: 0.6 }]\n')).toMatch(/rule other must have one condition, daysInactive >= N/)
    expect(bad('{ precision: 1.5 }')).toMatch(/precision/)
    expect(() => parseTopology('version: 1\nrules:\n  - id: a\n    when: [{ signal: daysInactive, op: ">=", threshold: { alertsLike: a } }]\n', join(tmp.dir, 'topo.yaml'))).toThrow(/only a churnScore threshold can be chosen/)
    const ok = parseTopology(`version: 1\nmodel: m.json\nrules:\n  - id: week\n    when: [{ signal: daysInactive, op: ">=", threshold: 7 }]\n  - id: risk\n    when: [{ signal: churnScore, op: ">=", threshold: { alertsLike: week } }]\n`, join(tmp.dir, 'topo.yaml'))
    expect(ok.modelThresholds).toEqual([{ spec: { kind: 'alertsLike', rule: 'week' }, refIndex: 1, refDays: 7 }]) // rules in id order: risk, week
    const et = parseTopology(`version: 1\nmodel: m.json\nrules:\n  - id: week\n    when: [{ signal: daysInactive, op: ">", threshold: 6 }]\n  - id: risk\n    when: [{ signal: churnScore, op: ">=", threshold: { earlierThan: week, precisionAllowance: 0.01 } }]\n`, join(tmp.dir, 'topo.yaml'))
    expect(et.modelThresholds).toEqual([{ spec: { kind: 'earlierThan', rule: 'week', allowance: 0.01 }, refIndex: 1, refDays: 7 }])
  })
})

const SH = 'Asia/Shanghai'
const ev = (userId: string, type: DriverEvent['type'], local: string): DriverEvent => ({ userId, type, ts: at(local), tz: SH })
/** Daily logins at 09:00 from 2026-03-02 (a Monday) for `days` days. */
const dailyLogins = (userId: string, days: number): DriverEvent[] => Array.from({ length: days }, (_, k) => ev(userId, 'LOGIN', `2026-03-${String(2 + k).padStart(2, '0')}T09:00`))

async function driverWith (model: ModelFile, threshold: string): Promise<TopologyTestDriver> {
  const file = join(tmp.dir, `m-${Math.random().toString(36).slice(2)}.json`)
  writeFileSync(file, JSON.stringify(model))
  return await TopologyTestDriver.create(parseTopology(`version: 1\nmodel: ${file}\nrules:\n  - id: week\n    when: [{ signal: daysInactive, op: ">=", threshold: 7 }]\n  - id: model_risk\n    when: [{ signal: churnScore, op: ">=", threshold: ${threshold} }]\n`, join(tmp.dir, 'topo.yaml')))
}

describe('the spell record and its features', () => {
  // u logs in every day 03-02 … 03-15 (two full weeks), then nothing. Frozen at 03-16 00:00:
  // 14 days seen, 14 logins; the population's chance is the prior's 0.5 (weight 1).
  //   q  = (14 + 2·0.5) / (14 + 2) = 0.9375               (the user's, shrunk to the population)
  //   q_w = (2 + 3·q) / (2 + 3) = 0.9625 for every weekday (each seen twice, shrunk to q)
  //   q7 = min(0.97, (7 + 3·q) / (7 + 3)) = 0.97           (the last week's)
  const q = 15 / 16
  const qw = (2 + 3 * q) / 5
  const quant = (v: number, scale: number): number => Math.round(v * scale) / scale
  const perDay = quant(-Math.log(1 - qw), 8192)
  const recent = quant(-Math.log(1 - 0.97), 8192)

  it('are the documented functions of the frozen rhythm and the silent days', async () => {
    const d = await driverWith(handModel({}, 0), '0.99')
    await d.pipe(...dailyLogins('u', 14))
    d.advanceTo(at('2026-03-18T00:00')) // Wednesday: 2 complete silent days (Mon, Tue)
    const s = d.user('u')
    if (s === undefined) throw new Error('no state')
    expect(s.spellDay).toBe(s.lastLoginDay)
    const x = new Float64Array(FEATURE_COUNT)
    spellFeatures(s, 2, x)
    expect(x[FeatureId.silenceSurprise]).toBeCloseTo(2 * perDay, 10)
    expect(x[FeatureId.daysInactive]).toBe(2)
    expect(x[FeatureId.fullWeek]).toBe(0)
    expect(x[FeatureId.recentSurprise]).toBeCloseTo(2 * recent, 10)
    expect(x[FeatureId.loginRate]).toBeCloseTo(quant(Math.log(q), 4096), 10)
    expect(x[FeatureId.beyondLongestGap]).toBe(2) // never a gap before: 2 silent days beyond 0
    expect(x[FeatureId.loginTrend]).toBe(0) // the last week as busy as the one before
    expect(x[FeatureId.viewDrop]).toBe(0) // no views at all: no baseline
    spellFeatures(s, 9, x)
    expect(x[FeatureId.fullWeek]).toBe(1)
    expect(x[FeatureId.silenceSurprise]).toBeCloseTo(9 * perDay, 10)
    spellFeatures(s, 45, x) // capped at the 30 days of the question
    expect(x[FeatureId.daysInactive]).toBe(30)
  })

  it('are finite for every user, including one seen once', async () => {
    const d = await driverWith(handModel({}, 0), '0.99')
    await d.pipe(ev('once', 'LOGIN', '2026-03-02T09:00'))
    d.advanceTo(at('2026-03-04T00:00'))
    const s = d.user('once')
    if (s === undefined) throw new Error('no state')
    const x = new Float64Array(FEATURE_COUNT).fill(Number.NaN)
    spellFeatures(s, 1, x)
    expect(FEATURES.filter((f) => !Number.isFinite(x[f.id])).map((f) => f.name)).toEqual([])
  })

  it('a weekly user is not surprising on the days they never come', async () => {
    // w comes on Saturdays only (03-07, 03-14, 03-21, 03-28); silent days Sun … Fri cost little, a Saturday much
    const d = await driverWith(handModel({}, 0), '0.99')
    await d.pipe(...['07', '14', '21', '28'].map((k) => ev('w', 'LOGIN', `2026-03-${k}T10:00`)))
    d.advanceTo(at('2026-04-06T00:00'))
    const s = d.user('w')
    if (s === undefined) throw new Error('no state')
    const x = new Float64Array(FEATURE_COUNT)
    spellFeatures(s, 6, x) // Sun … Fri
    const sixWeekdays = x[FeatureId.silenceSurprise]
    spellFeatures(s, 7, x) // … and the Saturday
    expect(x[FeatureId.silenceSurprise] - sixWeekdays).toBeGreaterThan(3 * sixWeekdays / 6)
  })
})

describe('scoring in the engine', () => {
  // score = σ(−5 + 0.5·silenceSurprise + 0.2·daysInactive)
  const model = handModel({ silenceSurprise: 0.5, daysInactive: 0.2 }, -5)

  it('churnScore is the hand-computed probability of each silent day, at each local midnight, and on read by the API', async () => {
    const d = await driverWith(model, '0.99')
    await d.pipe(...dailyLogins('u1', 14))
    const x = new Float64Array(FEATURE_COUNT)
    d.advanceTo(at('2026-03-16T00:00')) // 0 silent days
    const s = d.user('u1')
    if (s === undefined) throw new Error('no state')
    expect(s.churnScore).toBeCloseTo(sigmoid(-5), 12)
    d.advanceTo(at('2026-03-19T00:00')) // Thursday: 3 silent days
    spellFeatures(s, 3, x)
    expect(s.churnScore).toBeCloseTo(sigmoid(-5 + 0.5 * x[FeatureId.silenceSurprise] + 0.2 * 3), 12)
    const api = await buildServer({ engine: new LocalEngineView(d.task, new RecentRecords(10)), metrics: new EbbMetrics({ partitions: () => [] }) })
    try {
      expect((await api.inject('/users/u1')).json().churnScore).toBeCloseTo(sigmoid(-5 + 0.5 * x[FeatureId.silenceSurprise] + 0.6), 6)
    } finally { await api.close() }
  })

  it('a user who never logged in has no score, and a LOGIN answers the question: the score is gone until the next silence', async () => {
    const d = await driverWith(model, '0.99')
    await d.pipe(ev('v', 'VIEW', '2026-03-02T09:00'))
    d.advanceTo(at('2026-03-04T00:00'))
    expect(d.user('v')?.churnScore).toBeNull()
    await d.pipe(...dailyLogins('u', 3))
    d.advanceTo(at('2026-03-07T00:00'))
    expect(d.user('u')?.churnScore).not.toBeNull()
    await d.pipe(ev('u', 'LOGIN', '2026-03-07T09:00'))
    expect(d.user('u')?.churnScore).toBeNull()
    expect(d.user('u')?.spellDay).toBe(-2147483648)
  })

  it('a model alert fires on the first silent day over a fixed threshold, once per silence, with the score and its top features in words', async () => {
    const d = await driverWith(model, '0.5')
    await d.pipe(...dailyLogins('u3', 14))
    d.advanceTo(at('2026-03-25T00:00'))
    const x = new Float64Array(FEATURE_COUNT)
    const s = d.user('u3')
    if (s === undefined) throw new Error('no state')
    // first day with −5 + 0.5·S(d) + 0.2·d ≥ 0
    let first = 0
    for (; first < 30; first++) { spellFeatures(s, first, x); if (-5 + 0.5 * x[FeatureId.silenceSurprise] + 0.2 * first >= 0) break }
    const alerts = d.alertsOf('model_risk')
    expect(alerts.map((a) => a.firedAt)).toEqual([at(`2026-03-${String(16 + first).padStart(2, '0')}T00:00`)])
    const [a] = alerts
    expect(a.reasons[0]).toMatchObject({ code: 'CHURN_SCORE', op: '>=', threshold: 0.5 })
    expect(a.reasons[0].text).toMatch(/^churn model: \d+% chance of no login within 30 days \(alert at 50%, fixed at 0\.5\)$/)
    spellFeatures(s, first, x)
    const cS = 0.5 * x[FeatureId.silenceSurprise]
    const cD = 0.2 * first
    expect(a.reasons.slice(1).map((r) => r.code)).toEqual(['UNUSUAL_SILENCE', 'DAYS_INACTIVE'])
    expect(a.reasons[1].text).toMatch(new RegExp(`^${first} silent days are unusual for their rhythm .*\\(${Math.round(100 * cS / (cS + cD))}% of what raises the score\\)$`))
    expect(a.reasons[2].text).toBe(`no login for ${first} full days (${Math.round(100 * cD / (cS + cD))}% of what raises the score)`)
  })

  it('a feature that only reshapes another (its logarithm) is counted with it: one reason per thing the user did', () => {
    const x = new Float64Array(FEATURE_COUNT)
    x[FeatureId.daysInactive] = 5
    x[FeatureId.logDaysInactive] = Math.log1p(5)
    x[FeatureId.viewDrop] = 0.8
    const c = new Float64Array(FEATURE_COUNT)
    c[FeatureId.daysInactive] = 0.3
    c[FeatureId.logDaysInactive] = 0.5
    c[FeatureId.viewDrop] = 0.6
    c[FeatureId.logSilenceSurprise] = -0.2
    const reasons = modelReasons(c, x, 0.9, 2)
    // 0.3 + 0.5 for the silence's length outranks the view drop's 0.6; the negative share raises nothing
    expect(reasons.map((r) => r.code)).toEqual(['DAYS_INACTIVE', 'VIEWS_FALLING'])
    expect(reasons[0].text).toBe('no login for 5 full days (57% of what raises the score)')
    expect(reasons[0].threshold).toBeCloseTo(0.8, 10)
  })

  it('a change that raises the score by going up says "up" and has its own code, never "down -45%"', () => {
    const x = new Float64Array(FEATURE_COUNT)
    const c = new Float64Array(FEATURE_COUNT)
    x[FeatureId.viewDrop] = -0.87 // views rose 87%
    x[FeatureId.interactionDrop] = 0.45
    x[FeatureId.loginTrend] = Math.log(0.5) // login days halved
    c[FeatureId.viewDrop] = 0.3
    c[FeatureId.interactionDrop] = 0.2
    c[FeatureId.loginTrend] = 0.1
    const rose = modelReasons(c, x, 0.9, 2)
    expect(rose.map((r) => [r.code, r.text.replace(/ \(.*/, '')])).toEqual([
      ['VIEWS_RISING', 'views in their last active week up 87% on the weeks before'],
      ['INTERACTIONS_FALLING', 'interactions in their last active week down 45% on the weeks before'],
      ['LOGINS_FALLING', 'login days in their last active week down 50% on the 3 weeks before']
    ])
    x[FeatureId.interactionDrop] = -0.45
    x[FeatureId.loginTrend] = Math.log(1.5)
    expect(modelReasons(c, x, 0.9, 2).map((r) => [r.code, r.text.replace(/ \(.*/, '')]).slice(1)).toEqual([
      ['INTERACTIONS_RISING', 'interactions in their last active week up 45% on the weeks before'],
      ['LOGINS_RISING', 'login days in their last active week up 50% on the 3 weeks before']
    ])
  })
})

describe('the threshold controller', () => {
  const grid = (j: number): number => -8 + j * 0.125
  it('as many alerts as the reference: the lowest grid threshold whose first crossings are no more than its alerts', () => {
    const crossings = new Float64Array(THRESHOLD_GRID_SIZE)
    const none = new Float64Array(THRESHOLD_GRID_SIZE)
    // 100 spells whose scores climb to logits 0, 0.1, …, 9.9 (one crossing per grid step below each)
    for (let k = 0; k < 100; k++) countCrossings(-2147483648, Math.round(k * 0.1 * Z_SCALE), 0, crossings, none)
    // a reference of 40 alerts: the 40 highest spells reach 6.0 (logit ≥ 6.0 ↔ k ≥ 60)
    const theta = alertsLikeTheta(crossings, 40, 0)
    const reached = (t: number): number => { let n = 0; for (let k = 0; k < 100; k++) if (k * 0.1 >= t - 1e-9) n++; return n }
    expect(reached(theta)).toBeLessThanOrEqual(40)
    expect(reached(theta - 0.125)).toBeGreaterThan(40)
    expect(theta).toBe(grid(Math.round((theta + 8) / 0.125)))
  })

  it('a precision target takes the lowest threshold whose crossings predict at least it; a budget counts alerts per scored user', () => {
    const crossings = new Float64Array(THRESHOLD_GRID_SIZE)
    const p = new Float64Array(THRESHOLD_GRID_SIZE)
    // every grid threshold crossed 10 times, with the probability of its logit
    for (let j = 0; j < THRESHOLD_GRID_SIZE; j++) { crossings[j] = 10; p[j] = 10 * sigmoid(grid(j)) }
    const c = { spec: { kind: 'precision' as const, value: 0.6 }, refIndex: -1, refSlot: -1, refDays: Number.NaN, ref: 0, refP: 0, theta: 0, warm: true }
    expect(chooseTheta(c, crossings, p, 0)).toBe(grid(Math.ceil((logit(0.6) + 8) / 0.125)))
    const b = { ...c, spec: { kind: 'alertsPer1kUsersPerDay' as const, value: 5 } }
    // 10 000 scored user-days and 5/1000 of them: at most 50 alerts; thresholds from j = 124 cross 5 × 10
    for (let j = 0; j < THRESHOLD_GRID_SIZE; j++) crossings[j] = 10 * Math.max(0, THRESHOLD_GRID_SIZE - j)
    expect(chooseTheta(b, crossings, p, 10_000)).toBe(grid(THRESHOLD_GRID_SIZE - 5))
  })

  const earlierThanController = (): Controller => ({
    spec: { kind: 'earlierThan', rule: 'week', allowance: 0.015 }, refIndex: 1, refSlot: 1, refDays: 7, ref: 100, refP: 0, theta: 8, warm: true,
    veto: Number.NEGATIVE_INFINITY, short: new Float64Array(THRESHOLD_GRID_SIZE), refT: new Float64Array(THRESHOLD_GRID_SIZE), refF: new Float64Array(THRESHOLD_GRID_SIZE),
    vetoT: new Float64Array(THRESHOLD_GRID_SIZE), vetoF: new Float64Array(THRESHOLD_GRID_SIZE), vetoGone: new Float64Array(THRESHOLD_GRID_SIZE), vetoOthers: 0,
    vetoEarly: 1000 // churners the model told early: more than any veto below holds back
  })
  /** right and wrong reference alerts at logits: labelled (p) and recent (the veto), the wrong ones all held back for good by a veto */
  const labels = (c: Controller, right: number, atRight: number, wrong: number, atWrong: number): void => {
    c.refT[gridIndexOfLogit(atRight)] += right
    c.refF[gridIndexOfLogit(atWrong)] += wrong
    c.vetoT[gridIndexOfLogit(atRight)] += right
    c.vetoF[gridIndexOfLogit(atWrong)] += wrong
    c.vetoGone[gridIndexOfLogit(atWrong)] += wrong
  }

  it('earlierThan: no early alert before labels and short silences; then the veto that frees the most room postponing few right alerts, and a threshold within the room: from the top at once, then falling at most half a logit a day', () => {
    const c = earlierThanController()
    c.short[gridIndexOfLogit(-6)] = 990
    c.short[gridIndexOfLogit(1)] = 10
    chooseEarlierThan(c) // the reference's alerts have no labels yet: alert with it, no earlier, no veto
    expect([c.theta, c.veto]).toEqual([8, Number.NEGATIVE_INFINITY])
    // 60 right alerts at a high score, 40 wrong ones at a low one; p = (60 + 20) / (100 + 20)
    labels(c, 60, 2, 40, -4)
    chooseEarlierThan(c)
    // vetoing the low bin holds back the 40 wrong alerts for good (and postpones the one right alert assumed there)
    expect(c.veto).toBe(-4 + 0.125)
    // ... but not where the model told fewer churners early than that one: it would be later than the rule
    const late = { ...c, vetoEarly: 0.9 }
    chooseEarlierThan(late)
    expect(late.veto).toBe(Number.NEGATIVE_INFINITY)
    late.vetoEarly = 1
    chooseEarlierThan(late)
    expect(late.veto).toBe(-4 + 0.125)
    const p = 80 / 120
    const room = p / (p - 0.015) - 1 + 0.75 * 40 / 120 // three quarters of what the veto buys
    // room for 100 × room early false alarms: the 10 short silences that reached logit 1 fit, the 990 at −6 do not
    expect(100 * room).toBeGreaterThan(10)
    expect(100 * room).toBeLessThan(1000)
    // from the top of the grid (no early alert yet) at once: the lowest threshold above the 990
    expect(c.theta).toBe(-6 + 0.125)
    c.short[gridIndexOfLogit(1)] = 50 // more short silences high up than the room allows: the threshold rises at once
    chooseEarlierThan(c)
    const high = c.theta
    expect(high).toBeGreaterThan(1)
    c.short[gridIndexOfLogit(1)] = 10 // and back: it falls at most half a logit a day
    chooseEarlierThan(c)
    expect(c.theta).toBe(high - 0.5)
    for (let day = 0; day < 40; day++) chooseEarlierThan(c)
    expect(c.theta).toBe(-6 + 0.125)
    // right alerts in the vetoed bin: the veto would postpone more than 5% of them, so there is none, and less room
    c.vetoT[gridIndexOfLogit(-4)] = 10
    chooseEarlierThan(c)
    expect(c.veto).toBe(Number.NEGATIVE_INFINITY)
    c.short[gridIndexOfLogit(1)] = 50 // more short silences high up than the room without a veto allows: the threshold rises at once
    chooseEarlierThan(c)
    expect(c.theta).toBeGreaterThan(1)
  })

  const settle = (c: Controller, ...args: [number, number, number]): void => { for (let day = 0; day < 40; day++) chooseEarlierThan(c, ...args) }

  it('earlierThan before any label matured: the pending alerts a week old count, right unless a LOGIN proved them wrong; no veto yet', () => {
    const c = earlierThanController()
    c.short[gridIndexOfLogit(-6)] = 990
    c.short[gridIndexOfLogit(1)] = 3
    c.short[gridIndexOfLogit(2)] = 3
    settle(c, 19, 10) // fewer than 20 alerts with a week of answers: alert with the reference
    expect([c.theta, c.veto]).toEqual([8, Number.NEGATIVE_INFINITY])
    // 100 pending, none wrong yet: p = 120/120, room for 100 × 0.015/0.985 ≈ 1.5 early alarms, less
    // the one assumed beyond those seen: none of the short silences fits
    settle(c, 100, 0)
    expect(c.theta).toBe(2 + 0.125)
    // 40 of them wrong already: p = 80/120, room for ≈ 2.3: still not the 3 at logit 2 (3 + 1 > 2.3)
    settle(c, 100, 40)
    const room = (p: number): number => 100 * (p / (p - 0.015) - 1)
    expect(room(80 / 120)).toBeLessThan(3 + 1)
    expect(c.theta).toBe(2 + 0.125)
    // 90 wrong: p = 30/120, room for ≈ 6.4: the 3 at logit 2 fit (3 + 1 ≤ 6.4), the 6 down to logit 1 do not (6 + 1 > 6.4)
    settle(c, 100, 90)
    expect(room(30 / 120)).toBeGreaterThan(3 + 1)
    expect(room(30 / 120)).toBeLessThan(6 + 1)
    expect(c.theta).toBe(1 + 0.125)
    expect(c.veto).toBe(Number.NEGATIVE_INFINITY) // a veto needs labelled alerts, whose scores it knows
  })

  it('earlierThan: the statistics are relative to the intercept\'s drift, so the threshold and the veto move with it', () => {
    const a = earlierThanController()
    a.short[gridIndexOfLogit(-6)] = 990
    a.short[gridIndexOfLogit(1)] = 10
    labels(a, 60, 2, 40, -4)
    const b = { ...a, short: a.short.slice(), refT: a.refT.slice(), refF: a.refF.slice(), vetoT: a.vetoT.slice(), vetoF: a.vetoF.slice(), vetoGone: a.vetoGone.slice() }
    settle(a, 0, 0, 0)
    settle(b, 0, 0, 1.5)
    expect(a.veto).toBe(-4 + 0.125)
    expect([b.theta, b.veto]).toEqual([a.theta + 1.5, a.veto + 1.5])
  })

  type Buckets = { buckets: Map<number, { ref: Float64Array, fired: Float64Array }>, bucketOf: (day: number) => { ref: Float64Array, fired: Float64Array } }
  const driftModel = (): ReturnType<typeof loadModel> => {
    const file = join(tmp.dir, 'drift-model.json')
    writeFileSync(file, JSON.stringify(handModel({}, -3, { learn: true })))
    return loadModel(file)
  }
  const earlierThanSpecs = [{ spec: { kind: 'earlierThan' as const, rule: 'week', allowance: 0.015 }, refIndex: 1, refDays: 7, refSlot: 1 }]

  it('earlierThan: the rule\'s pending alerts count per bucket a week old or more, never more wrong than counted, none from a bucket whose count is unknown', () => {
    const l = new ChurnLearner(driftModel(), earlierThanSpecs)
    const b = l as unknown as Buckets
    const G = THRESHOLD_GRID_SIZE
    l.day = 20_020
    const put = (day: number, fired: number, wrong: number): void => { const k = b.bucketOf(day); k.fired[0] = fired; k.ref[G + gridIndexOfLogit(0)] = wrong; k.ref[gridIndexOfLogit(1)] = 99 /* right labels: not pending */ }
    put(20_000, 10, 3)
    put(20_010, 2, 5) // more wrong labels than alerts counted (a skipped day): 2 wrong at most
    put(20_015, 4, 0) // 5 days old: not yet
    put(20_005, Number.NaN, 6) // unknown count
    // counted right: the 7 not wrong yet of the first bucket (no returns seen: each stays right)
    expect(l.pendingReference(0)).toEqual([12, 5, 7])
  })

  it('earlierThan: the statistics start with the first short silence of a known user; the rule\'s alerts count from that day, and no threshold before they have run the rule\'s days', () => {
    const l = new ChurnLearner(driftModel(), earlierThanSpecs)
    const c = l.controllers[0]
    l.roll(20_000)
    const ruleAlerts = (n: number): void => { for (let i = 0; i < n; i++) l.referenceAlert(earlierThanSpecs[0].refIndex, 0.5) }
    ruleAlerts(60)
    expect(c.ref).toBe(0) // no short silence counted yet: these days say nothing of early false alarms
    const s = new UserState('u', zoneClock('UTC'))
    s.spellDay = 19_995
    s.spellScored = 3 // ended on its third silent day, before the rule's seventh
    s.spellMax = Math.round(-6 * Z_SCALE) // at a score of logit −6
    l.silenceEnded(s, false) // a user the model does not know yet: not counted
    expect(Number.isNaN(c.since)).toBe(true)
    for (let i = 0; i < 400; i++) l.silenceEnded(s, true)
    expect(c.since).toBe(20_000)
    ruleAlerts(60)
    expect(c.ref).toBe(60)
    // 30 of the rule's alerts a week old, 25 already proved wrong: p = (5 + 20) / (30 + 20)
    const k = (l as unknown as Buckets).bucketOf(19_990)
    k.fired[0] = 30
    k.ref[THRESHOLD_GRID_SIZE + gridIndexOfLogit(0)] = 25
    l.roll(20_006)
    expect(c.theta).toBe(8) // six days of short silences: the longest ones are missing, no threshold yet
    l.roll(20_007)
    // the seventh: from the top at once to the lowest threshold above every short silence
    // (60 × 0.93⁷ alerts in the room × (0.5/0.485 − 1) ≈ 1.3: no short silence fits with the one assumed beyond)
    expect(c.theta).toBe(-6 + 0.125)
  })

  it('earlierThan: a pending alert counts as right with the chance the rule\'s recent alerts of its age stayed right (Kaplan–Meier), 1 where too few were seen', () => {
    const l = new ChurnLearner(driftModel(), earlierThanSpecs)
    l.roll(20_100)
    const slot = earlierThanSpecs[0].refSlot
    const silence = (scored: number, user: string): UserState => { const s = new UserState(user, zoneClock('UTC')); s.spellDay = 20_070; s.spellScored = scored; return s }
    // 40 alerts of day 20 075 (25 days old): 10 came back 2 days after the alert, 4 after 12 days
    for (let i = 0; i < 40; i++) {
      l.recent.add(20_075, slot, false, true, silence(40, `u${i}`))
      // the alert's day scored silent day 7 (8 days scored); a LOGIN j days later leaves 8 + j
      if (i < 10) l.recent.add(20_075, slot, true, true, silence(8 + 2, `u${i}`))
      else if (i < 14) l.recent.add(20_075, slot, true, true, silence(8 + 12, `u${i}`))
    }
    // 5 alerts of day 20 097 (3 days old), none back yet: censored, at risk for ages 0–2 only
    for (let i = 0; i < 5; i++) l.recent.add(20_097, slot, false, true, silence(40, `w${i}`))
    ;(l as unknown as { vetoStatistics: () => void }).vetoStatistics()
    const stay = l.controllers[0].stayRight
    expect(stay[0]).toBeCloseTo((1 - 10 / 45) * (1 - 4 / 30), 12) // at risk at age 2: 40 + 5
    expect(stay[2]).toBeCloseTo((1 - 10 / 45) * (1 - 4 / 30), 12)
    expect(stay[3]).toBeCloseTo(1 - 4 / 30, 12) // at age 12: the 30 of day 20 075 not back yet
    expect(stay[12]).toBeCloseTo(1 - 4 / 30, 12)
    expect(stay[13]).toBe(1)
    expect(stay[29]).toBe(1) // not seen past 25 days: counted as no return (p only too high)
    // Fewer than 20 at risk say nothing: 10 alerts, 9 back the next day, count as staying right.
    const few = new ChurnLearner(driftModel(), earlierThanSpecs)
    few.roll(20_100)
    for (let i = 0; i < 10; i++) {
      few.recent.add(20_090, slot, false, true, silence(40, `v${i}`))
      if (i < 9) few.recent.add(20_090, slot, true, true, silence(8 + 1, `v${i}`))
    }
    ;(few as unknown as { vetoStatistics: () => void }).vetoStatistics()
    expect([...few.controllers[0].stayRight].every((x) => x === 1)).toBe(true)
    // A bucket of alerts 10 days old: 20 fired, 5 wrong already; the other 15 count as 15 × (1 − 4/30).
    const b = (l as unknown as Buckets).bucketOf(20_090)
    b.fired[0] = 20
    b.ref[THRESHOLD_GRID_SIZE + gridIndexOfLogit(0)] = 5
    const [fired, wrong, right] = l.pendingReference(0)
    expect([fired, wrong]).toEqual([20, 5])
    expect(right).toBeCloseTo(15 * (1 - 4 / 30), 12)
  })

  /** A store batch that records what a drain puts (latin1 key → a copy of the value) and deletes, into `puts` (default a new map). */
  const recordingBatch = (puts = new Map<string, Buffer>()): { batch: Parameters<ChurnLearner['drain']>[0], puts: Map<string, Buffer>, dels: string[] } => {
    const dels: string[] = []
    const batch = { put: (k: Buffer, v: Buffer) => { puts.set(k.toString('latin1'), Buffer.from(v)) }, del: (k: Buffer) => { dels.push(k.toString('latin1')) }, write: async () => {}, discard: () => {} }
    return { batch, puts, dels }
  }

  /** A read-only store over the key → value map a learner's drain wrote (latin1 keys). */
  const mapStore = (entries: Map<string, Buffer>): Parameters<ChurnLearner['load']>[0] => ({
    getMany: async (keys: Buffer[]) => keys.map((k) => entries.get(k.toString('latin1'))),
    scanSync: (gte: Buffer, lte: Buffer) => {
      const rows = [...entries].filter(([k]) => Buffer.from(k, 'latin1').compare(gte) >= 0 && Buffer.from(k, 'latin1').compare(lte) <= 0).sort(([a], [b]) => Buffer.from(a, 'latin1').compare(Buffer.from(b, 'latin1')))
      let at = 0
      const next = (n: number): Array<[Buffer, Buffer]> => {
        const page = rows.slice(at, at + n)
        at += page.length
        return page.map(([k, v]) => [Buffer.from(k, 'latin1'), v])
      }
      return { next, close: () => {} }
    }
  } as unknown as Parameters<ChurnLearner['load']>[0])

  it('earlierThan: the veto counts the rule\'s recent alerts a week old or more with today\'s scores, as held back for good only the wrong ones that would not come back, and only for users it can hold back; they survive a restart and an ERASE removes a user\'s', async () => {
    // z = −10 + daysInactive: −3 on the rule's day 7, −2 … 3 on days 8 … 13
    const file = join(tmp.dir, 'veto-model.json')
    writeFileSync(file, JSON.stringify(handModel({ daysInactive: 1 }, -10)))
    const model = loadModel(file)
    const l = new ChurnLearner(model, earlierThanSpecs)
    l.roll(20_100) // the first midnight: the learner's day, to be committed
    const slot = earlierThanSpecs[0].refSlot
    const silence = (scored: number, user = 'u'): UserState => { const s = new UserState(user, zoneClock('UTC')); s.spellDay = 20_080; s.spellScored = scored; return s }
    const alert = (day: number, scored: number, wrong: boolean, known = true, user = 'u'): void => {
      l.recent.add(day, slot, false, known, silence(scored, user))
      if (wrong) l.recent.add(day, slot, true, known, silence(scored, user))
    }
    alert(20_090, 30, false) // right (no LOGIN yet), 10 days old
    alert(20_097, 30, false) // 3 days old: not counted yet
    alert(20_090, 10, true) // wrong: its silence ended on day 9, under the threshold all along: held back for good
    alert(20_090, 12, true) // wrong: day 11 reached the threshold (z = 1 ≥ 0.5): a vetoed alert would have come back
    alert(20_090, 15, true) // wrong: silent past day 14, where a vetoed alert comes back anyway
    alert(20_097, 9, true) // wrong, but 3 days old like its alert: not counted yet
    alert(20_090, 10, true, false) // a user the model does not alert early for: in the total only
    alert(19_900, 30, false) // 200 days old: dropped
    alert(20_090, 10, true, true, 'erased') // a user who will be erased
    const statistics = (x: ChurnLearner, theta = 0.5): number[] => {
      const k = x.controllers[0]
      k.theta = theta
      ;(x as unknown as { vetoStatistics: () => void }).vetoStatistics()
      const j = gridIndexOfLogit(-3)
      return [k.vetoT[j], k.vetoF[j], k.vetoGone[j], k.vetoT.reduce((a, b) => a + b, 0), k.vetoOthers, k.vetoEarly]
    }
    const w = 0.98 ** 3 // 10 days old: three days of the model's memory past the week
    expect(statistics(l)[2]).toBeCloseTo(2 * w, 12) // the erased user's wrong alert is still in
    l.forget('erased')
    const got = statistics(l)
    expect(got[0]).toBeCloseTo(w, 12) // four alerts of day 20 090 less the three proved wrong
    expect(got[1]).toBeCloseTo(3 * w, 12)
    expect(got[2]).toBeCloseTo(w, 12)
    expect(got[3]).toBeCloseTo(w, 12) // nothing elsewhere on the grid: the 200-day-old alert is gone
    expect(got[4]).toBeCloseTo(w, 12)
    expect(got[5]).toBe(0) // the right one's silence was under the threshold before the rule's day (z ≤ −4 on day 6)
    // A threshold at or under the rule's day's score: the model alerts then anyway, no veto holds any back.
    expect(statistics(l, -3.5)[2]).toBe(0)
    // A threshold its day 6 reached (z = −4): that churner was told early, and counts as such.
    expect(statistics(l, -4)[5]).toBeCloseTo(w, 12)
    expect(statistics(l, -3.875)[5]).toBe(0)
    // Committed and loaded by a new learner: the same statistics, the dropped day deleted, the erased user's day rewritten without them.
    const { batch, puts: written, dels: deleted } = recordingBatch()
    l.drain(batch)
    expect(deleted).toEqual(['mlearner-r19900.0'])
    expect([...written.keys()].filter((k) => k.startsWith('mlearner-r')).sort()).toEqual(['mlearner-r20090.0', 'mlearner-r20097.0'])
    expect(written.get('mlearner-r20090.0')?.length).toBe(9 * 2 * 20) // 4 alerts, 3 wrong, the unknown user's alert and wrong label
    const again = new ChurnLearner(model, earlierThanSpecs)
    await again.load(mapStore(written))
    expect(statistics(again)).toEqual(got)
  })

  it('earlierThan: a fold that moves the slopes moves the short silences\' statistics by the mean change it gives the first silent days of the rule\'s recent alerts, less the intercept\'s', () => {
    // z = −10 + daysInactive: −9, −8, −7 on silent days 1–3
    const file = join(tmp.dir, 'follow-model.json')
    writeFileSync(file, JSON.stringify(handModel({ daysInactive: 1 }, -10)))
    const l = new ChurnLearner(loadModel(file), earlierThanSpecs)
    l.roll(20_100)
    const slot = earlierThanSpecs[0].refSlot
    const silence = (user: string): UserState => { const s = new UserState(user, zoneClock('UTC')); s.spellDay = 20_080; s.spellScored = 30; return s }
    l.recent.add(20_090, slot, false, true, silence('a'))
    l.recent.add(20_091, slot, false, true, silence('b'))
    l.recent.add(20_091, slot, true, true, silence('b')) // b's LOGIN: the same silence filed again, counted once
    const c = l.controllers[0]
    c.short[40] = 7
    c.short[100] = 3
    const x = l as unknown as { earlyScores: () => Float64Array, followShortSilences: (b: Float64Array, interceptBefore: number) => void, mu: Float64Array }
    const fold = (intercept: number, slope: number): void => {
      const before = x.earlyScores()
      expect(before).toHaveLength(6) // two silences, three days each
      const interceptBefore = x.mu[0]
      x.mu[0] += intercept
      x.mu[1 + FEATURES.findIndex((f) => f.name === 'daysInactive')] += slope
      x.followShortSilences(before, interceptBefore)
    }
    // intercept +0.5 and the silence's length weighs 1.5: days 1–3 gain 1, 1.5 and 2, of which
    // 0.5 is the intercept's (the statistics are relative to it already): one logit, 8 grid steps up
    fold(0.5, 0.5)
    expect([c.short[48], c.short[108], c.short.reduce((a, b) => a + b, 0)]).toEqual([7, 3, 10])
    // the intercept alone: nothing moves
    fold(-2, 0)
    expect([c.short[48], c.short[108]]).toEqual([7, 3])
    // slopes down by 0.25 a day: −0.5 on average, 4 steps down
    fold(0, -0.25)
    expect([c.short[44], c.short[104], c.short.reduce((a, b) => a + b, 0)]).toEqual([7, 3, 10])
  })

  it('recent reference alerts: stored in chunks of 256, a commit rewrites only the chunks that grew, an ERASE rewrites the day and deletes the chunks past its new end', () => {
    const r = new RecentReferenceAlerts()
    const state = (user: string): UserState => { const s = new UserState(user, zoneClock('UTC')); s.spellDay = 20_000; s.spellScored = 8; return s }
    const drained = (): { put: Map<string, number>, del: string[] } => {
      const { batch, puts, dels } = recordingBatch()
      r.drain(batch)
      r.committed()
      return { put: new Map([...puts].map(([k, v]) => [k, v.length / 40])), del: dels }
    }
    for (let i = 0; i < 300; i++) r.add(20_010, 1, false, true, state(i % 2 === 0 ? 'a' : 'b'))
    expect(drained()).toEqual({ put: new Map([['mlearner-r20010.0', 256], ['mlearner-r20010.1', 44]]), del: [] })
    r.add(20_010, 1, true, true, state('b'))
    expect(drained()).toEqual({ put: new Map([['mlearner-r20010.1', 45]]), del: [] })
    r.forget('a')
    expect(r.size).toBe(151)
    expect(drained()).toEqual({ put: new Map([['mlearner-r20010.0', 151]]), del: ['mlearner-r20010.1'] })
    r.expire(20_010 + 91)
    expect(drained()).toEqual({ put: new Map(), del: ['mlearner-r20010.0'] })
  })

  it('earlierThan: a version-2 state (absolute scores) is shifted once on load and written back, and the days before it count no alert', async () => {
    const model = driftModel()
    const first = new ChurnLearner(model, earlierThanSpecs)
    first.mu[0] += 1 // the stream moved the intercept a logit up: 8 grid steps
    first.day = 20_010
    first.controllers[0].short[gridIndexOfLogit(0)] = 5
    first.controllers[0].since = 20_003
    const bucket = (first as unknown as Buckets).bucketOf(20_000)
    bucket.ref[THRESHOLD_GRID_SIZE + gridIndexOfLogit(0)] = 2 // two wrong reference alerts at logit 0
    bucket.fired[0] = 7
    const drainInto = (l: ChurnLearner, into: Map<string, Buffer>): Map<string, Buffer> => {
      l.drain(recordingBatch(into).batch)
      return into
    }
    const written = drainInto(first, new Map())
    const loadFrom = async (entries: Map<string, Buffer>): Promise<ChurnLearner> => {
      const l = new ChurnLearner(model, earlierThanSpecs)
      await l.load(mapStore(entries))
      return l
    }
    const bucketsOf = (l: ChurnLearner): Buckets['buckets'] => (l as unknown as Buckets).buckets
    const same = await loadFrom(written)
    expect(same.controllers[0].short[gridIndexOfLogit(0)]).toBe(5)
    expect(same.controllers[0].since).toBe(20_003)
    expect(bucketsOf(same).get(20_000)?.fired[0]).toBe(7)
    expect([...bucketsOf(same).keys()]).toEqual([20_000])
    // The same state as version 2 wrote it: core version 2 without the day the statistics started
    // (the last number of the controller, before the buckets' days), buckets without the alerts raised.
    const withoutSince = (v: Buffer): Buffer => {
      const numbers = (v.length - 32) / 8
      const at = 32 + (numbers - v.readDoubleLE(32 + 4 * 8) - 1) * 8
      return Buffer.concat([v.subarray(0, at), v.subarray(at + 8)])
    }
    const legacy = new Map(written)
    for (const [k, v] of legacy) {
      if (k.endsWith('learner')) { const c = withoutSince(v); c.writeDoubleLE(2, 32); legacy.set(k, c) } else legacy.set(k, v.subarray(0, v.length - 8))
    }
    const old = await loadFrom(legacy)
    expect(old.controllers[0].since).toBe(Number.NEGATIVE_INFINITY) // statistics that go on as they were
    // Version 3 (scores already relative to the drift, no start day): read as it is, not shifted.
    const v3 = new Map(written)
    for (const [k, v] of v3) if (k.endsWith('learner')) { const c = withoutSince(v); c.writeDoubleLE(3, 32); v3.set(k, c) }
    const three = await loadFrom(v3)
    expect(three.controllers[0].short[gridIndexOfLogit(0)]).toBe(5)
    expect(three.controllers[0].since).toBe(Number.NEGATIVE_INFINITY)
    expect(old.controllers[0].short[gridIndexOfLogit(-1)]).toBe(5)
    expect(old.controllers[0].short[gridIndexOfLogit(0)]).toBe(0)
    const oldBucket = bucketsOf(old).get(20_000)
    expect(oldBucket?.ref[THRESHOLD_GRID_SIZE + gridIndexOfLogit(-1)]).toBe(2)
    expect(Number.isNaN(oldBucket?.fired[0])).toBe(true)
    // every day up to the state's whose alerts were not counted: a label of one later counts no alert
    expect(Number.isNaN(bucketsOf(old).get(20_009)?.fired[0])).toBe(true)
    // Its next commit writes it back (the buckets in the new layout, the core as version 4):
    // loaded again, shifted once, not twice.
    const again = await loadFrom(drainInto(old, new Map(legacy)))
    expect(again.controllers[0].short[gridIndexOfLogit(-1)]).toBe(5)
    expect(again.controllers[0].since).toBe(Number.NEGATIVE_INFINITY)
    expect(bucketsOf(again).get(20_000)?.ref[THRESHOLD_GRID_SIZE + gridIndexOfLogit(-1)]).toBe(2)
  })

  it('until the reference has alerted 20 times, the model rule alerts as the reference does', async () => {
    const d = await driverWith(handModel({ daysInactive: 1 }, -50), '{ alertsLike: week }') // a score that never crosses
    // 25 users known for two weeks reach 7 silent days at the same midnight (03-23 00:00), fired
    // in userId order, rules in id order (model_risk before week) for each: the model rule alerts
    // with the first 20; week's 20th alert warms it up, and from the next user on its own
    // (unreachable) threshold holds.
    const all = Array.from({ length: 25 }, (_, u) => dailyLogins(`u${10 + u}`, 14)).flat()
    await d.pipe(...all.sort((a, b) => (a.ts as number) - (b.ts as number)))
    d.advanceTo(at('2026-03-24T00:00'))
    expect(d.alertsOf('week')).toHaveLength(25)
    const risk = d.alertsOf('model_risk')
    expect(risk.map((a) => a.userId)).toEqual(Array.from({ length: 20 }, (_, k) => `u${10 + k}`))
    expect(risk.every((a) => a.reasons[0].code === 'DAYS_INACTIVE' && /alerts like week until that rule has alerted 20 times/.test(a.reasons[0].text))).toBe(true)
    expect(d.task.learner?.warming(0)).toBe(false)
  })
})
