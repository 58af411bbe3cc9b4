import { describe, expect, it } from 'vitest'
import { DAY_MS, DailySnapshots, type Labels, type ReplayResult } from '../../src/model/dataset.js'
import { FEATURE_COUNT, FeatureId } from '../../src/model/spell.js'
import { type LabelledData, trainModel } from '../../src/model/train.js'

/**
 * `ebb train` on several populations: the prior is to carry how users rank *within* a population.
 * Two synthetic populations where churn depends on the days of silence alone, the second churning
 * more and logging in less: pooled, the fit learns "a low login rate is churn" from the difference
 * between the populations; with an intercept per input, it does not.
 */
function population (seed: number, rateBase: number, bias: number, n: number): LabelledData {
  let x = seed >>> 0
  // mulberry32
  const rand = (): number => { x = (x + 0x6d2b79f5) >>> 0; let t = x; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296 }
  const snap = new DailySnapshots()
  const start = Date.parse('2026-01-01T00:00:00Z')
  const days = 200
  snap.ts = new Float64Array(n)
  snap.user = new Int32Array(n)
  snap.spell = new Int32Array(n)
  snap.score = new Float64Array(n)
  snap.inactive = new Float64Array(n)
  snap.X = new Float32Array(n * FEATURE_COUNT)
  const y = new Uint8Array(n)
  for (let i = 0; i < n; i++) {
    const u = snap.userIndex(`p${seed}-u${i}`)
    const d = Math.floor(rand() * 30)
    snap.ts[i] = start + Math.floor(rand() * days) * DAY_MS
    snap.user[i] = u
    snap.spell[i] = i
    snap.inactive[i] = d
    snap.X[i * FEATURE_COUNT + FeatureId.daysInactive] = d
    // the login rate varies within the population, unrelated to churn
    snap.X[i * FEATURE_COUNT + FeatureId.loginRate] = rateBase + (rand() - 0.5)
    y[i] = rand() < 1 / (1 + Math.exp(-(0.4 * (d - 12) + bias))) ? 1 : 0
  }
  snap.n = n
  const labels: Labels = { source: 'synthetic', truth: true, label: (u) => y[u], churnEvents: () => [] }
  const data: ReplayResult = { snapshots: snap, start, end: start + days * DAY_MS, users: n, events: n, learned: null }
  return { data, labels }
}

describe('ebb train on several populations', () => {
  it('with --intercept-per-input, fits an intercept per input: the prior ranks within a population, and does not take one population\'s churn rate for a feature', () => {
    const daily = population(7, -0.1, -1, 20_000)
    const weekly = population(11, -2, 1.5, 20_000)
    const split = Date.parse('2026-01-01T00:00:00Z') + 150 * DAY_MS
    const perInput = trainModel([daily, weekly], { split, l2: 1, input: 'two', interceptPerInput: true })
    // the same rows as one input: no intercept per population
    const merged: LabelledData = {
      data: { ...daily.data, snapshots: concat(daily.data.snapshots, weekly.data.snapshots) },
      labels: { source: 'synthetic', truth: true, label: (u) => u < 20_000 ? daily.labels.label(u, 0) : weekly.labels.label(u - 20_000, 0), churnEvents: () => [] }
    }
    const pooled = trainModel([merged], { split, l2: 1, input: 'one' })
    // without the option, two inputs fit as one: the same weights as the merged rows
    const twoPooled = trainModel([daily, weekly], { split, l2: 1, input: 'two' })
    expect(twoPooled.prior.weights[FeatureId.loginRate]).toBeCloseTo(pooled.prior.weights[FeatureId.loginRate], 3)
    expect(twoPooled.prior.intercept).toBeCloseTo(pooled.prior.intercept, 3)
    const rate = (m: typeof pooled): number => m.prior.weights[FeatureId.loginRate]
    const days = (m: typeof pooled): number => m.prior.weights[FeatureId.daysInactive]
    expect(rate(pooled)).toBeLessThan(-0.3) // the populations' difference, learned as a feature
    expect(Math.abs(rate(perInput))).toBeLessThan(0.1)
    expect(days(perInput)).toBeGreaterThan(2)
    expect(Math.abs(days(perInput) - days(pooled)) / days(perInput)).toBeLessThan(0.35)
    expect(perInput.training.interceptPerInput).toMatch(/an intercept per input \(2\)/)
    expect(twoPooled.training.interceptPerInput).toBeUndefined()
    // its base rate is the populations' average, each weighing the same: at the same user, the
    // prior's probability lies between those of fits on either population alone
    const at = (m: typeof pooled): number => {
      let z = m.prior.intercept
      const x = new Array<number>(FEATURE_COUNT).fill(0)
      x[FeatureId.daysInactive] = 12
      x[FeatureId.loginRate] = -1
      for (let j = 0; j < FEATURE_COUNT; j++) z += m.prior.weights[j] * (x[j] - m.standardization.mean[j]) / m.standardization.std[j]
      return 1 / (1 + Math.exp(-z))
    }
    const alone = [trainModel([daily], { split, l2: 1, input: 'daily' }), trainModel([weekly], { split, l2: 1, input: 'weekly' })].map(at).sort((p, q) => p - q)
    expect(at(perInput)).toBeGreaterThan(alone[0])
    expect(at(perInput)).toBeLessThan(alone[1])
  })
})

function concat (a: DailySnapshots, b: DailySnapshots): DailySnapshots {
  const s = new DailySnapshots()
  const n = a.n + b.n
  const cat = <T extends Float64Array | Int32Array | Float32Array>(x: T, y: T, make: (n: number) => T, na: number, nb: number): T => { const z = make(na + nb); z.set(x.subarray(0, na) as never); z.set(y.subarray(0, nb) as never, na); return z }
  s.ts = cat(a.ts, b.ts, (k) => new Float64Array(k), a.n, b.n)
  s.score = cat(a.score, b.score, (k) => new Float64Array(k), a.n, b.n)
  s.inactive = cat(a.inactive, b.inactive, (k) => new Float64Array(k), a.n, b.n)
  s.user = Int32Array.from({ length: n }, (_, i) => i)
  s.spell = Int32Array.from({ length: n }, (_, i) => i)
  s.X = cat(a.X, b.X, (k) => new Float32Array(k), a.n * FEATURE_COUNT, b.n * FEATURE_COUNT)
  for (let i = 0; i < n; i++) s.userIndex(`m${i}`)
  s.n = n
  return s
}
