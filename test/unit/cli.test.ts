import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { COMMANDS, parseCommand } from '../../src/cli/commands.js'
import { cliReference, recordsReference } from '../../src/cli/reference.js'
import { projectRoot } from '../../src/paths.js'
import { tempDir } from '../helpers.js'

const root = projectRoot()
const tmpOut = tempDir('ebb-cli-')
afterAll(() => { tmpOut.cleanup() })
function ebb (...args: string[]): { code: number | null, stdout: string, stderr: string } {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'ebb.js'), ...args], { encoding: 'utf8', cwd: root })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('the CLI: one table for the parser and the help', () => {
  it.each(Object.keys(COMMANDS))('`ebb %s --help` exits 0 and lists every option the parser accepts, with examples', (name) => {
    const spec = COMMANDS[name as keyof typeof COMMANDS]
    const r = ebb(name, '--help')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain(`Usage: ${spec.usage}`)
    for (const [opt, o] of Object.entries(spec.options)) {
      expect(r.stdout).toContain(`--${opt}`)
      // …and the parser takes it
      const argv = o.type === 'boolean' ? [`--${opt}`] : [`--${opt}`, 'x']
      expect(Object.keys(parseCommand(spec, argv))).toContain(opt)
    }
    expect(r.stdout).toMatch(/Examples:\n {2}\S/)
    expect(ebb('help', name).stdout).toBe(r.stdout)
  })

  it('`ebb run --help` names every environment variable the run configuration reads', () => {
    const r = ebb('run', '--help')
    const read = new Set(readFileSync(join(root, 'src', 'kafka', 'config.ts'), 'utf8').match(/EBB_[A-Z_]+/g))
    expect(read.size).toBeGreaterThan(15)
    for (const v of [...read, 'EBB_LOG_LEVEL']) expect(r.stdout, v).toContain(v)
  })

  it('an EBB_LOG_LEVEL that is no level stops a command with one line saying which levels there are; a level in capitals is taken', () => {
    const tmp = tempDir('ebb-cli-log-')
    const env = (level: string): { code: number | null, stderr: string } => {
      const r = spawnSync(process.execPath, [join(root, 'bin', 'ebb.js'), 'simulate', '--users', '5', '--days', '1', '--out', join(tmp.dir, `log-${level}.jsonl`)], { encoding: 'utf8', cwd: root, env: { ...process.env, EBB_LOG_LEVEL: level } })
      return { code: r.status, stderr: r.stderr }
    }
    const bad = env('verbose')
    expect(bad.code).toBe(2)
    expect(bad.stderr.trim().split('\n')).toEqual(['ebb simulate: configuration EBB_LOG_LEVEL: "verbose" is not a log level: use one of fatal, error, warn, info, debug, trace, silent (or unset it for warn) [EBB_CONFIG_INVALID]'])
    expect(env('INFO').code).toBe(0)
    tmp.cleanup()
  })

  it('`ebb help` lists every command and ends with the exit codes; `ebb help nope` is a usage error', () => {
    const r = ebb('help')
    expect(r.code).toBe(0)
    for (const name of Object.keys(COMMANDS)) expect(r.stdout).toMatch(new RegExp(`^ {2}${name} `, 'm'))
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^1 runtime failure .*docs\/errors\.md/)
    const nope = ebb('help', 'nope')
    expect(nope.code).toBe(2)
    expect(nope.stderr).toMatch(/unknown command "nope" \(commands: demo, run, replay/)
    expect(ebb().code).toBe(2)
  })

  it('a usage error says it once, names the option and where the options are', () => {
    const r = ebb('replay', '--in', 'x', '--out', 'y', '--fast')
    expect(r.code).toBe(2)
    expect(r.stderr).toBe('ebb replay: unknown option --fast. `ebb replay --help` lists its options [EBB_USAGE]\n')
  })

  it('numbers are read in decimal digits, an option given twice is refused, and a value starting with "-" is said how to give', () => {
    const sim = (...args: string[]): string => { const r = ebb('simulate', '--days', '1', '--out', join(tmpOut.dir, 'n.jsonl'), ...args); expect(r.code).toBe(2); return r.stderr.trim() }
    // Number() read these as 16, 1000, 5 and 0
    for (const v of ['0x10', '1e3', '+5', '']) expect(sim('--users', v)).toBe(`ebb simulate: --users must be a whole number in 1..50000000 (decimal digits), got "${v}". \`ebb simulate --help\` lists its options [EBB_USAGE]`)
    expect(sim('--churn-rate', '0x1', '--population', 'fades')).toMatch(/--churn-rate must be a number between 0 and 1, got "0x1"/)
    expect(sim('--churn-rate', '-0.1', '--population', 'fades')).toMatch(/--churn-rate needs a value/)
    expect(sim('--users', '5', '--users', '6')).toMatch(/^ebb simulate: --users is given more than once\./)
    expect(sim('--users', '-5')).toMatch(/^ebb simulate: --users needs a value; one that starts with "-" is given as --users=VALUE\. `ebb simulate --help`/)
    expect(sim('--start', '2026-02-30')).toMatch(/--start must be a real date like 2026-01-05, got "2026-02-30"/)
    expect(sim('--start', '1970-01-01')).toMatch(/leaves 2000\.\.2100/)
    expect(sim('--labels', join(tmpOut.dir, 'n.jsonl'))).toMatch(/--labels and --out name the same file/)
    expect(ebb('simulate', '--days', '1', '--users', '1_000', '--out', join(tmpOut.dir, 'ok.jsonl')).code).toBe(0)
    // broker addresses: a port out of range is a usage error, not the socket layer's stack trace
    const tail = (...args: string[]): { code: number | null, stderr: string } => ebb('tail', '--topic', 'x', '--kind', 'alert', ...args)
    expect(tail('--brokers', '127.0.0.1:99999')).toEqual({ code: 2, stdout: '', stderr: expect.stringMatching(/--brokers "127\.0\.0\.1:99999": the port must be 1\.\.65535/) })
    expect(tail('--brokers', 'nohostport')).toEqual({ code: 2, stdout: '', stderr: expect.stringMatching(/--brokers "nohostport" is not host:port/) })
    expect(tail('--brokers', '127.0.0.1:9092', '--config', 'deploy/ebb.local.yaml')).toEqual({ code: 2, stdout: '', stderr: expect.stringMatching(/give --config or --brokers, not both/) })
  })

  it('ebb check refuses what is not a replay\'s output (exit 2, naming the file and line) instead of a stack trace or "every rule kept" over nothing', () => {
    const events = join(tmpOut.dir, 'events.jsonl')
    writeFileSync(events, ['09:00', '09:10', '09:20'].map((t, i) => `{"eventId":"e${i}","userId":"u1","type":"LOGIN","ts":"2026-03-02T${t}:00Z"}\n`).join(''))
    const out = join(tmpOut.dir, 'replay-out')
    expect(ebb('replay', '--in', events, '--out', out, '--until', '2026-03-03T00:00:00Z').code).toBe(0)
    expect(ebb('check', '--in', events, '--out', out)).toMatchObject({ code: 0, stdout: expect.stringMatching(/every rule kept/) })
    const check = (dir: string): string => { const r = ebb('check', '--in', events, '--out', dir); expect(r.code).toBe(2); return r.stderr }
    writeFileSync(join(out, 'tasks.jsonl'), '{"taskId":"t1"}\ngarbage{\n')
    expect(check(out)).toMatch(/tasks\.jsonl: line 2 is not JSON/)
    writeFileSync(join(out, 'tasks.jsonl'), 'null\n')
    expect(check(out)).toMatch(/tasks\.jsonl: line 1 is not a record/)
    expect(check(events)).toMatch(/it is a file: give --out the directory/)
    expect(check(tmpOut.dir)).toMatch(/no summary\.json in it/)
    // eval (and train) with labels that name none of the input's users: every figure would be about nobody
    const labels = join(tmpOut.dir, 'other.labels.jsonl')
    writeFileSync(labels, '{"userId":"someone-else","churned":false}\n')
    const ev = ebb('eval', '--in', events, '--labels', labels, '--out', join(tmpOut.dir, 'eval-out'))
    expect([ev.code, ev.stderr]).toEqual([2, expect.stringMatching(/--labels .*other\.labels\.jsonl: names none of the 1 users of the input \(the labels of another population\?\)/)])
  })

  it('an instant that is no date is told what an instant is; a date without an offset is told to add one', () => {
    expect(ebb('replay', '--in', 'x', '--out', 'y', '--until', 'tomorrow').stderr).toMatch(/^ebb replay: --until "tomorrow" is not an instant: give ISO-8601 with an offset \(2026-03-01T00:00:00Z\) or epoch milliseconds/)
    expect(ebb('replay', '--in', 'x', '--out', 'y', '--until', '2026-03-01T00:00:00').stderr).toMatch(/^ebb replay: --until "2026-03-01T00:00:00" needs an offset, e.g\. 2026-03-01T00:00:00Z/)
  })

  it('tail, reset and simulate with brokers nobody answers on: one line in words with its code (exit 1), not the client\'s "metadata failed 6 times." and a stack', async () => {
    // a port that was free a moment ago: nothing listens on it
    const port = await new Promise<number>((resolve) => { const srv = createServer().listen(0, '127.0.0.1', () => { const p = (srv.address() as { port: number }).port; srv.close(() => { resolve(p) }) }) })
    const tmp = tempDir('ebb-cli-kafka-')
    try {
      const config = join(tmp.dir, 'ebb.yaml')
      writeFileSync(config, `applicationId: nobody\ninstanceId: nobody-0\nbrokers: [127.0.0.1:${port}]\ntopics: { input: nobody.events, alerts: nobody.alerts, tasks: nobody.tasks, outcomes: nobody.outcomes, deadLetters: nobody.dlq, partitions: 1 }\nstateDir: ${join(tmp.dir, 'state')}\n`)
      const run = async (...args: string[]): Promise<{ code: number | null, stderr: string }> => await new Promise((resolve) => {
        const child = spawn(process.execPath, [join(root, 'bin', 'ebb.js'), ...args], { cwd: root, env: { ...process.env, EBB_LOG_LEVEL: 'silent' } })
        let stderr = ''
        child.stderr.on('data', (b: Buffer) => { stderr += b.toString() })
        child.on('exit', (code) => { resolve({ code, stderr }) })
      })
      // (at once, not one after the other: each waits out the client's retries, ~10 s)
      const [tail, reset, simulate] = await Promise.all([
        run('tail', '--config', config, '--topic', 'alerts'),
        run('reset', '--config', config),
        run('simulate', '--users', '10', '--days', '1', '--kafka', '--config', config)
      ])
      for (const [name, r] of [['tail', tail], ['reset', reset], ['simulate', simulate]] as const) {
        expect(r.code, r.stderr).toBe(1)
        expect(r.stderr).toMatch(new RegExp(`^ebb ${name}: the brokers 127\\.0\\.0\\.1:${port} did not answer ebb ${name} \\(.*ECONNREFUSED.*\\)\\. Check that they run .*\\[EBB_KAFKA_REQUEST_FAILED\\]\\n$`))
      }
    } finally {
      tmp.cleanup()
    }
  }, 60_000)

  it('an input that is a directory or missing is refused in words (exit 2), by every command that reads one', () => {
    for (const args of [['replay', '--in', root, '--out', join(root, 'nope-out')], ['eval', '--in', root, '--out', join(root, 'nope-out'), '--derive-labels'], ['check', '--in', root, '--out', root], ['run', '--config', root]]) {
      const r = ebb(...args)
      expect(r.code).toBe(2)
      expect(r.stderr).toBe(`ebb ${args[0]}: cannot read ${root}: it is a directory, not a file. Check the path. [EBB_INPUT_NOT_FOUND]\n`)
    }
    const missing = join(root, 'no-such-input.jsonl')
    expect(ebb('train', '--in', missing, '--derive-labels', '--out', join(root, 'nope.json')).stderr).toBe(`ebb train: cannot read ${missing}: no such file. Check the path. [EBB_INPUT_NOT_FOUND]\n`)
    // a missing label file is named before the input is replayed
    const fixture = join(root, 'test', 'fixtures', 'replay-small.jsonl')
    expect(ebb('eval', '--in', fixture, '--out', join(root, 'nope-out'), '--labels', missing).stderr).toBe(`ebb eval: cannot read ${missing}: no such file. Check the path. [EBB_INPUT_NOT_FOUND]\n`)
    expect(ebb('train', '--in', fixture, '--labels', missing, '--out', join(root, 'nope.json')).stderr).toBe(`ebb train: cannot read ${missing}: no such file. Check the path. [EBB_INPUT_NOT_FOUND]\n`)
    expect(existsSync(join(root, 'nope-out'))).toBe(false)
  })

  it('the version is the package\'s', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
    expect(ebb('--version').stdout).toBe(`ebb ${pkg.version}\n`)
  })

  it('docs/cli.md and docs/records.md are what the command table and the schemas say (`npm run docs` writes them)', () => {
    expect(readFileSync(join(root, 'docs', 'cli.md'), 'utf8')).toBe(cliReference())
    const records = readFileSync(join(root, 'docs', 'records.md'), 'utf8')
    expect(records).toBe(recordsReference())
    for (const field of ['`eventId`', '`sendAt`', '`rawSha256`', '`reasons`', '`recalledAt`']) expect(records).toContain(field)
  })
})
