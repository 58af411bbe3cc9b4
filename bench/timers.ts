import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encodeAvroEvent } from '../src/events/avro.js'
import type { AlertRecord, DeadLetterRecord, OutcomeRecord, RecallTaskRecord } from '../src/io/records.js'
import type { OutputSink } from '../src/io/sinks.js'
import { topologyPath } from '../src/paths.js'
import { loadTopology } from '../src/rules/topology.js'
import { PartitionTask } from '../src/runtime/partition-task.js'
import { RocksStore } from '../src/state/rocks-store.js'
import { zoneClock } from '../src/time/zones.js'
import { type BenchPopulation, PackedBatch } from './population.js'

/** Counts outputs and remembers when the last task left: the timers suite's clock stops there. */
export class CountingSink implements OutputSink {
  alerts = 0
  tasks = 0
  outcomes = 0
  deadLetters = 0
  lastTaskAt = 0
  alert (_a: AlertRecord): void { this.alerts++ }
  task (_t: RecallTaskRecord): void { this.tasks++; this.lastTaskAt = performance.now() }
  outcome (_o: OutcomeRecord): void { this.outcomes++ }
  deadLetter (_d: DeadLetterRecord): void { this.deadLetters++ }
  async flush (): Promise<void> {}
  async close (): Promise<void> {}
}

/** Packs UserEvents as Avro bodies in one buffer (see population.ts for why one buffer). */
export function packEvents (events: Iterable<Parameters<typeof encodeAvroEvent>[0]>, users: number): BenchPopulation {
  const parts: Buffer[] = []
  let bytes = 0
  for (const e of events) { const b = encodeAvroEvent(e); parts.push(b); bytes += b.length }
  const offsets = new Float64Array(parts.length + 1)
  for (let i = 0; i < parts.length; i++) offsets[i + 1] = offsets[i] + parts[i].length
  return { all: Buffer.concat(parts, bytes), offsets, length: parts.length, bytes, users }
}

/**
 * timers: N users in one zone each log in once on the same local day, so inactive_7d falls on
 * the same local midnight for all of them. Stream time is moved to just before that midnight
 * (the six midnights before fire, unmeasured), then past it: measured is the time from the
 * watermark passing the midnight to the last recall task emitted — N timer fires, N rule
 * evaluations, N alerts through the intervention stage. The model is left out here (its
 * model_risk alert would come a day earlier and take the task); the core suite measures it.
 */
export async function benchTimers (o: { users: number }, log: (s: string) => void): Promise<Record<string, number | string>> {
  const zone = 'Asia/Shanghai'
  const clock = zoneClock(zone)
  const day = clock.localDay(Date.parse('2026-03-02T12:00:00+08:00'))
  const dayStart = clock.startOfDay(day)
  const width = String(o.users - 1).length
  log(`timers: ${o.users.toLocaleString()} users log in on 2026-03-02 (${zone}); inactive_7d is due at 2026-03-10 00:00 local for all`)
  function * logins (): Generator<Parameters<typeof encodeAvroEvent>[0]> {
    for (let u = 0; u < o.users; u++) {
      yield { eventId: `l${u}`, userId: `user-${String(u).padStart(width, '0')}`, type: 'LOGIN', ts: dayStart + 9 * 3_600_000 + Math.floor(u * 12 * 3_600_000 / o.users), tz: zone, targetId: null, durationMs: null, amount: null, channel: null, taskId: null }
    }
  }
  const pop = packEvents(logins(), o.users)
  const topology = { ...loadTopology(topologyPath('default.yaml')), model: null }
  const dir = mkdtempSync(join(tmpdir(), 'ebb-bench-timers-'))
  const store = await RocksStore.open(dir)
  const sink = new CountingSink()
  const task = await PartitionTask.open({ topology, store, sink, cacheCapacity: o.users * 2 })
  try {
    for (let i = 0; i < pop.length; i += 4096) await task.process(new PackedBatch(pop, i, Math.min(i + 4096, pop.length)))
    await task.commit()
    const due = clock.startOfDay(day + 8) // 03-10 00:00: seven complete days since 03-02
    log('timers: the six midnights before the measured one (not measured)')
    task.advanceTo(due - 1)
    await task.commit()
    // A full collection before the measured midnight (JMH collects between iterations too): the
    // window then pays for its own garbage, not for the million states loaded seconds before it.
    // Without it the figure moved by ±15% between runs with where the old-space collection fell.
    const gc = (globalThis as { gc?: () => void }).gc
    if (gc !== undefined) gc()
    const alertsBefore = sink.alerts
    const tasksBefore = sink.tasks
    const t0 = performance.now()
    task.advanceTo(due)
    const fireMs = performance.now() - t0
    const lastTaskMs = sink.tasks > tasksBefore ? sink.lastTaskAt - t0 : Number.NaN
    const c0 = performance.now()
    await task.commit()
    const commitMs = performance.now() - c0
    log(`timers: ${(sink.alerts - alertsBefore).toLocaleString()} alerts and ${(sink.tasks - tasksBefore).toLocaleString()} tasks in ${(fireMs / 1000).toFixed(2)} s, then a ${(commitMs / 1000).toFixed(2)} s commit`)
    return {
      users: o.users,
      alertsAtMidnight: sink.alerts - alertsBefore,
      tasksAtMidnight: sink.tasks - tasksBefore,
      watermarkToLastTaskMs: Math.round(lastTaskMs),
      firesPerSec: Math.round(o.users / (fireMs / 1000)),
      commitAfterMs: Math.round(commitMs),
      rssMB: Math.round(process.memoryUsage().rss / 1e6)
    }
  } finally {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
