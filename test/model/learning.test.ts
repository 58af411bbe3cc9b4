import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeJsonEvent } from '../../src/events/jsonl.js'
import { projectRoot, topologyPath } from '../../src/paths.js'
import { makePopulation } from '../../src/sim/populations.js'
import { handModel, tempDir } from '../helpers.js'

/**
 * The learning loop as a user runs it (`ebb replay`): the model learns the population from the
 * stream's own labels, deterministically, and what it learned survives a restart.
 */
const tmp = tempDir('ebb-learning-')
afterAll(() => { tmp.cleanup() })
const bin = join(projectRoot(), 'bin', 'ebb.js')
const events = join(tmp.dir, 'pop.jsonl')
const topology = join(tmp.dir, 'topology.yaml')

interface Learned { partition: number, labelledDays: number, churnedDays: number, dailyUpdates: number, thresholds: number[], coefficients: number[] }
const replay = (out: string, ...args: string[]): { code: number | null, summary: { model: Learned[] } } => {
  const r = spawnSync(process.execPath, [bin, 'replay', '--in', events, '--out', out, '--topology', topology, ...args], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(r.stderr)
  return { code: r.status, summary: JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) }
}
const file = (dir: string, name: string): string => readFileSync(join(dir, name), 'utf8')

beforeAll(() => {
  // Users who leave without warning: the only signal is a silence long for their own rhythm.
  const pop = makePopulation('bgnbd', { users: 1200, days: 80, seed: 5, churnRate: 0.35 })
  const lines: string[] = []
  for (const day of pop.days()) for (const e of day) lines.push(encodeJsonEvent(e))
  writeFileSync(events, lines.join('\n') + '\n')
  // A prior with the silence backwards (a long silence "means" a loyal user) and no learning
  // brake beyond the default: the stream has to turn it around.
  writeFileSync(join(tmp.dir, 'backwards.json'), JSON.stringify(handModel({ silenceSurprise: -1, daysInactive: -0.2 }, -3, { learn: true })))
  writeFileSync(topology, readFileSync(topologyPath('default.yaml'), 'utf8')
    .replace(/^model: .*$/m, `model: ${join(tmp.dir, 'backwards.json')}`)
    .replace(/^ {2}plans: plans\.yaml/m, `  plans: ${topologyPath('plans.yaml')}`))
})

describe('the churn model learns the stream', () => {
  let one: ReturnType<typeof replay>
  const out1 = join(tmp.dir, 'one')
  beforeAll(() => { one = replay(out1) })

  it('labels scored days from the stream and turns a wrong prior around', () => {
    const [m] = one.summary.model
    // 80 days: buckets mature from day 33, so about 45 daily updates
    expect(m.dailyUpdates).toBeGreaterThan(35)
    expect(m.labelledDays).toBeGreaterThan(20_000)
    expect(m.churnedDays).toBeGreaterThan(500)
    // coefficients: [intercept, silenceSurprise, daysInactive, …]; the prior had −1 and −0.2
    expect(m.coefficients[1] + m.coefficients[2]).toBeGreaterThan(0.5)
  })

  it('gives byte-identical outputs and learns the same numbers whatever the batch size', () => {
    const out2 = join(tmp.dir, 'batch')
    replay(out2, '--batch', '997')
    for (const f of ['alerts.jsonl', 'tasks.jsonl', 'summary.json']) expect(file(out2, f)).toBe(file(out1, f))
  })

  it('continues exactly after a restart: what it learned is in the state, not in memory', () => {
    const all = readFileSync(events, 'utf8').trimEnd().split('\n')
    const half = Math.floor(all.length / 2)
    const state = join(tmp.dir, 'state')
    const parts = [all.slice(0, half), all.slice(half)].map((lines, k) => {
      const f = join(tmp.dir, `half-${k}.jsonl`)
      writeFileSync(f, lines.join('\n') + '\n')
      const out = join(tmp.dir, `half-${k}`)
      const r = spawnSync(process.execPath, [bin, 'replay', '--in', f, '--out', out, '--topology', topology, '--state', state], { encoding: 'utf8' })
      expect(r.status).toBe(0)
      return out
    })
    expect(file(parts[0], 'alerts.jsonl') + file(parts[1], 'alerts.jsonl')).toBe(file(out1, 'alerts.jsonl'))
    const resumed = JSON.parse(file(parts[1], 'summary.json')) as { model: Learned[] }
    expect(resumed.model[0].coefficients).toEqual(one.summary.model[0].coefficients)
    expect(resumed.model[0].thresholds).toEqual(one.summary.model[0].thresholds)
  })

  it('with --partitions 2, each partition learns its own users, as an input topic of two partitions would, deterministically', () => {
    const a = replay(join(tmp.dir, 'p2a'), '--partitions', '2')
    replay(join(tmp.dir, 'p2b'), '--partitions', '2', '--batch', '613')
    expect(a.summary.model.map((m) => m.partition)).toEqual([0, 1])
    expect(a.summary.model[0].coefficients).not.toEqual(a.summary.model[1].coefficients)
    for (const f of ['alerts.jsonl', 'tasks.jsonl', 'summary.json']) expect(file(join(tmp.dir, 'p2b'), f)).toBe(file(join(tmp.dir, 'p2a'), f))
    // together the two saw every labelled day the single partition saw
    expect(a.summary.model[0].labelledDays + a.summary.model[1].labelledDays).toBe(one.summary.model[0].labelledDays)
  })
})
