import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { projectRoot } from '../../src/paths.js'
import { tempDir } from '../helpers.js'

// Keeps the benchmark code from rotting: the core suite, tiny, through the same entry point as
// `npm run bench`. It checks what the suite reports, never how fast this machine is.
describe('npm run bench -- core --quick', () => {
  const tmp = tempDir('ebb-bench-test-')
  afterAll(() => { tmp.cleanup() })

  it('runs and reports sane numbers', () => {
    const r = spawnSync(process.execPath, [join(projectRoot(), 'dist', 'bench', 'run.js'), 'core', '--quick', '--users', '2000', '--events', '30000', '--results', tmp.dir], { encoding: 'utf8' })
    expect(r.status).toBe(0)
    expect(r.stdout).toContain('| engineEventsPerSec |')
    const { results } = JSON.parse(readFileSync(join(tmp.dir, 'core.quick.json'), 'utf8')) as { results: Record<string, number> }
    expect(results.events).toBe(30_000)
    expect(results.engineEventsPerSec).toBeGreaterThan(0)
    expect(results.decodeOnlyEventsPerSec).toBeGreaterThan(results.engineEventsPerSec)
    expect(results.p50us).toBeGreaterThan(0)
    expect(results.p99us).toBeGreaterThanOrEqual(results.p50us)
    expect(results.stateBytesPerUser).toBeGreaterThan(20)
    expect(results.stateBytesPerUser).toBeLessThan(300)
    expect(results.latencyPassDeadLetters).toBe(0) // the latency pass feeds fresh, in-order events
  })
})

describe('npm run bench -- state timers --quick', () => {
  const tmp = tempDir('ebb-bench-test-')
  afterAll(() => { tmp.cleanup() })

  it('runs both suites and reports what they measured', () => {
    const r = spawnSync(process.execPath, [join(projectRoot(), 'dist', 'bench', 'run.js'), 'state', 'timers', '--quick', '--users', '3000', '--events', '20000', '--results', tmp.dir], { encoding: 'utf8' })
    expect(r.status).toBe(0)
    const state = (JSON.parse(readFileSync(join(tmp.dir, 'state.quick.json'), 'utf8')) as { results: Record<string, number> }).results
    // the load pass draws users at random: nearly all of them get state
    expect(state.flushDirtyUsers).toBeGreaterThan(2900)
    expect(state.flushDirtyUsers).toBeLessThanOrEqual(3000)
    expect(state.restoreRecords).toBeGreaterThan(state.flushDirtyUsers) // every user's state, plus timers and meta
    expect(state.hitPathEventsPerSec).toBeGreaterThan(0)
    expect(state.missPathEventsPerSec).toBeGreaterThan(0)
    expect(state.rocksdbBytesPerUser).toBeGreaterThan(20)
    const timers = (JSON.parse(readFileSync(join(tmp.dir, 'timers.quick.json'), 'utf8')) as { results: Record<string, number> }).results
    // every user's inactive_7d at the one midnight; a task for each, but the 10% holdout
    expect(timers.alertsAtMidnight).toBe(3000)
    expect(timers.tasksAtMidnight).toBeGreaterThan(3000 * 0.8)
    expect(timers.tasksAtMidnight).toBeLessThan(3000 * 0.97)
    expect(timers.watermarkToLastTaskMs).toBeGreaterThan(0)
  })
})
