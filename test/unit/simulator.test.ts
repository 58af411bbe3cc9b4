import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { decodeJsonEvent, encodeJsonEvent } from '../../src/events/jsonl.js'
import type { Population } from '../../src/sim/population.js'
import { makePopulation } from '../../src/sim/populations.js'
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
    expect(labels.filter((l) => l.archetype === 'steady' || l.archetype === 'returner' || l.archetype === 'recalled').every((l) => !l.churned)).toBe(true)
  })

  it('has returners after a recall (a push, opened, then the login) and quieter public holidays', () => {
    const r = run({ users: 3000, days: 70, seed: 9 })
    const labels = new Map(r.sim.labels().map((l) => [l.userId, l]))
    const byUser = new Map<string, Array<{ type: string, ts: number }>>()
    for (const l of r.lines) {
      const e = JSON.parse(l) as { userId: string, type: string, ts: number }
      let list = byUser.get(e.userId)
      if (list === undefined) { list = []; byUser.set(e.userId, list) }
      list.push(e)
    }
    const recalled = [...labels.values()].filter((l) => l.archetype === 'recalled')
    expect(recalled.length).toBeGreaterThan(60)
    for (const l of recalled) {
      const ev = byUser.get(l.userId) ?? []
      const logins = ev.filter((e) => e.type === 'LOGIN').map((e) => e.ts)
      // a silence of 6 days or more, ended by the recall: the push, opening it, the login
      const ends = (back: number): string[] => ev.filter((e) => e.ts <= back && e.ts > back - 3_600_000).map((e) => e.type)
      const recalls = logins.filter((t, i) => i > 0 && t - logins[i - 1] > 6 * 86_400_000 && ends(t).join() === 'MESSAGE_DELIVERED,MESSAGE_OPENED,LOGIN')
      expect(recalls.length, l.userId).toBe(1)
    }
    // Spring Festival (2026-02-15..23) against the two weeks before, for users in Asia/Shanghai:
    // the share of user-days with a login falls.
    const cn = new Set([...labels.values()].filter((l) => l.tz === 'Asia/Shanghai' && l.archetype === 'steady').map((l) => l.userId))
    const activeDays = (from: string, to: string): number => {
      const a = Date.parse(from + 'T00:00:00+08:00')
      const b = Date.parse(to + 'T00:00:00+08:00')
      const seen = new Set<string>()
      for (const [u, ev] of byUser) if (cn.has(u)) for (const e of ev) if (e.type === 'LOGIN' && e.ts >= a && e.ts < b) seen.add(u + ':' + Math.floor((e.ts - a) / 86_400_000))
      return seen.size / cn.size / ((b - a) / 86_400_000)
    }
    const holiday = activeDays('2026-02-15', '2026-02-24')
    const normal = activeDays('2026-02-01', '2026-02-15')
    expect(holiday).toBeLessThan(normal * 0.8)
    expect(normal).toBeGreaterThan(0.6)
  })
})

describe('the mixed population', () => {
  const events = (seed: number): { users: Set<string>, ts: number[], sim: Population } => {
    const sim = makePopulation('mixed', { users: 403, days: 25, seed, churnRate: 0.2 })
    const users = new Set<string>()
    const ts: number[] = []
    for (const day of sim.days()) for (const e of day) { users.add(e.userId); ts.push(e.ts) }
    return { users, ts, sim }
  }
  const a = events(9)

  it('holds the four generators\' users in one time-ordered stream, deterministic for a seed', () => {
    expect(a.ts.every((t, i) => i === 0 || t >= a.ts[i - 1])).toBe(true)
    // habits, fades, cadence and BG/NBD users: their own id prefixes, a quarter each (the remainder to habits)
    const byPrefix = new Map<string, number>()
    for (const u of a.users) byPrefix.set(u[0], (byPrefix.get(u[0]) ?? 0) + 1)
    expect([...byPrefix.keys()].sort()).toEqual(['b', 'f', 'h', 'w'])
    expect(Math.max(...byPrefix.values())).toBeLessThanOrEqual(103)
    const again = events(9)
    expect(again.ts).toEqual(a.ts)
    expect(again.users).toEqual(a.users)
    expect(events(10).ts).not.toEqual(a.ts)
  })

  it('below four users, habits gets them all (no generator is made up to one user)', () => {
    const few = makePopulation('mixed', { users: 3, days: 10, seed: 2, churnRate: 0.2 })
    for (const day of few.days()) for (const e of day) expect(e.userId[0]).toBe('h')
    expect(few.labels().length).toBeLessThanOrEqual(3)
    expect(few.labels().every((l) => l.archetype.startsWith('habits/'))).toBe(true)
  })

  it('labels each user with its generator and kind', () => {
    const labels = a.sim.labels()
    for (const u of a.users) expect(labels.some((l) => l.userId === u)).toBe(true)
    expect(new Set(labels.map((l) => l.archetype.split('/')[0]))).toEqual(new Set(['habits', 'fades', 'cadence', 'bgnbd']))
    expect(labels.some((l) => l.churned)).toBe(true)
  })
})
