import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { projectRoot } from '../../src/paths.js'
import { tempDir } from '../helpers.js'

const root = projectRoot()
const FIXTURE = join(root, 'test', 'fixtures', 'replay-small.jsonl')
const UNTIL = '2026-03-12T00:00:00+08:00'

/** Runs the real `ebb` bin (compiled by `npm run build`, as after `npm ci`). */
function ebb (...args: string[]): { code: number | null, stdout: string, stderr: string } {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'ebb.js'), ...args], { encoding: 'utf8', cwd: root })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

const tmp = tempDir('ebb-replay-test-')
afterAll(() => { tmp.cleanup() })

function lineOf (needle: string): number {
  return readFileSync(FIXTURE, 'utf8').split('\n').findIndex((l) => l.includes(needle)) + 1
}

describe('ebb replay on a hand-written fixture', () => {
  const out1 = join(tmp.dir, 'run1')
  const out2 = join(tmp.dir, 'run2')
  const run1 = ebb('replay', '--in', FIXTURE, '--out', out1, '--until', UNTIL)
  const run2 = ebb('replay', '--in', FIXTURE, '--out', out2, '--until', UNTIL, '--batch', '7')

  it('exits 0 and prints a summary', () => {
    expect(run1.stderr).toBe('')
    expect(run1.code).toBe(0)
    expect(run1.stdout).toMatch(/inactive_7d\s+4/)
    expect(run1.stdout).toMatch(/model_risk\s+\d+/) // the shipped model scores every event
  })

  it('is deterministic: two runs (different batch sizes) give byte-identical outputs', () => {
    expect(run2.code).toBe(0)
    for (const f of ['alerts.jsonl', 'tasks.jsonl', 'outcomes.jsonl', 'dlq.jsonl', 'summary.json', 'kpis.json']) {
      expect(readFileSync(join(out2, f))).toEqual(readFileSync(join(out1, f)))
    }
  })

  it('decides every alert and writes one task per first alert of an episode, with the same taskIds in both runs', () => {
    const tasks = readFileSync(join(out1, 'tasks.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { taskId: string, episodeId: string, alertId: string })
    const alerts = readFileSync(join(out1, 'alerts.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { alertId: string, decision: string | null, taskId: string | null })
    expect(alerts.every((a) => a.decision !== null)).toBe(true)
    expect(tasks.length).toBeGreaterThan(0)
    expect(tasks.every((t) => /^t[0-9a-f]{16}$/.test(t.taskId))).toBe(true)
    for (const t of tasks) expect(alerts.find((a) => a.alertId === t.alertId)?.taskId).toBe(t.taskId)
    expect(new Set(tasks.map((t) => t.episodeId)).size).toBe(tasks.length)
    const kpis = JSON.parse(readFileSync(join(out1, 'kpis.json'), 'utf8')) as { overall: { treatment: number } }
    expect(kpis.overall.treatment).toBe(tasks.length)
    expect(run1.stdout).toMatch(/recall within the first task's window: treatment/)
  })

  it('gives the alerts the README and docs/rules.md predict, at the times they predict', () => {
    const all = readFileSync(join(out1, 'alerts.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { userId: string, rule: string, firedAt: number, episodeId: string, score: number | null, reasons: Array<{ code: string, value: number, op: string }> })
    // On a stream this small inactive_7d never alerts the 20 times the model needs before it
    // chooses its own threshold (docs/churn-model.md): model_risk alerts as inactive_7d does,
    // and says so; its reasons still explain the score. The learned threshold is tested in test/model.
    const model = all.filter((a) => a.rule === 'model_risk')
    const week = all.filter((a) => a.rule === 'inactive_7d')
    expect(model.map((a) => [a.userId, a.firedAt])).toEqual(week.map((a) => [a.userId, a.firedAt]))
    for (const a of model) {
      expect(a.score).toBeGreaterThan(0)
      expect(a.reasons[0].code).toBe('DAYS_INACTIVE')
      expect(a.reasons.slice(1).every((r) => r.op === 'contribution')).toBe(true)
    }
    const alerts = all.filter((a) => a.rule !== 'model_risk')
    expect(alerts.map((a) => [a.userId, a.rule, new Date(a.firedAt).toISOString()])).toEqual([
      // 2 views a day 02-10..02-21, none after: at 02-28 00:00 local the 7 complete days before
      // (02-21..02-27) hold 2 views against 22 in the 28 days before them (5.5 a week): drop 0.64.
      ['u-drop', 'consumption_drop', '2026-02-27T16:00:00.000Z'],
      // last login 02-21 → 7 full days at 03-01 00:00 local
      ['u-drop', 'inactive_7d', '2026-02-28T16:00:00.000Z'],
      // 6 creators followed 02-20, 3 unfollowed 03-05 10:00–10:02: 3/6 = 0.5 at the third unfollow
      ['u-burst', 'unfollow_burst', '2026-03-05T02:02:00.000Z'],
      ['u-burst', 'inactive_7d', '2026-03-08T16:00:00.000Z'],
      // last login Monday 03-02 23:00 local → next Tuesday 03-10 00:00 local
      ['u-inactive', 'inactive_7d', '2026-03-09T16:00:00.000Z'],
      // New York: last login Tuesday 03-03 22:00 EST; clocks go forward 03-08, so Wednesday 03-11
      // 00:00 local is 04:00Z (EDT), not 05:00Z
      ['u-ny', 'inactive_7d', '2026-03-11T04:00:00.000Z']
    ])
    const burst = alerts.filter((a) => a.userId === 'u-burst')
    expect(burst[0].episodeId).toBe(burst[1].episodeId) // one risk episode
    expect(burst[0].reasons[0]).toMatchObject({ code: 'UNFOLLOW_BURST', value: 0.5 })
  })

  it('sends each kind of bad input to the dead letters with its reason, line and raw bytes', () => {
    const dlq = readFileSync(join(out1, 'dlq.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { reason: string, code: string, detail: string, raw: string, source: { file: string, line: number } })
    const rows = dlq.map((d) => [d.reason, d.source.line])
    expect(rows).toEqual([
      ['undecodable', lineOf('"bad-json"')],
      ['invalid', lineOf('"bad-type"')],
      ['invalid', lineOf('"bad-missing"')],
      ['invalid', lineOf('"bad-ts"')],
      ['duplicate', lineOf('"e053"') + 1],
      ['late', lineOf('"late-1"')]
    ])
    expect(dlq[1].detail).toContain('unknown event type "LIKE"')
    expect(dlq[2].detail).toContain('userId')
    expect(dlq[3].detail).toContain('ts')
    const lines = readFileSync(FIXTURE, 'utf8').split('\n')
    for (const d of dlq) {
      expect(d.source.file).toBe('replay-small.jsonl')
      expect(Buffer.from(d.raw, 'base64').toString('utf8')).toBe(lines[d.source.line - 1])
      expect(d.code).toMatch(/^EBB_EVENT_/)
    }
  })

  it('writes counts that add up: every record is applied or dead-lettered', () => {
    const s = JSON.parse(readFileSync(join(out1, 'summary.json'), 'utf8')) as { records: number, eventsApplied: number, deadLettersByReason: Record<string, number> }
    const dead = Object.values(s.deadLettersByReason).reduce((a, b) => a + b, 0)
    const nonEmpty = readFileSync(FIXTURE, 'utf8').split('\n').filter((l) => l.trim() !== '').length
    expect(s.records).toBe(nonEmpty)
    expect(s.eventsApplied + dead).toBe(s.records)
  })
})

describe('ebb replay: bad usage and configuration exit 2 with a message that says what to fix', () => {
  it('a missing --in', () => {
    const r = ebb('replay', '--out', join(tmp.dir, 'x'))
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--in is required/)
  })

  it('an unknown option', () => {
    const r = ebb('replay', '--in', FIXTURE, '--out', join(tmp.dir, 'x'), '--fast')
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--fast/)
  })

  it('an input file that does not exist', () => {
    const r = ebb('replay', '--in', join(tmp.dir, 'nope.jsonl'), '--out', join(tmp.dir, 'x'))
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/nope\.jsonl/)
  })

  it('an --until without an offset', () => {
    const r = ebb('replay', '--in', FIXTURE, '--out', join(tmp.dir, 'x'), '--until', '2026-03-12T00:00')
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/offset/)
  })

  it('a topology with an unknown signal names the file and line', () => {
    const bad = join(tmp.dir, 'bad.yaml')
    writeFileSync(bad, readFileSync(join(root, 'topologies', 'default.yaml'), 'utf8').replace('signal: unfollowRatio7d', 'signal: unfolowRatio'))
    const r = ebb('replay', '--in', FIXTURE, '--out', join(tmp.dir, 'x'), '--topology', bad)
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/bad\.yaml:\d+: rule unfollow_burst: unknown signal "unfolowRatio"/)
  })

  it('an unknown command', () => {
    const r = ebb('frobnicate')
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/unknown command/)
  })
})

describe('ebb replay: inputs that were not what was meant are refused or fail, saying what happened', () => {
  it('a gzip-compressed input: exit 2 before reading it', () => {
    const gz = join(tmp.dir, 'events.jsonl.gz')
    writeFileSync(gz, gzipSync(readFileSync(FIXTURE)))
    const r = ebb('replay', '--in', gz, '--out', join(tmp.dir, 'gz'))
    expect(r.code).toBe(2)
    expect(r.stderr.trim()).toBe(`ebb replay: ${gz} is gzip-compressed: decompress it first (gunzip -k, or zcat F > F.jsonl) [EBB_INPUT_COMPRESSED]`)
  })

  it('a CSV file: every record a dead letter, exit 1 with the count and a hint; --max-dead-letter-share 1 accepts it', () => {
    const csv = join(tmp.dir, 'events.csv')
    writeFileSync(csv, 'eventId,userId,type,ts\ne1,u1,LOGIN,2026-03-02T09:00:00Z\ne2,u1,VIEW,2026-03-02T09:05:00Z\n')
    const r = ebb('replay', '--in', csv, '--out', join(tmp.dir, 'csv'))
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/3 of 3 records were dead letters \(3 undecodable, in .*dlq\.jsonl\): is the file JSON Lines .*, CSV or Avro\? Exit 1 above a share of 0\.5/)
    expect(readFileSync(join(tmp.dir, 'csv', 'dlq.jsonl'), 'utf8').trim().split('\n')).toHaveLength(3)
    expect(ebb('replay', '--in', csv, '--out', join(tmp.dir, 'csv1'), '--max-dead-letter-share', '1').code).toBe(0)
  })

  it('a --state already past the input: exit 2 before any dead letter; --accept-late goes on (and fails on the late share)', () => {
    const state = join(tmp.dir, 'past-state')
    expect(ebb('replay', '--in', FIXTURE, '--out', join(tmp.dir, 'past1'), '--state', state, '--until', UNTIL).code).toBe(0)
    const before = readFileSync(join(tmp.dir, 'past1', 'alerts.jsonl'))
    const again = ebb('replay', '--in', FIXTURE, '--out', join(tmp.dir, 'past1'), '--state', state)
    expect(again.code).toBe(2)
    expect(readFileSync(join(tmp.dir, 'past1', 'alerts.jsonl'))).toEqual(before) // the refused run truncated nothing
    expect(again.stderr).toMatch(/the state in .*past-state is at stream time 2026-03-11T1\d:\d\d:00\.000Z, and replay-small\.jsonl starts at .*would all be late.*--accept-late/)
    const forced = ebb('replay', '--in', FIXTURE, '--out', join(tmp.dir, 'past3'), '--state', state, '--accept-late')
    expect(forced.code).toBe(1)
    expect(forced.stderr).toMatch(/records were dead letters \(\d+ late,.*is --state already past it\?/)
  })
})

describe('ebb check reads the events as the engine does', () => {
  // Found by a hostile-input run (12-07): check crashed on a zone the engine had dead-lettered,
  // skipped JSON written with spaces, and judged quiet hours in a user's first zone, not the one
  // the engine decided in. Each input here replays cleanly; check must agree every rule was kept.
  const cases: Record<string, string[]> = {
    'a zone that does not exist (the engine dead-letters the line)': [
      '{"eventId":"e1","userId":"u1","type":"LOGIN","ts":"2026-01-05T09:00:00Z"}',
      '{"eventId":"e2","userId":"u2","type":"LOGIN","ts":"2026-01-05T09:01:00Z"}',
      '{"eventId":"e3","userId":"u2","type":"CONSENT_GRANTED","channel":"PUSH","ts":"2026-01-05T09:02:00Z","tz":"Mars/Olympus"}'
    ],
    'JSON with spaces': [
      '{"eventId": "e1", "userId": "u1", "type": "LOGIN", "ts": "2026-01-05T09:00:00Z", "tz": "America/Los_Angeles"}',
      '{"eventId": "e2", "userId": "u2", "type": "LOGIN", "ts": "2026-01-05T09:01:00Z", "tz": "America/Los_Angeles"}'
    ],
    'a user who moves to another zone': [
      '{"eventId":"e1","userId":"u1","type":"LOGIN","ts":"2026-01-05T17:59:00Z"}',
      '{"eventId":"e2","userId":"u2","type":"VIEW","ts":"2026-01-05T18:00:00Z","tz":"Asia/Shanghai"}',
      '{"eventId":"e3","userId":"u2","type":"LOGIN","ts":"2026-01-05T18:01:00Z","tz":"America/Los_Angeles"}'
    ]
  }
  it.each(Object.keys(cases))('%s', (name) => {
    const dir = join(tmp.dir, `check-${Object.keys(cases).indexOf(name)}`)
    const events = `${dir}.jsonl`
    writeFileSync(events, cases[name].join('\n') + '\n')
    const r = ebb('replay', '--in', events, '--out', dir, '--until', '2026-01-25T00:00:00Z')
    expect(r.code).toBe(0)
    const tasks = readFileSync(join(dir, 'tasks.jsonl'), 'utf8').trim().split('\n').filter((l) => l !== '')
    expect(tasks.length).toBeGreaterThan(0) // something to check
    const c = ebb('check', '--in', events, '--out', dir)
    expect(c.stderr).not.toMatch(/\n\s+at /)
    expect(c.stdout).toMatch(/every rule kept/)
    expect(c.code).toBe(0)
  })
})

describe('ebb replay and the model commands at the edges a hostile-input run found (12-07)', () => {
  it('a --until far in the future, or not on the calendar, is refused at once instead of firing every midnight until then', () => {
    for (const [until, what] of [['9999-12-31T00:00:00Z', 'is outside 2000..2100'], ['+275760-09-13T00:00:00Z', 'is not an instant'], ['2026-02-30T00:00:00Z', 'is not a real calendar date and time'], ['1700000000', 'is outside 2000..2100']]) {
      const r = spawnSync(process.execPath, [join(root, 'bin', 'ebb.js'), 'replay', '--in', FIXTURE, '--out', join(tmp.dir, 'far'), '--until', until], { encoding: 'utf8', timeout: 20_000 })
      expect(r.status, until).toBe(2)
      expect(r.stderr, until).toContain(`--until "${until}" ${what}`)
    }
  })

  it('an --out that cannot be made (under /proc) is refused in words, not a spin at 100% CPU', () => {
    const r = spawnSync(process.execPath, [join(root, 'bin', 'ebb.js'), 'replay', '--in', FIXTURE, '--out', '/proc/ebb-nope/out'], { encoding: 'utf8', timeout: 20_000 })
    expect(r.signal).toBeNull()
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/cannot write to \/proc\/ebb-nope\/out: .*ENOENT.*\[EBB_OUTPUT_NOT_WRITABLE\]/)
  })

  it('an event still waiting for confirmation when the input ends is a dead letter without --state, and kept with one', () => {
    const one = join(tmp.dir, 'one.jsonl')
    writeFileSync(one, '{"eventId":"e1","userId":"u1","type":"LOGIN","ts":"2026-01-05T09:00:00Z","tz":"Asia/Shanghai"}\n')
    const r = ebb('replay', '--in', one, '--out', join(tmp.dir, 'one'))
    const counts = JSON.parse(readFileSync(join(tmp.dir, 'one', 'summary.json'), 'utf8')) as { records: number, eventsApplied: number, eventsWaiting: number, deadLettersByReason: Record<string, number> }
    expect([counts.records, counts.eventsApplied, counts.eventsWaiting, counts.deadLettersByReason.future]).toEqual([1, 0, 0, 1])
    const dead = JSON.parse(readFileSync(join(tmp.dir, 'one', 'dlq.jsonl'), 'utf8')) as { reason: string, code: string, detail: string }
    expect([dead.reason, dead.code]).toEqual(['future', 'EBB_EVENT_UNCONFIRMED'])
    expect(dead.detail).toBe('the input ended while this event, dated 2026-01-05T09:00:00.000Z, waited for a later event to confirm its time (no event was applied); a replay without --state keeps no state for it to wait in: replay with --state to keep it waiting, or --until to confirm it')
    expect(r.code).toBe(1) // all of it dead: the share check says so, naming the case
    expect(r.stderr).toContain('EBB_EVENT_UNCONFIRMED: --state keeps it waiting, --until confirms it')
    const kept = ebb('replay', '--in', one, '--out', join(tmp.dir, 'one-kept'), '--state', join(tmp.dir, 'one-state'))
    expect(kept.code).toBe(0)
    const k = JSON.parse(readFileSync(join(tmp.dir, 'one-kept', 'summary.json'), 'utf8')) as { eventsWaiting: number }
    expect(k.eventsWaiting).toBe(1)
  })

  it('with --partitions, an event waiting in a quiet partition at the end is confirmed by the others\' time: the same events applied as with one partition', () => {
    const applied = (partitions: number): [number, number] => {
      const out = join(tmp.dir, `parts-${partitions}`)
      expect(ebb('replay', '--in', FIXTURE, '--out', out, '--partitions', String(partitions)).code).toBe(0)
      const c = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { eventsApplied: number, deadLettersByReason: Record<string, number> }
      return [c.eventsApplied, c.deadLettersByReason.future]
    }
    const one = applied(1)
    for (const n of [8, 64]) expect(applied(n), `--partitions ${n}`).toEqual(one)
  })

  it('an --out or --state that is a file is refused in words (exit 2)', () => {
    const file = join(tmp.dir, 'a-file')
    writeFileSync(file, 'x')
    for (const args of [['--out', file], ['--out', join(tmp.dir, 'out-af'), '--state', file]]) {
      const r = ebb('replay', '--in', FIXTURE, ...args)
      expect(r.code).toBe(2)
      expect(r.stderr).toBe(`ebb replay: cannot write to ${file}: ${file} exists and is not a directory. Check the directory exists and is writable. [EBB_OUTPUT_NOT_WRITABLE]\n`)
    }
  })

  it('train and eval on an input with nothing to apply: a usage error (exit 2) that says so, not a stack', () => {
    const inputs: Record<string, string> = { blank: '   \n\n  \n', junk: 'not json\n\u0000\u0001\n', one: '{"eventId":"e1","userId":"u1","type":"LOGIN","ts":"2026-01-05T09:00:00Z"}\n' }
    for (const [name, text] of Object.entries(inputs)) {
      const f = join(tmp.dir, `nothing-${name}.jsonl`)
      writeFileSync(f, text)
      for (const args of [['train', '--in', f, '--derive-labels', '--out', join(tmp.dir, `m-${name}.json`)], ['eval', '--in', f, '--derive-labels', '--out', join(tmp.dir, `e-${name}`)]]) {
        const r = ebb(...args)
        expect(r.stderr, `${args[0]} ${name}`).not.toMatch(/\n\s+at |unexpected failure/)
        expect(r.code, `${args[0]} ${name}`).toBe(2)
        expect(r.stderr).toMatch(/holds no events/)
      }
    }
  })
})
