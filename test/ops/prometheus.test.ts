import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildServer } from '../../src/http/server.js'
import { listen } from '../../src/http/listen.js'
import { projectRoot } from '../../src/paths.js'
import { tempDir } from '../helpers.js'
import { engine } from '../http/helpers.js'

/**
 * A real Prometheus (Debian's package, installed by scripts/test-deps.sh) scrapes a running
 * Ebb API on 127.0.0.1; the test queries Prometheus' HTTP API to see Ebb's series exist and
 * move as events are processed. promtool lints the exposition and tests the alerting rules.
 */
const root = projectRoot()
const tmp = tempDir('ebb-prom-')

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      s.close(() => { resolve(typeof a === 'object' && a !== null ? a.port : 0) })
    })
  })
}

/** Polls until `f` returns a value (not undefined), or fails after `ms`: waiting on another process, not on time logic. */
async function until<T> (what: string, f: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms
  let last: unknown
  while (Date.now() < end) {
    try {
      const v = await f()
      if (v !== undefined) return v
    } catch (err) { last = err }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new Error(`timed out waiting for ${what}${last === undefined ? '' : `: ${String(last)}`}`)
}

describe('a real Prometheus scraping Ebb', () => {
  let prom: ChildProcess | undefined
  let app: FastifyInstance
  let promUrl = ''
  let e: Awaited<ReturnType<typeof engine>>
  const query = async (q: string): Promise<number | undefined> => {
    const r = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`)
    const body = await r.json() as { data: { result: Array<{ value: [number, string] }> } }
    return body.data.result.length === 0 ? undefined : Number(body.data.result[0].value[1])
  }

  beforeAll(async () => {
    expect(spawnSync('prometheus', ['--version']).status, 'prometheus is not installed: run scripts/test-deps.sh').toBe(0)
    e = await engine()
    app = await buildServer({ engine: e.view, metrics: e.metrics })
    const ebbUrl = await listen(app, { host: '127.0.0.1', port: 0, token: undefined })
    const port = await freePort()
    promUrl = `http://127.0.0.1:${port}`
    const config = join(tmp.dir, 'prometheus.yml')
    writeFileSync(config, `global: { scrape_interval: 1s, evaluation_interval: 1s }
rule_files: [${join(root, 'deploy', 'prometheus', 'ebb-rules.yml')}]
scrape_configs:
  - job_name: ebb
    static_configs: [{ targets: ['${ebbUrl.replace('http://', '')}'] }]
`)
    prom = spawn('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(tmp.dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' })
    await until('Prometheus ready', async () => (await fetch(`${promUrl}/-/ready`)).ok ? true : undefined)
  }, 60_000)

  afterAll(async () => {
    prom?.kill('SIGTERM')
    await app?.close()
    tmp.cleanup()
  })

  it('scrapes /metrics, and the engine\'s series move as events are processed', async () => {
    await until('the ebb target up', async () => (await query('up{job="ebb"}')) === 1 ? true : undefined)
    await e.pipe({ userId: 'a', type: 'LOGIN', local: '2026-03-02T09:00' }, { userId: 'b', type: 'VIEW', local: '2026-03-02T09:01' })
    expect(await until('2 records scraped', async () => (await query('ebb_records_total{job="ebb"}')) === 2 ? 2 : undefined)).toBe(2)
    await e.pipe({ userId: 'a', type: 'LOGIN', local: '2026-03-02T10:00' }, { userId: 'c', type: 'LOGIN', local: '2026-03-02T10:01' }, { userId: 'c', type: 'BOGUS' as never, local: '2026-03-02T10:02' })
    expect(await until('5 records scraped', async () => (await query('ebb_records_total{job="ebb"}')) === 5 ? 5 : undefined)).toBe(5)
    expect(await query('sum(ebb_events_processed_total{job="ebb",type="LOGIN",outcome="applied"})')).toBe(3)
    expect(await query('ebb_dead_letters_total{job="ebb",reason="invalid"}')).toBe(1)
    e.task.advanceTo(Date.parse('2026-03-10T00:00:00+08:00'))
    expect(await until('inactive_7d alerts scraped', async () => (await query('ebb_alerts_total{job="ebb",rule="inactive_7d"}')) === 2 ? 2 : undefined)).toBe(2) // a and c logged in; b never did
    // model_risk alerts with inactive_7d while the model warms up: two alerts each, each decided
    expect(await query('ebb_alerts_total{job="ebb",rule="model_risk"}')).toBe(2)
    expect(await query('sum(ebb_decisions_total{job="ebb"})')).toBe(4)
    expect(await query('ebb_event_time_lag_seconds{job="ebb",partition="0"}')).toBeGreaterThan(0)
    // The alerting rules load in a real Prometheus too.
    const rules = await (await fetch(`${promUrl}/api/v1/rules`)).json() as { data: { groups: Array<{ rules: Array<{ name: string, health: string }> }> } }
    const loaded = rules.data.groups.flatMap((g) => g.rules)
    expect(loaded.map((r) => r.name).sort()).toEqual(['EbbConsumerLagGrowing', 'EbbDeadLetterRateHigh', 'EbbKafkaUnavailable', 'EbbNoEvents', 'EbbRecallRateFalling', 'EbbRestoreStuck'])
  }, 60_000)

  it('promtool finds nothing wrong with the whole /metrics output, the process metrics included', async () => {
    const text = await e.metrics.text()
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
    expect(r.stdout + r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(text).toMatch(/^# TYPE nodejs_active_handles gauge$/m) // kept: the gauge without the _total a counter would have
    expect(text).not.toMatch(/^nodejs_active_\w+_total/m)
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
    expect(text).toContain(`ebb_build_info{version="${pkg.version}",model="none",node="${process.version}"} 1`)
  })

  it('promtool checks and unit-tests the alerting rules', () => {
    const check = spawnSync('promtool', ['check', 'rules', join(root, 'deploy', 'prometheus', 'ebb-rules.yml')], { encoding: 'utf8' })
    expect(check.status, check.stdout + check.stderr).toBe(0)
    const test = spawnSync('promtool', ['test', 'rules', join(root, 'deploy', 'prometheus', 'ebb-rules.test.yml')], { encoding: 'utf8' })
    expect(test.status, test.stdout + test.stderr).toBe(0)
    expect(test.stdout).toMatch(/SUCCESS/)
  })
})
