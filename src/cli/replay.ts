import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { EbbError, Errors } from '../errors.js'
import { DEFAULT_MAX_LINE_BYTES, readLineBatches } from '../io/line-reader.js'
import { kpiTable, RecallKpis } from '../intervention/kpis.js'
import { partitionOfKey } from '../io/partitioner.js'
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

export const REPLAY_HELP = `ebb replay --in events.jsonl --out DIR [--topology T] [--until ISO] [--state DIR] [--partitions N]
  Deterministic file-to-file run: the same input gives byte-identical outputs, whatever the
  batch size and commit points.
  --in F         JSON Lines of ebb.UserEvent (SPEC §1)
  --out DIR      writes alerts.jsonl, tasks.jsonl, outcomes.jsonl, dlq.jsonl, summary.json and
                 kpis.json (recall rates per plan, channel, churn type and arm; uplift) (created if absent)
  --topology T   rules file (default: topologies/default.yaml)
  --until ISO    advance stream time to this instant at the end, so due timers fire
  --state DIR    keep RocksDB state here (default: a temporary directory, removed after)
  --cache N      users held in memory between commits (default 200000)
  --partitions N split users into N partitions as a Kafka producer does (murmur2 of the userId),
                 each with its own stream time, state and churn-model learning: the same
                 outputs as \`ebb run\` on an N-partition input topic (default 1)
  --max-line-bytes N  a longer line is a dead letter (too_large) and is never read into
                 memory whole (default 1048576)`

export async function replay (argv: string[]): Promise<number> {
  const o = parseOptions('replay', argv, {
    in: { type: 'string' }, out: { type: 'string' }, topology: { type: 'string' }, until: { type: 'string' },
    state: { type: 'string' }, cache: { type: 'string' }, batch: { type: 'string' }, partitions: { type: 'string' }, 'max-line-bytes': { type: 'string' }, help: { type: 'boolean' }
  })
  if (o.help === true) { process.stdout.write(REPLAY_HELP + '\n'); return 0 }
  const input = requireOption('replay', 'in', o.in)
  const out = requireOption('replay', 'out', o.out)
  const until = instantOption('replay', 'until', o.until)
  const cacheCapacity = intOption('replay', 'cache', o.cache, 200_000, 1, 50_000_000)
  const batchSize = intOption('replay', 'batch', o.batch, 4096, 1, 1_000_000)
  const partitions = intOption('replay', 'partitions', o.partitions, 1, 1, 1024)
  const maxLineBytes = intOption('replay', 'max-line-bytes', o['max-line-bytes'], DEFAULT_MAX_LINE_BYTES, 64, 256 * 1024 * 1024)
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
  // One state directory per partition (the directory itself with one partition, as before).
  const kpis = new RecallKpis()
  const tasks: PartitionTask[] = []
  try {
    for (let p = 0; p < partitions; p++) {
      const store = await RocksStore.open(partitions === 1 ? stateDir : join(stateDir, `partition-${p}`))
      tasks.push(await PartitionTask.open({ topology, store, sink, cacheCapacity, kpis }))
    }
  } catch (err) {
    for (const t of tasks) await t.stateStore.close()
    throw err
  }
  const progress = new Progress('replay')
  log.info({ input, out, stateDir, cacheCapacity, partitions }, 'replay started')
  const file = basename(input)
  const records = (): number => tasks.reduce((n, t) => n + t.stats.recordsIn, 0)
  try {
    let sinceCommit = 0
    for await (const { lines, lineNumbers, rejected, blank } of readLineBatches(input, batchSize, maxLineBytes)) {
      tasks[0].stats.blankLines += blank
      const batch = new LineBatch(lines, file, lineNumbers, rejected)
      if (partitions === 1) await tasks[0].process(batch)
      else {
        // Runs of consecutive records of one partition, in file order: each partition sees its
        // records in order, and the outputs come out in file order whatever the batch size.
        let from = 0
        let part = partitionOfLine(lines[0], partitions)
        for (let i = 1; i <= lines.length; i++) {
          const next = i < lines.length ? partitionOfLine(lines[i], partitions) : -1
          if (next === part) continue
          await tasks[part].process(batch.slice(from, i))
          from = i
          part = next
        }
      }
      sinceCommit += lines.length
      if (sinceCommit >= 100_000 || tasks.some((t) => t.cache.size > cacheCapacity)) {
        for (const t of tasks) await t.commit()
        sinceCommit = 0
      }
      progress.tick(() => `${count(records())} records, ${rate(records(), progress.elapsedMs)}, alerts ${count(tasks.reduce((n, t) => n + t.stats.alertTotal, 0))}, dead letters ${count(tasks.reduce((n, t) => n + t.stats.deadLetterTotal, 0))}`)
    }
    for (const t of tasks) {
      if (until !== undefined) t.advanceTo(until)
      await t.close()
    }
  } finally {
    await sink.close()
    if (o.state === undefined) rmSync(stateDir, { recursive: true, force: true })
  }
  const summary = summaryOf(tasks, progress.elapsedMs)
  log.info({ records: summary.counts.records, ms: Math.round(summary.elapsedMs) }, 'replay finished')
  // summary.json holds counts only (no timings), so it is as deterministic as the outputs.
  writeFileSync(join(out, 'summary.json'), JSON.stringify(summary.counts, null, 2) + '\n')
  printSummary('replay', summary, process.stdout)
  if (tasks[0].intervention !== null) {
    const report = kpis.report()
    writeFileSync(join(out, 'kpis.json'), JSON.stringify(report, null, 2) + '\n')
    process.stdout.write(kpiTable(report))
  }
  return 0
}

/** The partition of a JSON line's userId; a line without one (it will be a dead letter) goes to partition 0. */
function partitionOfLine (line: string, partitions: number): number {
  try {
    const userId = (JSON.parse(line) as { userId?: unknown }).userId
    return typeof userId === 'string' ? partitionOfKey(userId, partitions) : 0
  } catch {
    return 0
  }
}
