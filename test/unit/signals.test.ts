import { describe, expect, it } from 'vitest'
import { TopologyTestDriver } from '../../src/runtime/test-driver.js'
import { daysInactive } from '../../src/signals/signals.js'
import { zoneClock } from '../../src/time/zones.js'
import { at, defaultTopology } from '../helpers.js'

const SH = 'Asia/Shanghai'
const NY = 'America/New_York'

// Signal tests pipe one user's sparse history: no stream of other users confirms the first event
// or a jump of days, so bounded event time is out of the way here (it has its own tests): a large
// time.future.maxStep, and each pipe settled as the next event of the present would.
async function driver (): Promise<TopologyTestDriver> {
  const d = await TopologyTestDriver.create({ ...defaultTopology(), maxStepMs: 400 * 86_400_000 })
  const pipe = d.pipe.bind(d)
  d.pipe = async (...events) => { await pipe(...events); d.settle() }
  return d
}

describe('daysInactive (complete local days since the last login day)', () => {
  it('counts calendar days across midnight, not 24-hour periods (the example of the contract)', async () => {
    const d = await driver()
    await d.pipe({ userId: 'a', type: 'LOGIN', ts: at('2026-03-02T23:00'), tz: SH }) // Monday 23:00
    expect(d.signals('a', at('2026-03-02T23:59')).daysInactive).toBe(0)
    expect(d.signals('a', at('2026-03-03T00:00')).daysInactive).toBe(0) // Tuesday 00:00
    expect(d.signals('a', at('2026-03-04T00:00')).daysInactive).toBe(1) // Wednesday 00:00
    expect(d.signals('a', at('2026-03-09T23:59')).daysInactive).toBe(6)
    expect(d.signals('a', at('2026-03-10T00:00')).daysInactive).toBe(7) // next Tuesday 00:00
  })

  it('is undefined before any login', async () => {
    const d = await driver()
    await d.pipe({ userId: 'b', type: 'VIEW', ts: at('2026-03-02T10:00'), tz: SH })
    expect(d.signals('b', at('2026-03-20T10:00')).daysInactive).toBeNull()
  })

  it('is DST-correct in America/New_York (the 23-hour day of 8 March 2026)', async () => {
    const d = await driver()
    // Saturday 7 March 23:30 EST (UTC-5) = 04:30Z on the 8th.
    await d.pipe({ userId: 'n', type: 'LOGIN', ts: '2026-03-08T04:30:00Z', tz: NY })
    const ny = zoneClock(NY)
    // Sunday 8 March is 23 hours long: local midnight on the 9th is 04:00Z (EDT, UTC-4), not 05:00Z.
    expect(ny.startOfDay(ny.localDay(Date.parse('2026-03-08T12:00:00Z')) + 1)).toBe(Date.parse('2026-03-09T04:00:00Z'))
    expect(d.signals('n', '2026-03-09T03:59:59Z').daysInactive).toBe(0) // still Sunday 23:59 EDT
    expect(d.signals('n', '2026-03-09T04:00:00Z').daysInactive).toBe(1) // Monday 00:00 EDT
    // A 24-hour division from the login would still say 0 at Monday 00:30 EDT (25 h after the login
    // minus the lost hour is still < 48 h) and 1 only from Monday 23:30; calendar days say 1.
    expect(d.signals('n', '2026-03-09T04:30:00Z').daysInactive).toBe(1)
    // The inactive_7d timer fires at local midnight of Sunday 15 March (EDT, 04:00Z).
    d.advanceTo('2026-03-15T03:59:59Z')
    expect(d.alertsOf('inactive_7d')).toHaveLength(0)
    d.advanceTo('2026-03-15T04:00:00Z')
    expect(d.alertsOf('inactive_7d').map((a) => a.firedAt)).toEqual([Date.parse('2026-03-15T04:00:00Z')])
  })

  it('follows a change of the user\'s time zone (the latest tz wins)', async () => {
    const d = await driver()
    // Login at 2026-03-02T20:00Z: in Shanghai that is already Tuesday 3 March 04:00.
    await d.pipe({ userId: 't', type: 'LOGIN', ts: '2026-03-02T20:00:00Z', tz: SH })
    expect(d.user('t')?.lastLoginDay).toBe(zoneClock(SH).localDay(Date.parse('2026-03-02T20:00:00Z')))
    // The user moves to New York; their next event says so. Days now count in New York time.
    await d.pipe({ userId: 't', type: 'VIEW', ts: '2026-03-03T15:00:00Z', tz: NY })
    expect(d.user('t')?.zone.id).toBe(NY)
    // Wednesday 4 March 00:00 in New York (05:00Z): one complete day (Tue 3) since the login day (Tue 3)? The
    // login day stays the Shanghai date Tuesday 3 March, so NY Wednesday gives 0 and NY Thursday gives 1.
    expect(d.signals('t', '2026-03-04T05:00:00Z').daysInactive).toBe(0)
    expect(d.signals('t', '2026-03-05T05:00:00Z').daysInactive).toBe(1)
    // The pending midnight timer moved to New York's midnight: it was re-armed, not left at Shanghai's.
    expect(d.user('t')?.timerDue).toBe(zoneClock(NY).startOfDay(zoneClock(NY).localDay(Date.parse('2026-03-03T15:00:00Z')) + 1))
  })

  it('never divides milliseconds by a day: pure function check on the state', async () => {
    const d = await driver()
    await d.pipe({ userId: 'p', type: 'LOGIN', ts: at('2026-03-02T00:01'), tz: SH })
    const s = d.user('p')
    expect(s).toBeDefined()
    if (s === undefined) return
    expect(daysInactive(s, s.lastLoginDay)).toBe(0)
    expect(daysInactive(s, s.lastLoginDay + 1)).toBe(0)
    expect(daysInactive(s, s.lastLoginDay + 8)).toBe(7)
  })
})

describe('loginDays7 / loginDays28', () => {
  it('counts distinct local login days in the window', async () => {
    const d = await driver()
    await d.pipe(
      { userId: 'l', type: 'LOGIN', ts: at('2026-03-01T09:00'), tz: SH },
      { userId: 'l', type: 'LOGIN', ts: at('2026-03-01T21:00'), tz: SH }, // same day
      { userId: 'l', type: 'LOGIN', ts: at('2026-03-05T09:00'), tz: SH },
      { userId: 'l', type: 'LOGIN', ts: at('2026-03-20T09:00'), tz: SH }
    )
    const s = d.signals('l', at('2026-03-20T12:00'))
    expect(s.loginDays7).toBe(1)
    expect(s.loginDays28).toBe(3)
    expect(s.activeHour).toBe(9)
  })
})

describe('unfollowRatio7d', () => {
  it('is unfollows in 7 days over the creators followed 7 days ago', async () => {
    const d = await driver()
    const follows = [1, 2, 3, 4, 5, 6].map((i) => ({ userId: 'f', type: 'FOLLOW' as const, ts: at(`2026-03-01T10:0${i}`), tz: SH, targetId: `c${i}` }))
    await d.pipe(...follows)
    await d.pipe(
      { userId: 'f', type: 'UNFOLLOW', ts: at('2026-03-10T10:00'), tz: SH, targetId: 'c1' },
      { userId: 'f', type: 'UNFOLLOW', ts: at('2026-03-10T10:01'), tz: SH, targetId: 'c2' },
      { userId: 'f', type: 'FOLLOW', ts: at('2026-03-10T10:02'), tz: SH, targetId: 'c9' }
    )
    // followed now 5 (6 − 2 + 1), unfollowed in window 2, followed in window 1 → base 6; ratio 2/6.
    expect(d.signals('f', at('2026-03-10T12:00')).unfollowRatio7d).toBeCloseTo(2 / 6, 10)
  })

  it('is undefined when the base is below minFollowBase (4)', async () => {
    const d = await driver()
    await d.pipe(
      { userId: 'g', type: 'FOLLOW', ts: at('2026-03-01T10:00'), tz: SH },
      { userId: 'g', type: 'FOLLOW', ts: at('2026-03-01T10:01'), tz: SH },
      { userId: 'g', type: 'FOLLOW', ts: at('2026-03-01T10:02'), tz: SH },
      { userId: 'g', type: 'UNFOLLOW', ts: at('2026-03-10T10:00'), tz: SH },
      { userId: 'g', type: 'UNFOLLOW', ts: at('2026-03-10T10:01'), tz: SH }
    )
    // base = 1 + 2 − 0 = 3 < 4: a 67% ratio on three creators is noise, not a signal.
    expect(d.signals('g', at('2026-03-10T12:00')).unfollowRatio7d).toBeNull()
    expect(d.alertsOf('unfollow_burst')).toHaveLength(0)
  })
})

describe('consumptionDrop / interactionDrop / postDrop', () => {
  it('compares the last 7 days with the weekly average of the 28 days before', async () => {
    const d = await driver()
    const events = []
    // 8 views a day on 10 days of the baseline (2026-02-05 .. 2026-03-04 is the 28-day baseline for 2026-03-11).
    for (let day = 10; day < 20; day++) for (let k = 0; k < 8; k++) events.push({ userId: 'v', type: 'VIEW' as const, ts: at(`2026-02-${day}T1${k}:00`), tz: SH })
    // 4 views in the recent week 2026-03-05 .. 2026-03-11.
    for (let k = 0; k < 4; k++) events.push({ userId: 'v', type: 'VIEW' as const, ts: at(`2026-03-06T1${k}:00`), tz: SH })
    await d.pipe(...events)
    expect(d.deadLetters).toHaveLength(0)
    // baseline 80 views over 4 weeks → 20/week; recent 4 → drop 1 − 4/20 = 0.8.
    expect(d.signals('v', at('2026-03-11T12:00')).consumptionDrop).toBeCloseTo(0.8, 10)
    expect(d.signals('v', at('2026-03-11T12:00')).interactionDrop).toBeNull()
  })

  it('is undefined when the baseline weekly average is below minWeeklyViews (5)', async () => {
    const d = await driver()
    const events = []
    // 16 views in the baseline → 4 a week, below 5.
    for (let k = 0; k < 16; k++) events.push({ userId: 'w', type: 'VIEW' as const, ts: at(`2026-02-1${k % 10}T0${k % 8}:00`), tz: SH })
    await d.pipe(...events.sort((a, b) => a.ts - b.ts))
    expect(d.deadLetters).toHaveLength(0)
    expect(d.user('w')?.words.slice(0, 36).reduce((a, b) => a + b, 0)).toBe(16)
    expect(d.signals('w', at('2026-03-11T12:00')).consumptionDrop).toBeNull()
  })

  it('uses the same shape for POST and INTERACT', async () => {
    const d = await driver()
    const events = []
    for (let k = 0; k < 8; k++) events.push({ userId: 'x', type: 'POST' as const, ts: at(`2026-02-1${k}T10:00`), tz: SH })
    for (let k = 0; k < 20; k++) events.push({ userId: 'x', type: 'INTERACT' as const, ts: at(`2026-02-1${k % 10}T1${k % 10}:00`), tz: SH })
    events.push({ userId: 'x', type: 'POST' as const, ts: at('2026-03-09T10:00'), tz: SH })
    await d.pipe(...events.sort((a, b) => a.ts - b.ts))
    expect(d.deadLetters).toHaveLength(0)
    const s = d.signals('x', at('2026-03-11T12:00'))
    expect(s.postDrop).toBeCloseTo(1 - 1 / 2, 10) // 8 posts / 4 weeks = 2 a week; 1 this week
    expect(s.interactionDrop).toBeCloseTo(1, 10) // 20 / 4 = 5 a week; none this week
  })
})

describe('RFM, response rate, account age', () => {
  it('computes recency, frequency, monetary, value tier and response tier', async () => {
    const d = await driver()
    await d.pipe(
      { userId: 'r', type: 'LOGIN', ts: at('2026-01-01T10:00'), tz: SH },
      { userId: 'r', type: 'PURCHASE', ts: at('2026-02-01T10:00'), tz: SH, amount: 30 },
      { userId: 'r', type: 'PURCHASE', ts: at('2026-03-01T10:00'), tz: SH, amount: 40.5 },
      { userId: 'r', type: 'MESSAGE_DELIVERED', ts: at('2026-03-02T10:00'), tz: SH, channel: 'PUSH' },
      { userId: 'r', type: 'MESSAGE_DELIVERED', ts: at('2026-03-03T10:00'), tz: SH, channel: 'PUSH' },
      { userId: 'r', type: 'MESSAGE_DELIVERED', ts: at('2026-03-04T10:00'), tz: SH, channel: 'PUSH' },
      { userId: 'r', type: 'MESSAGE_OPENED', ts: at('2026-03-04T11:00'), tz: SH, channel: 'PUSH' }
    )
    const s = d.signals('r', at('2026-03-05T12:00'))
    expect(s.rfmRecencyDays).toBe(4)
    expect(s.rfmFrequency90d).toBe(3) // login + two purchase days; messages are not engagement
    expect(s.rfmMonetary90d).toBeCloseTo(70.5, 10)
    expect(s.valueTier).toBe('MID') // ≥ 50 spent
    expect(s.responseRate).toBeCloseTo(1 / 3, 10)
    expect(s.responseTier).toBe('HIGH') // ≥ 0.3
    expect(s.accountAgeDays).toBe(63)
    // 90 days on, the purchases have left the window.
    const later = d.signals('r', at('2026-06-01T12:00'))
    expect(later.rfmMonetary90d).toBe(0)
    expect(later.valueTier).toBe('LOW')
    expect(later.responseTier).toBe('HIGH') // no new event moved the rings: messages of 2026-03 are within 90 days of 06-01
  })
})
