import { describe, expect, it } from 'vitest'
import { TopologyTestDriver } from '../../src/runtime/test-driver.js'
import { at, defaultTopology } from '../helpers.js'

// Asia/Shanghai is UTC+8 all year, so local times are easy to write.
const TZ = 'Asia/Shanghai'

describe('inactive_7d (timer at local midnight)', () => {
  it('fires at the local midnight when daysInactive reaches 7, once per episode', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    // Monday 2026-03-02 23:00 local: last login.
    await d.pipe({ userId: 'u1', type: 'LOGIN', ts: at('2026-03-02T23:00'), tz: TZ })
    // Next Monday 23:59 local: daysInactive is 6, nothing yet.
    d.advanceTo(at('2026-03-09T23:59'))
    expect(d.alertsOf('inactive_7d')).toHaveLength(0)
    // Next Tuesday 00:00 local: 7 complete days (Tue..Mon) without a login.
    d.advanceTo(at('2026-03-10T00:00'))
    const alerts = d.alertsOf('inactive_7d')
    expect(alerts).toHaveLength(1)
    expect(alerts[0].firedAt).toBe(at('2026-03-10T00:00'))
    expect(alerts[0].reasons[0]).toMatchObject({ code: 'DAYS_INACTIVE', value: 7, threshold: 7 })
    expect(alerts[0].episodeId).toBe(`u1:${at('2026-03-10T00:00')}`)
    // Days 8, 9, ...: condition stays true, no second alert.
    d.advanceTo(at('2026-03-20T00:00'))
    expect(d.alertsOf('inactive_7d')).toHaveLength(1)
  })
})
