import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { decodeJsonEvent, encodeJsonEvent } from '../../src/events/jsonl.js'
import { Simulator, type SimOptions } from '../../src/sim/simulator.js'

function run (opts: SimOptions): { hash: string, events: number, lines: string[], sim: Simulator, outOfOrder: number } {
  const sim = new Simulator(opts)
  const h = createHash('sha256')
  const lines: string[] = []
  let maxTs = 0
  let outOfOrder = 0
  for (const day of sim.days()) {
    for (const e of day) {
      const line = encodeJsonEvent(e)
      h.update(line)
      lines.push(line)
      if (e.ts < maxTs - 60_000) outOfOrder++
      if (e.ts > maxTs) maxTs = e.ts
    }
  }
  return { hash: h.digest('hex'), events: lines.length, lines, sim, outOfOrder }
}

describe('the population simulator', () => {
  const a = run({ users: 600, days: 40, seed: 5, noise: true })

  it('is deterministic for a seed and differs across seeds', () => {
    expect(run({ users: 600, days: 40, seed: 5, noise: true }).hash).toBe(a.hash)
    expect(run({ users: 600, days: 40, seed: 6, noise: true }).hash).not.toBe(a.hash)
  })

  it('writes events that satisfy the contract, in time order apart from the injected late ones', () => {
    for (const l of a.lines) expect(() => decodeJsonEvent(l)).not.toThrow()
    // --noise makes about 0.1% of events arrive 2–3 days late; nothing else is out of order.
    expect(a.outOfOrder).toBeGreaterThan(0)
    expect(a.outOfOrder).toBeLessThan(a.events * 0.003)
    expect(run({ users: 300, days: 20, seed: 5 }).outOfOrder).toBe(0)
    // …and about 0.2% are repeated with the same eventId, as producer retries do.
    const ids = a.lines.map((l) => (JSON.parse(l) as { eventId: string }).eventId)
    const repeats = ids.length - new Set(ids).size
    expect(repeats).toBeGreaterThan(0)
    expect(repeats).toBeLessThan(ids.length * 0.005)
  })

  it('labels every user with an archetype, zone and churn ground truth', () => {
    const labels = a.sim.labels()
    expect(labels).toHaveLength(600)
    expect(new Set(labels.map((l) => l.archetype))).toEqual(new Set(Object.keys(a.sim.archetypeShares)))
    expect(new Set(labels.map((l) => l.tz)).size).toBeGreaterThanOrEqual(5)
    const churned = labels.filter((l) => l.churned)
    expect(churned.length).toBeGreaterThan(60)
    for (const l of churned) {
      expect(['gradual_decline', 'unfollow_burst', 'abrupt_stop', 'new_user']).toContain(l.archetype)
      expect(l.churnAt).toBe(l.lastLoginTs)
    }
    expect(labels.filter((l) => l.archetype === 'steady' || l.archetype === 'returner').every((l) => !l.churned)).toBe(true)
  })
})
