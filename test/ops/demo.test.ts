import { spawn, spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { projectRoot } from '../../src/paths.js'
import { tempDir } from '../helpers.js'

const tmp = tempDir('ebb-demo-test-')
afterAll(() => { tmp.cleanup() })
const demo = (args: string[], env: Record<string, string> = {}): { code: number | null, stdout: string, stderr: string } => {
  const r = spawnSync(process.execPath, [join(projectRoot(), 'bin', 'ebb.js'), 'demo', '--users', '200', '--days', '12', ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** `npm start` as a user runs it: the demo runs, then keeps the API up until Ctrl-C. */
describe('ebb demo keeps serving', () => {
  it('prints its URLs, answers on them, and exits 0 on SIGINT', async () => {
    const child = spawn(process.execPath, [join(projectRoot(), 'bin', 'ebb.js'), 'demo', '--users', '300', '--days', '20', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (b: Buffer) => { out += b.toString() })
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code) }))
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error(`no URL printed: ${out}`)) }, 60_000)
        child.stdout.on('data', () => {
          const m = /serving until Ctrl-C:\n\s+API docs\s+(http:\/\/127\.0\.0\.1:\d+)\/docs/.exec(out)
          if (m !== null) { clearTimeout(timer); resolve(m[1]) }
        })
      })
      expect(out).toMatch(/metrics\s+http:\/\/127\.0\.0\.1:\d+\/metrics/)
      const user = /curl -s (http:\S+\/users\/\S+)/.exec(out)?.[1] as string
      expect((await fetch(`${url}/healthz`)).status).toBe(200)
      const u = await (await fetch(user)).json() as { userId: string, signals: Record<string, unknown> }
      expect(u.signals).toHaveProperty('daysInactive')
      expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/^ebb_records_total \d+/m)
      expect(out).toContain('its size on disk is printed when the demo stops')
      child.kill('SIGINT')
      expect(await exited).toBe(0)
      // settled, not an open store's preallocated memtables (~6 KB a user)
      const perUser = Number(/stopped; state: RocksDB [\d.]+ MB on disk \((\d+) B per user/.exec(out)?.[1])
      expect(perUser).toBeGreaterThan(50)
      expect(perUser).toBeLessThan(2000)
    } finally {
      // Stop what the test started, even when an assertion failed half-way.
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
  }, 90_000)

  it('a second demo on the same --state is refused with what to do instead of running on late events; the first keeps its state', () => {
    const state = join(tmp.dir, 'kept')
    const first = demo(['--exit', '--state', state])
    expect(first.code).toBe(0)
    expect(first.stdout).toMatch(/state: \d+ B per user .*RocksDB [\d.]+ MB on disk/)
    const again = demo(['--exit', '--state', state])
    expect(again.code).toBe(2)
    expect(again.stderr).toContain(`the state in ${state} already holds a stream up to`)
    expect(again.stderr).toMatch(/Give a new or empty --state .*\[EBB_USAGE\]/)
    expect(again.stdout).toBe('')
  })

  it('a demo that cannot listen says so and leaves no state directory of its own behind', async () => {
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    try {
      const port = (blocker.address() as { port: number }).port
      const scratch = join(tmp.dir, 'scratch')
      spawnSync('mkdir', ['-p', scratch])
      const r = demo(['--port', String(port)], { TMPDIR: scratch })
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(/cannot listen on 127\.0\.0\.1:\d+: .*Pick another --port .*\[EBB_HTTP_LISTEN\]/)
      expect(readdirSync(scratch)).toEqual([])
      // not an address of this machine: the fix is the host, not the port
      const host = demo(['--port', '0', '--host', '192.0.2.1'], { TMPDIR: scratch })
      expect(host.code).toBe(2)
      expect(host.stderr).toMatch(/cannot listen on 192\.0\.2\.1:0: .*Check --host .*\[EBB_HTTP_LISTEN\]/)
      expect(readdirSync(scratch)).toEqual([])
      const env = demo([], { TMPDIR: scratch, EBB_HTTP_PORT: 'abc' })
      expect(env.code).toBe(2)
      expect(env.stderr).toContain('EBB_HTTP_PORT must be 0..65535, got "abc"')
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => { resolve() }))
    }
  })
})

describe('ebb demo interrupted', () => {
  it('a Ctrl-C while it simulates stops it between days (exit 130) and removes its temporary state', async () => {
    const scratch = join(tmp.dir, 'interrupted')
    spawnSync('mkdir', ['-p', scratch])
    const child = spawn(process.execPath, [join(projectRoot(), 'bin', 'ebb.js'), 'demo', '--users', '20000', '--days', '120', '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TMPDIR: scratch } })
    let err = ''
    child.stderr.on('data', (b: Buffer) => { err += b.toString() })
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code) }))
    try {
      // the first progress line: the simulation is under way, its state directory exists
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error(`no progress line: ${err}`)) }, 60_000)
        child.stderr.on('data', () => { if (/\[demo\] [\d.]+s day \d+\/120/.test(err)) { clearTimeout(timer); resolve() } })
      })
      expect(readdirSync(scratch)).toHaveLength(1)
      child.kill('SIGINT')
      expect(await exited).toBe(130)
      expect(err).toContain('[demo] interrupted')
      expect(readdirSync(scratch)).toEqual([])
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
  }, 90_000)
})
