import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { COMMANDS, parseCommand } from '../../src/cli/commands.js'
import { cliReference, recordsReference } from '../../src/cli/reference.js'
import { projectRoot } from '../../src/paths.js'

const root = projectRoot()
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

  it('`ebb run --help` names the environment variables', () => {
    const r = ebb('run', '--help')
    for (const v of ['EBB_BROKERS', 'EBB_INSTANCE_ID', 'EBB_STATE_DIR', 'EBB_HTTP_TOKEN', 'EBB_LOG_LEVEL']) expect(r.stdout).toContain(v)
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
