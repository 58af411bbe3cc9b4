import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { EbbError } from '../../src/errors.js'
import { topologyPath } from '../../src/paths.js'
import { parseTopology } from '../../src/rules/topology.js'

const DEFAULT = readFileSync(topologyPath('default.yaml'), 'utf8')
const lineNo = (text: string, needle: string): number => text.split('\n').findIndex((l) => l.includes(needle)) + 1

function problem (text: string): EbbError {
  try {
    parseTopology(text, 't.yaml')
  } catch (err) {
    if (err instanceof EbbError) return err
    throw err
  }
  throw new Error('the topology loaded')
}

describe('topology loading', () => {
  it('loads the default topology: the four rules of the contract with their thresholds, and the win-back hand-off', () => {
    const t = parseTopology(DEFAULT, topologyPath('default.yaml'))
    // in id order, whatever the order of the file
    expect(t.rules.map((r) => [r.id, r.when[0].signal.name, r.when[0].op, r.when[0].auto < 0 ? r.when[0].threshold : 'chosen'])).toEqual([
      ['consumption_drop', 'consumptionDrop', '>=', 0.6],
      ['inactive_31d', 'daysInactive', '>=', 31],
      ['inactive_7d', 'daysInactive', '>=', 7],
      ['model_risk', 'churnScore', '>=', 'chosen'],
      ['unfollow_burst', 'unfollowRatio7d', '>=', 0.5]
    ])
    // model_risk's threshold: never later than inactive_7d, earlier within 1.5 points of its precision, each partition choosing from its stream
    expect(t.modelThresholds).toEqual([{ spec: { kind: 'earlierThan', rule: 'inactive_7d', allowance: 0.015 }, refIndex: 2, refDays: 7 }])
    expect(t.maxStepMs).toBe(86_400_000)
    expect(t.maxAheadOfRecordMs).toBe(3_600_000)
    expect(t.allowedLatenessMs).toBe(5 * 60_000)
    expect(t.graceMs).toBe(86_400_000)
    expect(t.params.minFollowBase).toBe(4)
    expect(t.params.drop.minWeeklyViews).toBe(5)
  })

  it.each([
    ['an unknown signal', 'signal: consumptionDrop', 'signal: consumptionDrops', /unknown signal "consumptionDrops"/],
    ['a threshold outside the signal\'s range', 'threshold: 0.5', 'threshold: 1.5', /threshold for unfollowRatio7d: 1.5 is outside 0..1/],
    ['a fractional day count', 'threshold: 7 ', 'threshold: 6.5 ', /expected a whole number/],
    ['a threshold that is not a number', 'threshold: 0.6', 'threshold: lots', /expected a number/],
    ['a bad operator', 'op: ">=", threshold: 0.6', 'op: "=>", threshold: 0.6', /op "=>"/],
    ['a window the state cannot hold', 'baselineDays: 28', 'baselineDays: 30', /recentDays \+ baselineDays is 37; the state keeps 35 complete days/],
    ['a window beyond the follow ring', 'windowDays: 7 ', 'windowDays: 14 ', /windowDays: 14 is outside 1..7/],
    ['a bad duration', 'grace: 1d', 'grace: one day', /not a duration/],
    ['a misspelt key', 'allowedLateness: 5m', 'allowedLatenes: 5m', /unknown key "allowedLatenes"/],
    ['an unknown zone', 'defaultTimezone: Asia/Shanghai', 'defaultTimezone: Asia/Shanghia', /not an IANA time zone/]
  ])('rejects %s with the file and line', (_what, from, to, message) => {
    const text = DEFAULT.replace(from, to)
    expect(text).not.toBe(DEFAULT)
    const err = problem(text)
    expect(err.code).toBe('EBB_TOPOLOGY_INVALID')
    expect(err.exitCode).toBe(2)
    expect(err.message).toMatch(message)
    expect(err.message).toMatch(new RegExp(`^t\\.yaml:${lineNo(text, to.trim())}: `))
  })

  it('rejects duplicate rule ids and YAML syntax errors', () => {
    expect(problem(DEFAULT.replace('id: unfollow_burst', 'id: inactive_7d')).message).toMatch(/used twice/)
    expect(problem(DEFAULT + '\n  - id: [unclosed\n').message).toMatch(/^t\.yaml:\d+: /)
  })

  it('a copy of the default topology elsewhere, without its plan library: the line of intervention.plans and what to copy', () => {
    const file = '/nonexistent-dir/my-topology.yaml'
    let err: unknown
    try { parseTopology(DEFAULT, file) } catch (e) { err = e }
    expect(err).toBeInstanceOf(EbbError)
    expect((err as EbbError).message).toBe(`${file}:${lineNo(DEFAULT, 'plans:')}: intervention.plans: /nonexistent-dir/plans.yaml does not exist (a relative path is read from the topology's directory: copy plans.yaml beside the topology, or give its absolute path)`)
  })
})
