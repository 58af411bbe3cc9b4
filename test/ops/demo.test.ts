import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { projectRoot } from '../../src/paths.js'

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
      child.kill('SIGINT')
      expect(await exited).toBe(0)
    } finally {
      // Stop what the test started, even when an assertion failed half-way.
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
  }, 90_000)
})
