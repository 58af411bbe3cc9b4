import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { projectRoot } from '../src/paths.js'
import { benchE2e } from './e2e.js'

/**
 * scaling: how cost grows (10M users does not fit this 24 GiB machine with the core harness, which
 * holds all its events in memory: 1M users take ~4 GB; bench/README.md extrapolates)
 *  - with users: the core suite at each population size (10 events per user over two days), each
 *    in its own process so its RSS is its own: events/s, RSS, state and RocksDB bytes per user;
 *  - with instances: the e2e throughput phase (real broker, exactly-once) with 1 and then 2 Ebb
 *    instances in the group on the same backlog.
 */
export async function benchScaling (o: { users: number[], instances: number[], e2eEvents: number, partitions: number }, log: (s: string) => void): Promise<Record<string, number | string>> {
  const out: Record<string, number | string> = {}
  const dir = mkdtempSync(join(tmpdir(), 'ebb-bench-scaling-'))
  try {
    for (const users of o.users) {
      const events = users * 10
      log(`scaling: core with ${users.toLocaleString()} users, ${events.toLocaleString()} events`)
      const r = spawnSync(process.execPath, ['--max-old-space-size=20000', join(projectRoot(), 'dist', 'bench', 'run.js'), 'core', '--users', String(users), '--events', String(events), '--days', '2', '--results', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 })
      if (r.status !== 0) { out[`users${users}`] = `failed (${r.status ?? r.signal})`; continue }
      const res = (JSON.parse(readFileSync(join(dir, `core-${users}u-${events}e-2d.json`), 'utf8')) as { results: Record<string, number> }).results
      out[`users${users}EventsPerSec`] = res.engineEventsPerSec
      out[`users${users}RssMB`] = res.rssMB
      out[`users${users}StateBytesPerUser`] = res.stateBytesPerUser
      out[`users${users}DiskBytesPerUser`] = res.diskBytesPerUser
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
