import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { topologyPath } from '../../src/paths.js'
import { parseTopology } from '../../src/rules/topology.js'
import { TopologyTestDriver, type DriverEvent } from '../../src/runtime/test-driver.js'
import { at, defaultTopology, handModel, tempDir } from '../helpers.js'

const SH = 'Asia/Shanghai'
const ev = (userId: string, type: DriverEvent['type'], local: string, extra: Partial<DriverEvent> = {}): DriverEvent => ({ userId, type, ts: at(local), tz: SH, ...extra })

/** Views: `perDay` a day on each of the given days of a month (YYYY-MM), at 10:00, 10:01, … local. */
function views (userId: string, month: string, days: number[], perDay: number): DriverEvent[] {
  const out: DriverEvent[] = []
  for (const d of days) for (let k = 0; k < perDay; k++) out.push(ev(userId, 'VIEW', `${month}-${String(d).padStart(2, '0')}T10:${String(k).padStart(2, '0')}`))
  return out
}

describe('inactive_7d', () => {
  it('fires at the local midnight when daysInactive reaches 7, once per episode', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipe(ev('u1', 'LOGIN', '2026-03-02T23:00')) // Monday 23:00
    d.advanceTo(at('2026-03-09T23:59'))
    expect(d.alertsOf('inactive_7d')).toHaveLength(0)
    d.advanceTo(at('2026-03-10T00:00')) // Tuesday 00:00: 7 complete days without a login
    const [a] = d.alertsOf('inactive_7d')
    expect(a.firedAt).toBe(at('2026-03-10T00:00'))
    expect(a.reasons).toEqual([{ code: 'DAYS_INACTIVE', signal: 'daysInactive', value: 7, op: '>=', threshold: 7, text: 'no login for 7 full days (alert at 7)' }])
    expect(a.episodeId).toBe(`u1:${at('2026-03-10T00:00')}`)
    expect(a.alertId).toBe(`${a.episodeId}:inactive_7d`)
    d.advanceTo(at('2026-03-25T00:00')) // condition stays true: no second alert
    expect(d.alertsOf('inactive_7d')).toHaveLength(1)
  })

  it('re-arms after a login made the condition false, in a new episode', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipe(ev('u2', 'LOGIN', '2026-03-02T09:00'))
    d.advanceTo(at('2026-03-10T00:00'))
    expect(d.alertsOf('inactive_7d')).toHaveLength(1)
    await d.pipe(ev('u2', 'LOGIN', '2026-03-12T09:00')) // back: condition false, episode closed
    // Two days after stream time, the LOGIN waits for the next event of the present to confirm it.
    expect(d.user('u2')?.episodeOpenTs).not.toBe(0)
    await d.pipe(ev('other', 'VIEW', '2026-03-12T09:01'))
    expect(d.user('u2')?.episodeOpenTs).toBe(0)
    d.advanceTo(at('2026-03-20T00:00'))
    const all = d.alertsOf('inactive_7d')
    expect(all.map((x) => x.firedAt)).toEqual([at('2026-03-10T00:00'), at('2026-03-20T00:00')])
    expect(all[0].episodeId).not.toBe(all[1].episodeId)
  })

  it('fires for a user who sends nothing at all, even when the stream moves on many days at once', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipe(ev('quiet', 'LOGIN', '2026-03-02T09:00'))
    // Other users keep the stream moving; the stream jumps 12 days at once. A jump beyond
    // time.future.maxStep moves stream time once the next event confirms it.
    await d.pipe(ev('other', 'LOGIN', '2026-03-14T12:00'))
    expect(d.alertsOf('inactive_7d')).toEqual([])
    await d.pipe(ev('another', 'LOGIN', '2026-03-14T12:00'))
    expect(d.alertsOf('inactive_7d').map((a) => [a.userId, a.firedAt])).toEqual([['quiet', at('2026-03-10T00:00')]])
  })

  it('does not fire when an event a minute after midnight is still within the allowed lateness', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipe(ev('late-login', 'LOGIN', '2026-03-02T09:00'))
    // Stream time reaches 2026-03-09T23:58 (max ts − 5 min): the 03-10 midnight timer is not due yet.
    await d.pipe(ev('other', 'VIEW', '2026-03-10T00:03'))
    await d.pipe(ev('late-login', 'LOGIN', '2026-03-09T23:59')) // the user came back just in time
    await d.pipe(ev('other', 'VIEW', '2026-03-10T01:00'))
    expect(d.alertsOf('inactive_7d').filter((a) => a.userId === 'late-login')).toHaveLength(0)
  })
})

describe('unfollow_burst', () => {
  it('fires when the ratio crosses 0.5, not twice in the episode, and again after it fell', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    const follows = [0, 1, 2, 3, 4, 5].map((i) => ev('f', 'FOLLOW', `2026-03-01T10:0${i}`, { targetId: `c${i}` }))
    await d.pipe(ev('f', 'LOGIN', '2026-03-01T09:00'), ...follows)
    await d.pipe(ev('f', 'UNFOLLOW', '2026-03-10T10:00'), ev('f', 'UNFOLLOW', '2026-03-10T10:01'))
    expect(d.alertsOf('unfollow_burst')).toHaveLength(0) // 2/6
    await d.pipe(ev('f', 'UNFOLLOW', '2026-03-10T10:02')) // 3/6 = 0.5
    const [a] = d.alertsOf('unfollow_burst')
    expect(a.firedAt).toBe(at('2026-03-10T10:02'))
    expect(a.reasons[0]).toMatchObject({ code: 'UNFOLLOW_BURST', value: 0.5, threshold: 0.5 })
    await d.pipe(ev('f', 'UNFOLLOW', '2026-03-10T10:03')) // 4/6: still true, no second alert
    expect(d.alertsOf('unfollow_burst')).toHaveLength(1)
    // A week later the unfollows leave the window: the condition is false (at the midnight timer).
    d.advanceTo(at('2026-03-18T00:00'))
    const unfollowBit = d.task.ruleSlots.bit(d.task.topology.rules.find((r) => r.id === 'unfollow_burst')?.index ?? -1) // stored by rule id
    expect((d.user('f')?.ruleCond ?? -1) & unfollowBit).toBe(0)
    // The user logs in (closing the episode), follows six more and unfollows four: a new edge.
    await d.pipe(ev('f', 'LOGIN', '2026-03-19T09:00'), ...[0, 1, 2, 3, 4, 5].map((i) => ev('f', 'FOLLOW', `2026-03-19T10:0${i}`)))
    await d.pipe(...[0, 1, 2, 3].map((i) => ev('f', 'UNFOLLOW', `2026-03-27T10:0${i}`)))
    // base = 4 now + 4 unfollowed − 0 followed in window (19th is 8 days before the 27th) = 8 → 4/8
    expect(d.alertsOf('unfollow_burst').map((x) => x.firedAt)).toEqual([at('2026-03-10T10:02'), at('2026-03-27T10:03')])
  })
})

describe('consumption_drop', () => {
  it('fires at the midnight when the last 7 complete days fall 60% below the weekly average', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    // 10 views a day, every day of February (4 weeks): 70 a week.
    await d.pipe(ev('v', 'LOGIN', '2026-02-01T09:00'), ...views('v', '2026-02', Array.from({ length: 28 }, (_, i) => i + 1), 10))
    expect(d.alertsOf('consumption_drop')).toHaveLength(0)
    // Then nothing from 1 March. At midnight starting day D the recent window is the 7 complete days
    // before D and the baseline the 28 before those:
    //   03-05: recent 02-26..03-04 = 30 views, baseline 01-29..02-25 = 250 (62.5 a week) → drop 0.52
    //   03-06: recent 02-27..03-05 = 20 views, baseline 01-30..02-26 = 260 (65 a week)   → drop 0.69
    d.advanceTo(at('2026-03-05T23:59'))
    expect(d.alertsOf('consumption_drop')).toHaveLength(0)
    d.advanceTo(at('2026-03-06T00:00'))
    const [a] = d.alertsOf('consumption_drop')
    expect(a.firedAt).toBe(at('2026-03-06T00:00'))
    expect(a.reasons[0].code).toBe('CONSUMPTION_DROP')
    expect(a.reasons[0].value).toBeCloseTo(1 - 20 / 65, 6)
    d.advanceTo(at('2026-03-09T00:00'))
    expect(d.alertsOf('consumption_drop')).toHaveLength(1)
  })

  it('is stable within a day: views do not move it until the next local midnight', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipe(ev('s', 'LOGIN', '2026-02-01T09:00'), ...views('s', '2026-02', Array.from({ length: 28 }, (_, i) => i + 1), 10))
    d.advanceTo(at('2026-03-06T00:00'))
    const before = d.signals('s', at('2026-03-06T08:00')).consumptionDrop
    await d.pipe(...views('s', '2026-03', [6], 40))
    expect(d.signals('s', at('2026-03-06T20:00')).consumptionDrop).toBe(before)
    expect(d.signals('s', at('2026-03-07T00:00')).consumptionDrop).toBeLessThan(before as number)
  })

  it('re-arms when views recover, and fires again when they fall again', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipe(ev('w', 'LOGIN', '2026-02-01T09:00'), ...views('w', '2026-02', Array.from({ length: 28 }, (_, i) => i + 1), 10))
    d.advanceTo(at('2026-03-06T00:00'))
    expect(d.alertsOf('consumption_drop')).toHaveLength(1)
    // The user comes back (the login closes the episode) with 30 views a day from 03-06 to 03-12:
    // at 03-07 00:00 the window 02-28..03-06 holds 40 views against 67.5 a week: drop 0.41, false.
    await d.pipe(ev('w', 'LOGIN', '2026-03-06T08:00'), ...views('w', '2026-03', [6, 7, 8, 9, 10, 11, 12], 30))
    d.advanceTo(at('2026-03-13T00:00'))
    expect(d.alertsOf('consumption_drop')).toHaveLength(1)
    const bit = 1 << (defaultTopology().rules.find((r) => r.id === 'consumption_drop')?.index ?? -1)
    expect((d.user('w')?.ruleCond ?? -1) & bit).toBe(0)
    // After 03-12 the views stop again: a later midnight sees the drop reach 0.6 once more.
    d.advanceTo(at('2026-03-24T00:00'))
    const all = d.alertsOf('consumption_drop')
    expect(all).toHaveLength(2)
    expect(all[1].firedAt).toBeGreaterThan(at('2026-03-13T00:00'))
    expect(all[1].reasons[0].value).toBeGreaterThanOrEqual(0.6)
    expect(all[1].episodeId).not.toBe(all[0].episodeId)
  })
})

describe('model_risk', () => {
  const withoutModel = readFileSync(topologyPath('default.yaml'), 'utf8').replace(/^model: .*$/m, 'model: null')

  it('is disabled, and says why, when the topology has no model', () => {
    const rule = parseTopology(withoutModel, topologyPath('default-no-model.yaml')).rules.find((r) => r.id === 'model_risk')
    expect(rule?.enabled).toBe(false)
    expect(rule?.disabledReason).toMatch(/model/)
  })

  it('fires when churnScore crosses a fixed threshold, with the score; once per silence; re-arms after a login', async () => {
    // score = σ(daysInactive − 4.5): ≥ 0.7 from six silent days on
    const { dir, cleanup } = tempDir()
    try {
      writeFileSync(join(dir, 'm.json'), JSON.stringify(handModel({ daysInactive: 1 }, -4.5)))
      const fixed = withoutModel.replace(/threshold: \{ earlierThan: inactive_7d \}/, 'threshold: 0.7')
      const d = await TopologyTestDriver.create(parseTopology(fixed.replace(/^model: null$/m, `model: ${join(dir, 'm.json')}`), topologyPath('default+model.yaml')))
      await d.pipe(ev('m', 'LOGIN', '2026-03-02T09:00'))
      d.advanceTo(at('2026-03-08T00:00')) // 5 silent days: σ(0.5) = 0.62
      expect(d.alertsOf('model_risk')).toHaveLength(0)
      d.advanceTo(at('2026-03-20T00:00')) // 6 days at 03-09 00:00, then higher: one alert
      expect(d.alertsOf('model_risk').map((a) => [a.firedAt, a.score])).toEqual([[at('2026-03-09T00:00'), 1 / (1 + Math.exp(-1.5))]])
      await d.pipe(ev('m', 'LOGIN', '2026-03-21T09:00')) // back: score falls, the episode closes
      d.advanceTo(at('2026-03-28T00:00'))
      expect(d.alertsOf('model_risk').map((a) => a.firedAt)).toEqual([at('2026-03-09T00:00'), at('2026-03-28T00:00')])
    } finally {
      cleanup()
    }
  })
})

describe('risk episodes', () => {
  it('groups the alerts of different rules into one episode until the user logs in', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    const follows = [0, 1, 2, 3, 4, 5].map((i) => ev('e', 'FOLLOW', `2026-02-01T08:0${i}`))
    const days = Array.from({ length: 28 }, (_, i) => i + 1)
    // Daily logins and views through February; the last login is on 02-28.
    const feb = [...days.map((k) => ev('e', 'LOGIN', `2026-02-${String(k).padStart(2, '0')}T09:00`)), ...views('e', '2026-02', days, 10)]
    await d.pipe(...follows, ...feb.sort((a, b) => (a.ts as number) - (b.ts as number)))
    await d.pipe(...[0, 1, 2].map((i) => ev('e', 'UNFOLLOW', `2026-03-01T10:0${i}`)))
    d.advanceTo(at('2026-03-08T00:00'))
    const alerts = d.alerts.filter((a) => a.userId === 'e')
    // model_risk too: on a partition whose inactive_7d has not alerted 20 times yet, the model
    // rule alerts as inactive_7d does (docs/churn-model.md, "Threshold").
    expect(alerts.map((a) => a.rule).sort()).toEqual(['consumption_drop', 'inactive_7d', 'model_risk', 'unfollow_burst'])
    expect(new Set(alerts.map((a) => a.episodeId)).size).toBe(1)
    expect(alerts[0].episodeId).toBe(`e:${at('2026-03-01T10:02')}`) // opened by the first alert
    expect(alerts.map((a) => [a.rule, a.firedAt])).toEqual([
      ['unfollow_burst', at('2026-03-01T10:02')], ['consumption_drop', at('2026-03-06T00:00')], ['inactive_7d', at('2026-03-08T00:00')], ['model_risk', at('2026-03-08T00:00')]
    ])
  })
})
