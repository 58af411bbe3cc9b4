import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { isEbbError } from '../../src/errors.js'
import { LocalEngineView } from '../../src/http/engine-view.js'
import { buildServer } from '../../src/http/server.js'
import { RecentRecords } from '../../src/io/recent.js'
import { EbbMetrics } from '../../src/metrics/metrics.js'
import { computeFeatures, FEATURE_COUNT, FeatureId, FEATURES } from '../../src/model/features.js'
import { fitGbt } from '../../src/model/gbt.js'
import { fitLogistic } from '../../src/model/logistic.js'
import { auc, calibration, quartiles } from '../../src/model/metrics.js'
import { ChurnModel, loadModel, type LogisticModelFile } from '../../src/model/model.js'
import { parseTopology } from '../../src/rules/topology.js'
import { TopologyTestDriver, type DriverEvent } from '../../src/runtime/test-driver.js'
import { DEFAULT_SIGNAL_PARAMS } from '../../src/signals/signals.js'
import { mulberry32 } from '../../src/sim/simulator.js'
import { at, handModel, tempDir } from '../helpers.js'

const tmp = tempDir('ebb-model-')
afterAll(() => { tmp.cleanup() })

function gauss (r: () => number): number { return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()) }

describe('training', () => {
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

  it('gradient-boosted trees learn an interaction a linear model cannot', () => {
    // churn when silent long AND usually frequent (an AND of two features): trees split on both
    const r = mulberry32(3)
    const n = 20_000
    const X = new Float64Array(n * 2)
    const y = new Uint8Array(n)
    for (let i = 0; i < n; i++) {
      const a = r()
      const b = r()
      X[i * 2] = a
      X[i * 2 + 1] = b
      y[i] = (a > 0.5) !== (b > 0.5) ? (r() < 0.9 ? 1 : 0) : (r() < 0.1 ? 1 : 0)
    }
    const trees = fitGbt(X, y, n, 2, { rounds: 30, depth: 2 })
    const lr = fitLogistic(X, y, n, 2)
    const pTrees = new Float64Array(n)
    const pLr = new Float64Array(n)
    for (let i = 0; i < n; i++) {
      let z = trees.baseScore
      for (const t of trees.trees) { let k = 0; while (t.feature[k] >= 0) k = X[i * 2 + t.feature[k]] <= t.threshold[k] ? t.left[k] : t.right[k]; z += t.value[k] }
      pTrees[i] = z
      pLr[i] = lr.intercept + lr.weights[0] * (X[i * 2] - lr.mean[0]) / lr.std[0] + lr.weights[1] * (X[i * 2 + 1] - lr.mean[1]) / lr.std[1]
    }
    expect(auc(pTrees, y)).toBeGreaterThan(0.85)
    expect(auc(pLr, y)).toBeLessThan(0.6)
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
  it('round-trips: written, loaded and scored, it gives the same probabilities; an edited weight is refused', () => {
    const m = handModel(['daysInactive', 'loginDays7'], [1, 3], [2, 2], [0.8, -0.5], -1)
    const file = join(tmp.dir, 'hand.json')
    writeFileSync(file, JSON.stringify(m, null, 2))
    const loaded = loadModel(file)
    expect(loaded.file).toEqual(m)
    const x = new Float64Array(FEATURE_COUNT)
    x[FeatureId.daysInactive] = 3
    x[FeatureId.loginDays7] = 2
    expect(loaded.scoreFeatures(x)).toBe(new ChurnModel(m).scoreFeatures(x))

    const edited = JSON.parse(readFileSync(file, 'utf8')) as LogisticModelFile
    edited.weights[0] = 5
    writeFileSync(file, JSON.stringify(edited))
    const err = ((): unknown => { try { loadModel(file); return null } catch (e) { return e } })()
    expect(isEbbError(err) && err.code).toBe('EBB_MODEL_INVALID')
    expect((err as Error).message).toMatch(/edited after `ebb train`/)

    writeFileSync(file, JSON.stringify(handModel(['daysInactive', 'moonPhase'], [0, 0], [1, 1], [1, 1], 0)))
    expect(() => loadModel(file)).toThrow(/unknown feature "moonPhase"/)
  })

  it('a topology names its model relative to itself, and a broken one stops the load with EBB_MODEL_INVALID', () => {
    writeFileSync(join(tmp.dir, 'm.json'), JSON.stringify(handModel(['daysInactive'], [0], [1], [1], 0)))
    const t = parseTopology('version: 1\nmodel: m.json\nrules:\n  - id: risk\n    when: [{ signal: churnScore, op: ">=", threshold: 0.5 }]\n', join(tmp.dir, 'topo.yaml'))
    expect(t.model?.kind).toBe('logistic')
    expect(t.rules[0].enabled).toBe(true)
    writeFileSync(join(tmp.dir, 'bad.json'), '{"format":"ebb.churn-model","version":9}')
    expect(() => parseTopology('version: 1\nmodel: bad.json\nrules:\n  - id: a\n    when: [{ signal: daysInactive, op: ">=", threshold: 7 }]\n', join(tmp.dir, 'topo.yaml')))
      .toThrow(/version 9 is not supported/)
  })
})

describe('scoring in the engine', () => {
  const SH = 'Asia/Shanghai'
  const ev = (userId: string, type: DriverEvent['type'], local: string): DriverEvent => ({ userId, type, ts: at(local), tz: SH })
  const setup = async (threshold: number): Promise<TopologyTestDriver> => {
    writeFileSync(join(tmp.dir, 'score.json'), JSON.stringify(handModel(['daysInactive', 'loginDays7'], [1, 3], [2, 2], [0.8, -0.5], -1)))
    const t = parseTopology(`version: 1\nmodel: score.json\nrules:\n  - id: model_risk\n    when: [{ signal: churnScore, op: ">=", threshold: ${threshold} }]\n`, join(tmp.dir, 'topo.yaml'))
    return await TopologyTestDriver.create(t)
  }

  it('churnScore equals the hand-computed probability: stored at each local midnight, scored on read by the API', async () => {
    const d = await setup(0.99)
    await d.pipe(ev('u1', 'LOGIN', '2026-03-02T09:00'), ev('u1', 'LOGIN', '2026-03-03T09:00'))
    // Stored: the score of Tuesday 00:00, the last midnight (daysInactive 0, loginDays7 1)
    // → z = −1 + 0.8·(0−1)/2 − 0.5·(1−3)/2 = −0.9; an event does not move it.
    expect(d.user('u1')?.churnScore).toBeCloseTo(1 / (1 + Math.exp(0.9)), 12)
    // Read through the API: scored now, after the second login (daysInactive 0, loginDays7 2)
    // → z = −1 + 0.8·(0−1)/2 − 0.5·(2−3)/2 = −1.15
    const api = await buildServer({ engine: new LocalEngineView(d.task, new RecentRecords(10)), metrics: new EbbMetrics({ partitions: () => [] }) })
    try {
      const u = (await api.inject('/users/u1')).json()
      expect(u.churnScore).toBeCloseTo(1 / (1 + Math.exp(1.15)), 12)
    } finally { await api.close() }
    d.advanceTo(at('2026-03-07T00:00'))
    // Saturday 00:00: 3 complete days since Tuesday, 2 login days in the last 7
    // → z = −1 + 0.8·(3−1)/2 − 0.5·(2−3)/2 = 0.05
    expect(d.user('u1')?.churnScore).toBeCloseTo(1 / (1 + Math.exp(-0.05)), 12)
  })

  it('a user who never logged in has no score', async () => {
    const d = await setup(0.99)
    await d.pipe(ev('u2', 'VIEW', '2026-03-02T09:00'))
    expect(d.user('u2')?.churnScore).toBeNull()
  })

  it('a model alert carries the score and its top features, largest contribution first', async () => {
    const d = await setup(0.5)
    await d.pipe(ev('u3', 'LOGIN', '2026-03-02T09:00'), ev('u3', 'LOGIN', '2026-03-03T09:00'))
    d.advanceTo(at('2026-03-07T00:00'))
    const [a] = d.alertsOf('model_risk')
    expect(a.firedAt).toBe(at('2026-03-07T00:00'))
    expect(a.score).toBeCloseTo(1 / (1 + Math.exp(-0.05)), 12)
    expect(a.reasons.map((r) => r.code)).toEqual(['CHURN_SCORE', 'DAYS_INACTIVE', 'LOGIN_DAYS_7'])
    // contributions 0.8·(3−1)/2 = 0.8 and −0.5·(2−3)/2 = 0.25: 76% and 24% of what raises it
    expect(a.reasons[1]).toEqual({ code: 'DAYS_INACTIVE', signal: 'daysInactive', value: 3, op: 'contribution', threshold: 0.8, text: 'no login for 3 full days (76% of what raises the score)' })
    expect(a.reasons[2]).toMatchObject({ signal: 'loginDays7', value: 2, threshold: 0.25, text: 'logged in on 2 of the last 7 days (24% of what raises the score)' })
  })

  it('every feature is finite for every state, including a brand-new user', async () => {
    const d = await TopologyTestDriver.create(parseTopology('version: 1\nrules:\n  - id: a\n    when: [{ signal: daysInactive, op: ">=", threshold: 7 }]\n', 'x.yaml'))
    await d.pipe(ev('u4', 'VIEW', '2026-03-02T09:00'))
    const s = d.user('u4')
    if (s === undefined) throw new Error('no state')
    const x = new Float64Array(FEATURE_COUNT).fill(Number.NaN)
    computeFeatures(s, s.headDay, at('2026-03-02T09:00'), DEFAULT_SIGNAL_PARAMS, x)
    expect(FEATURES.filter((f) => !Number.isFinite(x[f.id])).map((f) => f.name)).toEqual([])
  })
})
