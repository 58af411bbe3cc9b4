import { describe, expect, it } from 'vitest'
import { TopologyTestDriver } from '../../src/runtime/test-driver.js'
import { decodeState, encodeState, encodeStateWithAvsc } from '../../src/state/state-codec.js'
import { EbbError } from '../../src/errors.js'
import { loadAvroType } from '../../src/events/avro.js'

const stateType = (): ReturnType<typeof loadAvroType> => loadAvroType('user-state.avsc')
import { at, defaultTopology } from '../helpers.js'

describe('the per-user state record', () => {
  it('round-trips through Avro with every field intact', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    const events = []
    // 28 days of a busy user: logins, views, interactions, posts, follows, purchases, messages.
    for (let day = 1; day <= 28; day++) {
      const date = `2026-02-${String(day).padStart(2, '0')}`
      events.push({ userId: 'busy', type: 'LOGIN' as const, ts: at(`${date}T08:00`), tz: 'Asia/Shanghai' })
      for (let k = 0; k < 12; k++) events.push({ userId: 'busy', type: 'VIEW' as const, ts: at(`${date}T12:${String(k).padStart(2, '0')}`) })
      for (let k = 0; k < 4; k++) events.push({ userId: 'busy', type: 'INTERACT' as const, ts: at(`${date}T13:${String(k).padStart(2, '0')}`) })
      if (day % 3 === 0) events.push({ userId: 'busy', type: 'POST' as const, ts: at(`${date}T14:00`) })
      if (day % 4 === 0) events.push({ userId: 'busy', type: 'FOLLOW' as const, ts: at(`${date}T15:00`) })
      if (day % 7 === 0) events.push({ userId: 'busy', type: 'PURCHASE' as const, ts: at(`${date}T16:00`), amount: 19.9 })
      if (day % 2 === 0) events.push({ userId: 'busy', type: 'MESSAGE_DELIVERED' as const, ts: at(`${date}T18:00`), channel: 'PUSH' as const })
    }
    events.push({ userId: 'busy', type: 'CONSENT_REVOKED' as const, ts: at('2026-02-28T20:00'), channel: 'SMS' as const })
    await d.pipe(...events)
    const s = d.user('busy')
    if (s === undefined) throw new Error('no state')
    const bytes = encodeState(s)
    // The budget: a few hundred bytes per user; a busy month fits in well under 300.
    expect(bytes.length).toBeLessThan(300)
    // The hand-written flush encoder writes exactly avsc's bytes for the same record.
    expect(bytes).toEqual(encodeStateWithAvsc(s))
    const score = s.churnScore
    s.churnScore = 0.4375
    expect(encodeState(s)).toEqual(encodeStateWithAvsc(s))
    s.churnScore = score
    const back = decodeState('busy', bytes)
    expect(encodeState(back)).toEqual(bytes)
    for (const k of ['firstDay', 'lastEventTs', 'headDay', 'lastLoginTs', 'lastLoginDay', 'lastPurchaseDay', 'followCount', 'loginBits', 'recentPos', 'ruleCond', 'ruleFired', 'episodeOpenTs', 'timerDue', 'consentRevoked'] as const) {
      expect(back[k]).toEqual(s[k])
    }
    expect([...back.words]).toEqual([...s.words])
    expect(back.purchases).toEqual(s.purchases)
    expect(back.messages).toEqual(s.messages)
    expect(back.zone.id).toBe('Asia/Shanghai')
    expect(back.consentRevoked).toBe(0b10) // SMS
    expect(d.signals('busy', at('2026-02-28T22:00'))).toEqual(await signalsAfterReload(bytes))
  })

  it('writes avsc\'s bytes for fresh, sparse and extreme states', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    await d.pipe({ userId: 'új-用户-😀', type: 'VIEW', ts: at('2026-03-01T10:00'), tz: 'America/Los_Angeles' })
    d.settle()
    const s = d.user('új-用户-😀')
    if (s === undefined) throw new Error('no state')
    expect(encodeState(s)).toEqual(encodeStateWithAvsc(s))
    s.loginBits = 1 << 31 // negative int32
    s.words.fill(65535)
    s.purchases = [s.headDay - 89, 99_999_999_99]
    s.timerDue = 4_102_444_800_000
    expect(encodeState(s)).toEqual(encodeStateWithAvsc(s))
    expect(decodeState('x', encodeState(s)).words[5]).toBe(65535)
  })

  it('keeps the churn model\'s spell record, and reads a state of layout 2 (before it) with no spell', async () => {
    const d = await TopologyTestDriver.create(defaultTopology())
    for (let day = 1; day <= 20; day++) await d.pipe({ userId: 'quiet', type: 'LOGIN', ts: at(`2026-02-${String(day).padStart(2, '0')}T08:00`), tz: 'Asia/Shanghai' })
    d.advanceTo(at('2026-02-25T00:00')) // the midnights of 02-21 … 02-25 scored: silent days 0 … 4
    const s = d.user('quiet')
    if (s === undefined) throw new Error('no state')
    expect([s.spellDay, s.spellFirst, s.spellScored, s.spellResolved]).toEqual([s.lastLoginDay, 0, 5, 0])
    expect(s.spellMax).toBeGreaterThan(-2147483648)
    const bytes = encodeState(s)
    expect(bytes).toEqual(encodeStateWithAvsc(s))
    const back = decodeState('quiet', bytes)
    for (const k of ['spellDay', 'spellFirst', 'spellScored', 'spellResolved', 'spellMax'] as const) expect(back[k]).toBe(s[k])
    expect([...back.words]).toEqual([...s.words])
    // A layout-2 record (written by the Ebb before the churn model learned) reads through schema
    // resolution: the new fields take their defaults, everything else is kept.
    const v2 = loadAvroType('history/user-state-v2.avsc')
    const old = stateType().fromBuffer(bytes) as Record<string, unknown>
    const legacy = v2.toBuffer({ ...old, v: 2 })
    const read = decodeState('quiet', legacy)
    expect(read.spellDay).toBe(-2147483648)
    expect(read.lastLoginDay).toBe(s.lastLoginDay)
    expect(read.loginBits).toBe(s.loginBits)
    expect(() => decodeState('x', Buffer.concat([Buffer.from([2 * 9]), legacy.subarray(1)]))).toThrow(/layout version 9, this Ebb reads versions 2 and 3/)
  })

  it('refuses bytes it cannot read with EBB_STATE_CORRUPT', () => {
    expect(() => decodeState('x', Buffer.from([1, 2, 3]))).toThrow(EbbError)
  })
})

async function signalsAfterReload (bytes: Buffer): Promise<Record<string, unknown>> {
  const d = await TopologyTestDriver.create(defaultTopology())
  const { stateKey } = await import('../../src/state/keys.js')
  const batch = d.store.batch()
  batch.put(stateKey('busy'), bytes)
  await batch.write()
  return d.signals('busy', at('2026-02-28T22:00'))
}
