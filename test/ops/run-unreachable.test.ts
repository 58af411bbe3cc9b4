import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { projectRoot } from '../../src/paths.js'
import { tempDir } from '../helpers.js'

/**
 * `ebb run` when the brokers cannot be reached: it waits for them (up to retryTimeout) with
 * its API up and /readyz saying why, stops at once on SIGTERM, and exits 1 with a code that
 * says what to check when it gives up. No broker is started: port 1 refuses connections.
 */
const tmp = tempDir('ebb-unreachable-')
afterAll(() => { tmp.cleanup() })

function start (timeout: string): { exited: Promise<number | null>, stderr: () => string, kill: (s: NodeJS.Signals) => void } {
  const file = join(tmp.dir, `c-${timeout}.yaml`)
  writeFileSync(file, `applicationId: unreachable
instanceId: unreachable-0
brokers: [127.0.0.1:1]
topics: { input: u.events, alerts: u.alerts, tasks: u.tasks, outcomes: u.outcomes, deadLetters: u.dlq, partitions: 1 }
stateDir: ${join(tmp.dir, `state-${timeout}`)}
${timeout === '2s' ? 'startupTimeout' : 'retryTimeout'}: ${timeout}
http: { port: 0 }
`)
  const child = spawn(process.execPath, [join(projectRoot(), 'bin', 'ebb.js'), 'run', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, EBB_LOG_LEVEL: 'error' } })
  let err = ''
  child.stderr.on('data', (b: Buffer) => { err += b.toString() })
  return { exited: new Promise((resolve) => child.on('exit', (code) => { resolve(code) })), stderr: () => err, kill: (s) => child.kill(s) }
}

async function until (f: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (!f()) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

describe('ebb run with the brokers down', () => {
  it('waits with /readyz saying why, and stops at once on SIGTERM', async () => {
    const ebb = start('5m')
    await until(() => /API (http:\/\/\S+)/.test(ebb.stderr()), 20_000)
    const api = (/API (http:\/\/\S+)/.exec(ebb.stderr()) as RegExpExecArray)[1]
    expect((await fetch(`${api}/healthz`)).status).toBe(200)
    await until(() => ebb.stderr().includes('is unavailable'), 40_000)
    const metrics = fetch(`${api}/metrics`).then(async (r) => await r.text())
    const ready = await fetch(`${api}/readyz`)
    expect(ready.status).toBe(503)
    expect(await ready.text()).toMatch(/Kafka is unavailable \(attempt 1: .*ECONNREFUSED.*\); retrying from the last commit until/)
    const t0 = Date.now()
    ebb.kill('SIGTERM')
    expect(await ebb.exited).toBe(0)
    expect(Date.now() - t0).toBeLessThan(25_000)
    expect(ebb.stderr()).toMatch(/stopped \(SIGTERM\) while (Kafka was unavailable|starting the Kafka clients)/)
    expect(Number((await metrics).match(/^ebb_kafka_retries_total\{reason="connect"\} (\d+)$/m)?.[1])).toBeGreaterThanOrEqual(1)
  }, 90_000)

  it('a SIGTERM while its modules load is not fatal: it stops cleanly once started (exit 0)', async () => {
    // A preload says when JavaScript starts running; 50 ms later `ebb run` is still loading
    // fastify, the Kafka client and RocksDB (about a second), where Node's default used to end
    // the process by the signal (an orchestrator stopping what it had just started saw a kill).
    const file = join(tmp.dir, 'early.yaml')
    writeFileSync(file, `applicationId: early\ninstanceId: early-0\nbrokers: [127.0.0.1:1]\ntopics: { input: e.events, alerts: e.alerts, tasks: e.tasks, outcomes: e.outcomes, deadLetters: e.dlq, partitions: 1 }\nstateDir: ${join(tmp.dir, 'state-early')}\nretryTimeout: 5m\nhttp: { port: 0 }\n`)
    const child = spawn(process.execPath, ['--import', 'data:text/javascript,process.stderr.write("js-started\\n")', join(projectRoot(), 'bin', 'ebb.js'), 'run', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, EBB_LOG_LEVEL: 'error' } })
    let err = ''
    child.stderr.on('data', (b: Buffer) => { err += b.toString() })
    const exited = new Promise<[number | null, string | null]>((resolve) => child.on('exit', (code, signal) => { resolve([code, signal]) }))
    await until(() => err.includes('js-started'), 20_000)
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(err).not.toMatch(/API http/) // still loading
    child.kill('SIGTERM')
    expect(await exited).toEqual([0, null])
    expect(err).toMatch(/stopped \(SIGTERM\) while (Kafka was unavailable|starting the Kafka clients)/)
  }, 60_000)

  it('gives up after retryTimeout (here by its older name, startupTimeout) with exit 1 and EBB_KAFKA_UNREACHABLE, and does not linger', async () => {
    const ebb = start('2s')
    const t0 = Date.now()
    expect(await ebb.exited).toBe(1)
    expect(Date.now() - t0).toBeLessThan(60_000)
    expect(ebb.stderr()).toMatch(/could not be reached for 2 s \(retryTimeout\).*\[EBB_KAFKA_UNREACHABLE\]/)
  }, 90_000)
})
