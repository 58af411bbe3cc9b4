import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { projectRoot } from '../src/paths.js'
import { coreRunName } from './core.js'
import { benchE2e } from './e2e.js'

/** A core run with a bounded cache and a streamed input: populations larger than memory. */
export interface StreamedRun { users: number, events: number, cache: number, chunk: number }

/**
 * scaling: how cost grows
 *  - with users: the core suite at each population size (10 events per user over two days), each
 *    in its own process so its RSS is its own: events/s, RSS, state and RocksDB bytes per user.
 *    That harness holds every event and every user in memory (1M users take ~4 GB), so the large
 *    populations run `streamed`: the input built and dropped a chunk at a time, and the write-back
 *    cache bounded (as `cacheSize` bounds it in `ebb run`), so most users live only in RocksDB —
 *    compared at the same events per user with a population that the cache holds whole;
 *  - with instances: the e2e throughput phase (real broker, exactly-once) with 1 and then 2 Ebb
 *    instances in the group on the same backlog.
 */
export async function benchScaling (o: { users: number[], streamed: StreamedRun[], instances: number[], e2eEvents: number, partitions: number }, log: (s: string) => void): Promise<Record<string, number | string>> {
  const out: Record<string, number | string> = {}
  const dir = mkdtempSync(join(tmpdir(), 'ebb-bench-scaling-'))
  const core = (label: string, users: number, events: number, extra: string[], cache?: number): void => {
    const r = spawnSync(process.execPath, ['--max-old-space-size=20000', join(projectRoot(), 'dist', 'bench', 'run.js'), 'core', '--users', String(users), '--events', String(events), '--days', '2', '--results', dir, ...extra], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 })
    if (r.status !== 0) { out[label] = `failed (${r.status ?? r.signal})`; return }
    const res = (JSON.parse(readFileSync(join(dir, `${coreRunName(users, events, 2, cache)}.json`), 'utf8')) as { results: Record<string, number> }).results
    out[`${label}EventsPerSec`] = res.engineEventsPerSec
    out[`${label}RssMB`] = res.rssMB
    out[`${label}StateBytesPerUser`] = res.stateBytesPerUser
    out[`${label}DiskBytesPerUser`] = res.diskBytesPerUser
    if (cache !== undefined) {
      out[`${label}CommitShare`] = res.commitShare
      out[`${label}EnginePassPeakRssMB`] = res.enginePassPeakRssMB
    }
  }
  try {
    for (const users of o.users) {
      const events = users * 10
      log(`scaling: core with ${users.toLocaleString()} users, ${events.toLocaleString()} events`)
      core(`users${users}`, users, events, [])
    }
    for (const s of o.streamed) {
      log(`scaling: core with ${s.users.toLocaleString()} users, ${s.events.toLocaleString()} events streamed ${s.chunk.toLocaleString()} at a time, a cache of ${s.cache.toLocaleString()} users`)
      core(`streamed${s.users}users${s.events}events`, s.users, s.events, ['--cache', String(s.cache), '--chunk', String(s.chunk)], s.cache)
    }
    for (const instances of o.instances) {
      log(`scaling: e2e throughput with ${instances} instance(s)`)
      const r = await benchE2e({ events: o.e2eEvents, partitions: o.partitions, seconds: 0, levels: [], commitInterval: '100ms', instances, throughputOnly: true }, log)
      out[`instances${instances}EventsPerSec`] = r.ebbEventsPerSec
      out[`instances${instances}RssMB`] = r.ebbRssMB
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  return out
}
