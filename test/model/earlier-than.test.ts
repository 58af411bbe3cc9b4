import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { encodeJsonEvent } from '../../src/events/jsonl.js'
import type { UserEvent } from '../../src/events/user-event.js'
import { projectRoot } from '../../src/paths.js'
import { makePopulation, type PopulationKind } from '../../src/sim/populations.js'
import { tempDir } from '../helpers.js'

/**
 * The default model threshold, `{ earlierThan: inactive_7d }`, as an invariant over populations of
 * independent generators (not examples): within any silence, model_risk alerts at most once; after
 * inactive_7d did only where the veto postponed it (a score too low on the rule's day), which is
 * rare; and — once the stream has answered some of the reference's alerts — before it on some.
 */
const tmp = tempDir('ebb-earlier-')
afterAll(() => { tmp.cleanup() })
const bin = join(projectRoot(), 'bin', 'ebb.js')

interface Alert { userId: string, rule: string, firedAt: number }

const POPULATIONS: ReadonlyArray<{ kind: PopulationKind, seed: number, churnRate: number }> = [
  { kind: 'fades', seed: 41, churnRate: 0.35 },
  { kind: 'habits', seed: 42, churnRate: 0.25 },
  { kind: 'cadence', seed: 43, churnRate: 0.2 },
  { kind: 'bgnbd', seed: 44, churnRate: 0.3 },
  // the four side by side: one threshold for every kind in the partition
  { kind: 'mixed', seed: 45, churnRate: 0.3 }
]

describe('earlierThan: not later than the reference, per silence, but where the veto postpones', () => {
  for (const p of POPULATIONS) {
    it(`${p.kind}: at most one model alert per silence, rarely after inactive_7d's, some before it`, () => {
      const pop = makePopulation(p.kind, { users: 800, days: 120, seed: p.seed, churnRate: p.churnRate })
      const events: UserEvent[] = []
      for (const day of pop.days()) for (const e of day) events.push(e)
      const input = join(tmp.dir, `${p.kind}.jsonl`)
      writeFileSync(input, events.map(encodeJsonEvent).join('\n') + '\n')
      const out = join(tmp.dir, `out-${p.kind}`)
      const r = spawnSync(process.execPath, [bin, 'replay', '--in', input, '--out', out], { encoding: 'utf8' })
      expect(r.status, r.stderr).toBe(0)
      const alerts = readFileSync(join(out, 'alerts.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Alert)
      const logins = new Map<string, number[]>()
      for (const e of events) if (e.type === 'LOGIN') logins.set(e.userId, [...(logins.get(e.userId) ?? []), e.ts])
      for (const l of logins.values()) l.sort((a, b) => a - b)
      // A silence: the user and the last LOGIN before the alert.
      const silenceOf = (a: Alert): string => {
        const l = logins.get(a.userId) ?? []
        let last = Number.NaN
        for (const t of l) if (t <= a.firedAt) last = t
        return `${a.userId}@${last}`
      }
      const model = new Map<string, number[]>()
      const ref = new Map<string, number>()
      for (const a of alerts) {
        if (a.rule === 'model_risk') model.set(silenceOf(a), [...(model.get(silenceOf(a)) ?? []), a.firedAt])
        if (a.rule === 'inactive_7d') ref.set(silenceOf(a), a.firedAt)
      }
      let earlier = 0
      let later = 0
      let onDay = 0
      let firstEarly = Number.POSITIVE_INFINITY
      for (const [silence, times] of model) {
        expect(times, silence).toHaveLength(1)
        const r7 = ref.get(silence)
        if (r7 === undefined || times[0] < r7) { earlier++; firstEarly = Math.min(firstEarly, times[0]) }
        if (r7 !== undefined && times[0] > r7) {
          later++
          // postponed a week at most (local midnights: a DST change moves one by an hour)
          expect(times[0] - r7, silence).toBeLessThanOrEqual(7 * 86_400_000 + 3_600_000)
        }
        if (r7 !== undefined && times[0] === r7) onDay++
      }
      expect(ref.size).toBeGreaterThan(50)
      // Postponed: a few (measured 0.4–2.9% of the reference's silences on these populations).
      const counts = `earlier ${earlier}, on the rule's day ${onDay}, later ${later}, of ${ref.size} reference silences`
      expect(later / ref.size, counts).toBeLessThan(0.05)
      // The churners (the population's truth) the veto told later than the rule are no more than
      // those the model told earlier, so its median lead is not the later one.
      let churnEarlier = 0
      let churnLater = 0
      for (const l of pop.labels()) {
        if (!l.churned) continue
        const silence = `${l.userId}@${l.churnAt}`
        const m = model.get(silence)?.[0]
        const r7 = ref.get(silence)
        if (m !== undefined && r7 !== undefined) { if (m < r7) churnEarlier++; else if (m > r7) churnLater++ }
      }
      expect(churnLater, `churners told later ${churnLater}, earlier ${churnEarlier}`).toBeLessThanOrEqual(churnEarlier)
      // Most of the reference's silences get the model's alert too (the veto holds back few).
      let withModel = 0
      for (const silence of ref.keys()) if (model.has(silence)) withModel++
      expect(withModel / ref.size).toBeGreaterThan(0.8)
      if (p.kind === 'fades') {
        expect(earlier).toBeGreaterThan(0)
        // Before the reference's first labels mature (its first alerts ~day 7, labelled 32 days
        // later): its pending alerts, a week old, bound its precision from above (measured: day
        // 31.6; day 54 without them).
        expect((firstEarly - events[0].ts) / 86_400_000).toBeLessThan(39)
      }
    })
  }
})
