import { spawnSync } from 'node:child_process'
import { cpSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeJsonEvent } from '../../src/events/jsonl.js'
import type { UserEvent } from '../../src/events/user-event.js'
import { projectRoot, topologyPath } from '../../src/paths.js'
import { makePopulation } from '../../src/sim/populations.js'
import { tempDir } from '../helpers.js'

/**
 * Hostile input as a user meets it in `ebb replay`: a dense population with events from the
 * future, oversized and non-UTF-8 lines, blank lines, and ERASE requests mixed in. Valid events
 * must cost nothing: the outputs equal those of the clean input.
 */
const tmp = tempDir('ebb-hostile-')
afterAll(() => { tmp.cleanup() })
const bin = join(projectRoot(), 'bin', 'ebb.js')
const DAY = 86_400_000

interface Counts { records: number, blankLines: number, eventsApplied: number, usersErased: number, eventsWaiting: number, deadLettersByReason: Record<string, number>, alertsByRule: Record<string, number> }
function replay (input: string, out: string, ...args: string[]): Counts {
  const r = spawnSync(process.execPath, [bin, 'replay', '--in', input, '--out', out, ...args], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(r.stderr)
  return JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Counts
}
const read = (dir: string, name: string): string => readFileSync(join(dir, name), 'utf8')
const jsonl = <T>(dir: string, name: string): T[] => read(dir, name).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as T)

let events: UserEvent[] = []
beforeAll(() => {
  const pop = makePopulation('habits', { users: 400, days: 50, seed: 17, churnRate: 0.3 })
  for (const day of pop.days()) for (const e of day) events.push(e)
  events = events.filter((e) => e.type !== 'ERASE')
})

describe('bounded event time', () => {
  it('events from the future (2099, +1 year, +3 days, an ERASE in 2099) cost no valid event and change no output', () => {
    const clean = join(tmp.dir, 'clean.jsonl')
    writeFileSync(clean, events.map(encodeJsonEvent).join('\n') + '\n')
    const mid = Math.floor(events.length / 2)
    const now = events[mid].ts
    const u = events[mid].userId
    const future = [
      { eventId: 'f-2099', userId: u, type: 'LOGIN', ts: Date.parse('2099-06-01T00:00:00Z') },
      { eventId: 'f-1y', userId: 'someone', type: 'VIEW', ts: now + 365 * DAY, targetId: 'c1', durationMs: 1000 },
      { eventId: 'f-3d', userId: u, type: 'LOGIN', ts: now + 3 * DAY }
    ]
    const lines = events.map(encodeJsonEvent)
    // spread through the second half, each followed by ordinary traffic; one ERASE of nobody in 2099
    lines.splice(mid + 3000, 0, JSON.stringify(future[2]))
    lines.splice(mid + 2000, 0, JSON.stringify(future[1]))
    lines.splice(mid + 1000, 0, JSON.stringify(future[0]))
    lines.splice(mid + 500, 0, JSON.stringify({ userId: 'nobody', type: 'ERASE', ts: Date.parse('2099-01-01T00:00:00Z') }))
    const hostile = join(tmp.dir, 'hostile.jsonl')
    writeFileSync(hostile, lines.join('\n') + '\n')
    const a = replay(clean, join(tmp.dir, 'out-clean'))
    const b = replay(hostile, join(tmp.dir, 'out-hostile'))
    expect(b.deadLettersByReason.late).toBe(a.deadLettersByReason.late)
    expect(b.deadLettersByReason.future).toBe(3)
    expect(b.eventsApplied).toBe(a.eventsApplied + 1) // + the ERASE
    expect(b.usersErased).toBe(1)
    for (const f of ['alerts.jsonl', 'tasks.jsonl', 'outcomes.jsonl']) expect(read(join(tmp.dir, 'out-hostile'), f)).toBe(read(join(tmp.dir, 'out-clean'), f))
    const dead = jsonl<{ reason: string, code: string, detail: string, source: { line: number } }>(join(tmp.dir, 'out-hostile'), 'dlq.jsonl').filter((d) => d.reason === 'future')
    expect(dead.map((d) => d.code)).toEqual(['EBB_EVENT_FUTURE', 'EBB_EVENT_FUTURE', 'EBB_EVENT_FUTURE'])
    expect(dead[0].detail).toContain('2099-06-01T00:00:00.000Z')
    expect(dead[0].detail).toContain('time.future.maxStep')
  })

  it('a real jump of the whole stream is followed (confirmed by the next event), and a waiting event survives a restart', () => {
    const dir = join(tmp.dir, 'jump')
    const state = join(tmp.dir, 'jump-state')
    const t0 = Date.parse('2026-03-02T01:00:00Z')
    const ev = (id: string, user: string, ts: number): string => JSON.stringify({ eventId: id, userId: user, type: 'LOGIN', ts })
    // part 1 ends with an event 10 days ahead: it waits, kept in the state
    writeFileSync(join(tmp.dir, 'p1.jsonl'), [ev('a', 'u1', t0), ev('b', 'u2', t0 + 60_000), ev('c', 'u3', t0 + 10 * DAY)].join('\n') + '\n')
    const p1 = replay(join(tmp.dir, 'p1.jsonl'), dir, '--state', state)
    expect(p1.eventsWaiting).toBe(1)
    expect(p1.eventsApplied).toBe(2)
    // part 2: the stream is really there; the waiting event is applied, the timers of 10 days fire
    writeFileSync(join(tmp.dir, 'p2.jsonl'), ev('d', 'u4', t0 + 10 * DAY + 60_000) + '\n')
    const p2 = replay(join(tmp.dir, 'p2.jsonl'), dir, '--state', state)
    expect(p2.eventsWaiting).toBe(0)
    expect(p2.eventsApplied).toBe(2)
    expect(p2.deadLettersByReason.future).toBe(0)
    expect(p2.alertsByRule.inactive_7d).toBe(2) // u1 and u2, silent for 7 days of the jump
  })
})

describe('records that do not fit', () => {
  it('dead-letters a line over --max-line-bytes with a prefix, its length and hash; invalid UTF-8 with its exact bytes; counts blank lines', () => {
    const ok = events.slice(0, 2000).map(encodeJsonEvent)
    const huge = '{"eventId":"big","userId":"u","type":"VIEW","ts":1772400000000,"targetId":"' + 'x'.repeat(300_000) + '"}'
    const bad1 = Buffer.concat([Buffer.from('{"eventId":"p1","userId":"probe-'), Buffer.from([0xff]), Buffer.from('u","type":"LOGIN","ts":1772400000000}')])
    const bad2 = Buffer.concat([Buffer.from('{"eventId":"p2","userId":"probe-'), Buffer.from([0xfe]), Buffer.from('u","type":"LOGIN","ts":1772400000000}')])
    const parts = [Buffer.from(ok.slice(0, 1000).join('\n') + '\n'), Buffer.from(huge + '\n'), Buffer.from('   \n\t\n'), bad1, Buffer.from('\n'), bad2, Buffer.from('\n'), Buffer.from(ok.slice(1000).join('\n') + '\n'), Buffer.from('\u00a0\n\f\n')]
    const input = join(tmp.dir, 'sizes.jsonl')
    writeFileSync(input, Buffer.concat(parts))
    const out = join(tmp.dir, 'out-sizes')
    const c = replay(input, out, '--max-line-bytes', '65536', '--batch', '333')
    const lines = readFileSync(input).toString('latin1').split('\n').length - 1
    const dead = Object.values(c.deadLettersByReason).reduce((n, x) => n + x, 0)
    expect(c.records + c.blankLines).toBe(lines)
    expect(c.blankLines).toBe(2)
    expect(c.eventsApplied + dead + c.eventsWaiting).toBe(c.records)
    expect(c.deadLettersByReason.too_large).toBe(1)
    const dlq = jsonl<{ reason: string, raw: string, rawBytes: number, rawSha256: string | null, source: { line: number } }>(out, 'dlq.jsonl')
    const big = dlq.find((d) => d.reason === 'too_large')
    expect(big?.source.line).toBe(1001)
    expect(big?.rawBytes).toBe(Buffer.byteLength(huge))
    expect(Buffer.from(big?.raw ?? '', 'base64').toString()).toBe(huge.slice(0, 4096))
    expect(big?.rawSha256).toMatch(/^[0-9a-f]{64}$/)
    const utf = dlq.filter((d) => d.reason === 'undecodable' && d.source.line >= 1004 && d.source.line < lines - 1)
    expect(utf.map((d) => Buffer.from(d.raw, 'base64'))).toEqual([bad1, bad2])
    // white space that is not JSON's (a no-break space, a form feed) is a broken record, not a blank line
    expect(dlq.filter((d) => d.source.line >= lines - 1).map((d) => [d.reason, Buffer.from(d.raw, 'base64').toString()])).toEqual([['undecodable', '\u00a0'], ['undecodable', '\f']])
  })
})

describe('ERASE', () => {
  it('needs only a userId, refuses the user\'s older events that arrive after it, and leaves no file of the state holding the user', () => {
    const victim = events[0].userId
    const mid = Math.floor(events.length / 2)
    const lines = events.slice(0, mid).map(encodeJsonEvent)
    lines.push(JSON.stringify({ userId: victim, type: 'ERASE' }))
    // a producer's retry of the victim's event from before the ERASE, arriving after it
    const before = events.slice(0, mid).filter((e) => e.userId === victim).at(-1) as UserEvent
    lines.push(encodeJsonEvent({ ...before, eventId: before.eventId + '-retry' }))
    for (const e of events.slice(mid, mid + 5000)) if (e.userId !== victim) lines.push(encodeJsonEvent(e))
    const input = join(tmp.dir, 'erase.jsonl')
    writeFileSync(input, lines.join('\n') + '\n')
    const state = join(tmp.dir, 'erase-state')
    const out = join(tmp.dir, 'out-erase')
    const c = replay(input, out, '--state', state)
    expect(c.usersErased).toBe(1)
    const erased = jsonl<{ reason: string, code: string }>(out, 'dlq.jsonl').filter((d) => d.reason === 'erased')
    expect(erased.map((d) => d.code)).toEqual(['EBB_EVENT_ERASED'])
    // every byte of every file of the state directory: other users are there, the victim is not
    const files: string[] = []
    const walk = (d: string): void => { for (const f of readdirSync(d)) { const p = join(d, f); if (statSync(p).isDirectory()) walk(p); else files.push(p) } }
    walk(state)
    const all = Buffer.concat(files.map((f) => readFileSync(f)))
    // SST blocks are ZSTD-compressed, so only some ids show as plain bytes (the WAL's, an
    // uncompressed level's): the scan must find some of the other users for its "absent" to mean anything.
    const others = [...new Set(events.slice(0, mid + 5000).map((e) => e.userId))].filter((u) => u !== victim)
    expect(others.filter((u) => all.includes(Buffer.from(u))).length).toBeGreaterThan(0)
    expect(all.includes(Buffer.from(victim))).toBe(false)
    // the rewritten store is a working store: a second run continues on it
    const more = join(tmp.dir, 'erase-more.jsonl')
    writeFileSync(more, events.slice(mid + 5000, mid + 6000).filter((e) => e.userId !== victim).map(encodeJsonEvent).join('\n') + '\n')
    const c2 = replay(more, join(tmp.dir, 'out-erase-2'), '--state', state)
    expect(c2.deadLettersByReason.late).toBe(0)
    expect(c2.eventsApplied).toBeGreaterThan(900)
  })
})

describe('topology changes', () => {
  it('reordering the rules of the default topology, or adding one, between two runs on the same state changes no alert of the other rules', () => {
    const yaml = readFileSync(topologyPath('default.yaml'), 'utf8').replace(/^ {2}plans: plans\.yaml/m, `  plans: ${topologyPath('plans.yaml')}`)
      .replace(/^model: .*$/m, `model: ${topologyPath('churn-model.json')}`)
    const block = /^ {2}- id: inactive_7d\n(?: {4}.*\n)+/m
    const inactive = (block.exec(yaml) as RegExpExecArray)[0]
    // inactive_7d moved last among the rules, and (another run) a new rule first
    const moved = yaml.replace(inactive, '').replace('\n# From alert to recall task', inactive + '\n# From alert to recall task')
    const added = yaml.replace(/^rules:\n/m, 'rules:\n  - id: inactive_3d\n    when:\n      - { signal: daysInactive, op: ">=", threshold: 3 }\n')
    expect(moved).not.toBe(yaml)
    expect(moved.indexOf('- id: inactive_7d')).toBeGreaterThan(moved.indexOf('- id: model_risk'))
    const topo = (name: string, text: string): string => { const p = join(tmp.dir, name); writeFileSync(p, text); return p }
    const base = topo('base.yaml', yaml)
    const half = Math.floor(events.length / 2)
    writeFileSync(join(tmp.dir, 'h1.jsonl'), events.slice(0, half).map(encodeJsonEvent).join('\n') + '\n')
    writeFileSync(join(tmp.dir, 'h2.jsonl'), events.slice(half).map(encodeJsonEvent).join('\n') + '\n')
    const s0 = join(tmp.dir, 'topo-state')
    replay(join(tmp.dir, 'h1.jsonl'), join(tmp.dir, 'topo-h1'), '--state', s0, '--topology', base)
    const second = (name: string, topology: string): Array<{ userId: string, rule: string, firedAt: number }> => {
      const s = join(tmp.dir, `state-${name}`)
      cpSync(s0, s, { recursive: true })
      replay(join(tmp.dir, 'h2.jsonl'), join(tmp.dir, `out-${name}`), '--state', s, '--topology', topology)
      return jsonl(join(tmp.dir, `out-${name}`), 'alerts.jsonl')
    }
    const same = second('same', base)
    const m = second('moved', topo('moved.yaml', moved))
    const a = second('added', topo('added.yaml', added))
    expect(same.length).toBeGreaterThan(50)
    expect(read(join(tmp.dir, 'out-moved'), 'alerts.jsonl')).toBe(read(join(tmp.dir, 'out-same'), 'alerts.jsonl'))
    expect(m.length).toBe(same.length)
    const key = (x: { userId: string, rule: string, firedAt: number }): string => `${x.userId} ${x.rule} ${x.firedAt}`
    expect(a.filter((x) => x.rule !== 'inactive_3d').map(key)).toEqual(same.map(key))
    expect(a.some((x) => x.rule === 'inactive_3d')).toBe(true)
  })
})
