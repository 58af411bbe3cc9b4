import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { topologyPath } from '../../src/paths.js'
import { conditionsHold, type ThresholdSource } from '../../src/rules/conditions.js'
import { parseTopology } from '../../src/rules/topology.js'
import { UserState } from '../../src/state/user-state.js'
import { zoneClock } from '../../src/time/zones.js'

/**
 * The earlierThan threshold's shape over one silence, day by day (the learner that chooses θ and
 * the veto is faked: the shape is what this tests; test/model/earlier-than.test.ts checks it over
 * whole populations): on the score before the reference's day; on that day unless the score is
 * under the veto; after it, a vetoed silence on the score again, and a week later whatever the score.
 */
const topology = parseTopology(readFileSync(topologyPath('default.yaml'), 'utf8'), topologyPath('default.yaml'))
const modelRule = topology.rules.find((r) => r.id === 'model_risk')
if (modelRule === undefined) throw new Error('the default topology has no model_risk')
const thresholds: ThresholdSource = { threshold: () => 0.5, fallbackDays: () => Number.NaN, latestDays: () => 7, vetoBelow: () => 0.1 }
const LAST_LOGIN_DAY = 20_000

/** The silent days (daysInactive 0–20) on which model_risk's condition holds, with `score(d)` as the user's churnScore. */
function holdingDays (score: (d: number) => number | null): number[] {
  const s = new UserState('u1', zoneClock('UTC'))
  s.lastLoginDay = LAST_LOGIN_DAY
  const days: number[] = []
  for (let d = 0; d <= 20; d++) {
    s.churnScore = score(d)
    if (conditionsHold((modelRule as NonNullable<typeof modelRule>).when, s, LAST_LOGIN_DAY + 1 + d, topology.params, thresholds)) days.push(d)
  }
  return days
}

describe('earlierThan, one silence', () => {
  it('alerts early once the score crosses θ, and on the reference\'s day for a score between the veto and θ', () => {
    expect(holdingDays((d) => d >= 3 ? 0.6 : 0.2)[0]).toBe(3)
    expect(holdingDays(() => 0.2)).toContain(7)
    expect(holdingDays(() => 0.2).filter((d) => d < 7)).toEqual([])
  })

  it('an unknown score does not veto', () => {
    expect(holdingDays(() => null)).toContain(7)
  })

  it('a score under the veto postpones the alert: to the day it reaches θ, or a week after the reference\'s day', () => {
    expect(holdingDays(() => 0.05)[0]).toBe(14)
    expect(holdingDays((d) => d >= 10 ? 0.55 : 0.05)[0]).toBe(10)
    expect(holdingDays(() => 0.05)).not.toContain(7)
  })
})
