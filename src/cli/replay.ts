import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { EbbError, Errors } from '../errors.js'
import { readLineBatches } from '../io/line-reader.js'
import { kpiTable } from '../intervention/kpis.js'
import { JsonlDirectorySink } from '../io/sinks.js'
import { topologyPath } from '../paths.js'
import { loadTopology } from '../rules/topology.js'
import { log } from '../log.js'
import { PartitionTask } from '../runtime/partition-task.js'
import { LineBatch } from '../runtime/record-batch.js'
import { RocksStore } from '../state/rocks-store.js'
import { instantOption, intOption, parseOptions, requireOption } from './args.js'
import { count, Progress, rate } from './progress.js'
import { printSummary, summaryOf } from './summary.js'

export const REPLAY_HELP = `ebb replay --in events.jsonl --out DIR [--topology T] [--until ISO] [--state DIR]
  Deterministic file-to-file run: the same input gives byte-identical outputs.
  --in F         JSON Lines of ebb.UserEvent (SPEC §1)
  --out DIR      writes alerts.jsonl, tasks.jsonl, outcomes.jsonl, dlq.jsonl, summary.json and
                 kpis.json (recall rates per plan, channel, churn type and arm; uplift) (created if absent)
  --topology T   rules file (default: topologies/default.yaml)
  --until ISO    advance stream time to this instant at the end, so due timers fire
  --state DIR    keep RocksDB state here (default: a temporary directory, removed after)
  --cache N      users held in memory between commits (default 200000)`

export async function replay (argv: string[]): Promise<number> {
  const o = parseOptions('replay', argv, {
    in: { type: 'string' }, out: { type: 'string' }, topology: { type: 'string' }, until: { type: 'string' },
    state: { type: 'string' }, cache: { type: 'string' }, batch: { type: 'string' }, help: { type: 'boolean' }
  })
  if (o.help === true) { process.stdout.write(REPLAY_HELP + '\n'); return 0 }
  const input = requireOption('replay', 'in', o.in)
  const out = requireOption('replay', 'out', o.out)
  const until = instantOption('replay', 'until', o.until)
  const cacheCapacity = intOption('replay', 'cache', o.cache, 200_000, 1, 50_000_000)
  const batchSize = intOption('replay', 'batch', o.batch, 4096, 1, 1_000_000)
  if (!existsSync(input) || !statSync(input).isFile()) throw new EbbError(Errors.INPUT_NOT_FOUND, input, 'no such file')
  const topology = loadTopology(o.topology ?? topologyPath('default.yaml'))
  for (const r of topology.rules) if (!r.enabled) log.info({ rule: r.id, topology: topology.file }, `rule disabled: ${r.disabledReason ?? ''}`)
  try {
    mkdirSync(out, { recursive: true })
  } catch (err) {
    throw new EbbError(Errors.OUTPUT_NOT_WRITABLE, out, (err as Error).message)
  }
  const stateDir = o.state ?? mkdtempSync(join(tmpdir(), 'ebb-replay-'))
  const sink = await JsonlDirectorySink.open(out)
  const store = await RocksStore.open(stateDir)
  const task = await PartitionTask.open({ topology, store, sink, cacheCapacity })
  const progress = new Progress('replay')
  log.info({ input, out, stateDir, cacheCapacity }, 'replay started')
  const file = basename(input)
  try {
    let sinceCommit = 0
    for await (const { lines, lineNumbers } of readLineBatches(input, batchSize)) {
      await task.process(new LineBatch(lines, file, lineNumbers))
      sinceCommit += lines.length
      if (sinceCommit >= 100_000 || task.cache.size > cacheCapacity) { await task.commit(); sinceCommit = 0 }
      progress.tick(() => `${count(task.stats.recordsIn)} records, ${rate(task.stats.recordsIn, progress.elapsedMs)}, alerts ${count(task.stats.alertTotal)}, dead letters ${count(task.stats.deadLetterTotal)}`)
    }
    if (until !== undefined) task.advanceTo(until)
    await task.close()
  } finally {
    await sink.close()
    if (o.state === undefined) rmSync(stateDir, { recursive: true, force: true })
  }
  const summary = summaryOf(task, progress.elapsedMs)
  log.info({ records: summary.counts.records, alerts: task.stats.alertTotal, deadLetters: task.stats.deadLetterTotal, ms: Math.round(summary.elapsedMs) }, 'replay finished')
  // summary.json holds counts only (no timings), so it is as deterministic as the outputs.
  writeFileSync(join(out, 'summary.json'), JSON.stringify(summary.counts, null, 2) + '\n')
  printSummary('replay', summary, process.stdout)
  if (task.intervention !== null) {
    const kpis = task.intervention.kpis.report()
    writeFileSync(join(out, 'kpis.json'), JSON.stringify(kpis, null, 2) + '\n')
    process.stdout.write(kpiTable(kpis))
  }
  return 0
}
