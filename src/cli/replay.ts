import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { commandHelp, COMMANDS, parseCommand } from './commands.js'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { EbbError, Errors } from '../errors.js'
import { decodeJsonEvent } from '../events/jsonl.js'
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
import { decimalOption, instantOption, intOption, refuseCompressed, requireInputFile, requireOption } from './args.js'
import { along, count, Progress, rate } from './progress.js'
import { printSummary, summaryOf } from './summary.js'
import { makeDirectory } from '../io/make-directory.js'

export async function replay (argv: string[]): Promise<number> {
  const o = parseCommand(COMMANDS.replay, argv)
  if (o.help === true) { process.stdout.write(commandHelp(COMMANDS.replay)); return 0 }
  const input = requireOption('replay', 'in', o.in)
  const out = requireOption('replay', 'out', o.out)
  const until = instantOption('replay', 'until', o.until)
  const cacheCapacity = intOption('replay', 'cache', o.cache, 200_000, 1, 50_000_000)
  const batchSize = intOption('replay', 'batch', o.batch, 4096, 1, 1_000_000)
  const partitions = intOption('replay', 'partitions', o.partitions, 1, 1, 1024)
  const maxLineBytes = intOption('replay', 'max-line-bytes', o['max-line-bytes'], DEFAULT_MAX_LINE_BYTES, 64, 256 * 1024 * 1024)
  const maxDeadShare = shareOption(o['max-dead-letter-share'])
  const inputStat = requireInputFile(input)
  refuseCompressed(input)
  const topology = loadTopology(o.topology ?? topologyPath('default.yaml'))
  for (const r of topology.rules) if (!r.enabled) log.info({ rule: r.id, topology: topology.file }, `rule disabled: ${r.disabledReason ?? ''}`)
  try {
    makeDirectory(out)
  } catch (err) {
    throw new EbbError(Errors.OUTPUT_NOT_WRITABLE, out, (err as Error).message)
  }
  const stateDir = o.state ?? mkdtempSync(join(tmpdir(), 'ebb-replay-'))
  // The output files are truncated only once the replay is sure to run (the checks below).
  const sink = JsonlDirectorySink.unopened(out)
  // One state directory per partition (the directory itself with one partition, as before).
  const kpis = new RecallKpis()
  const tasks: PartitionTask[] = []
  const closeStores = async (): Promise<void> => { for (const t of tasks) await t.stateStore.close() }
  try {
    for (let p = 0; p < partitions; p++) {
      const store = await RocksStore.open(partitions === 1 ? stateDir : join(stateDir, `partition-${p}`))
      tasks.push(await PartitionTask.open({ topology, store, sink, cacheCapacity, kpis }))
    }
  } catch (err) {
    await closeStores()
    throw err
  }
  // A state already past this input would make its events late (or count them twice): say so
  // before writing a single dead letter, unless the caller means it.
  const stored = Math.max(...tasks.map((t) => t.watermark))
  if (o.state !== undefined && Number.isFinite(stored) && o['accept-late'] !== true) {
    const first = await firstEventTime(input)
    if (first !== null && first < stored - topology.graceMs) {
      await closeStores()
      throw new EbbError(Errors.USAGE, `ebb replay: the state in ${o.state} is at stream time ${new Date(stored).toISOString()}, and ${basename(input)} starts at ${new Date(first).toISOString()}: its events before ${new Date(stored - topology.graceMs).toISOString()} would all be late (dead letters), and the others counted twice if this state saw them. Replay into an empty --state, feed only events after ${new Date(stored).toISOString()}, or pass --accept-late`)
    }
  }
  try {
    await sink.openFiles()
  } catch (err) {
    await closeStores()
    throw new EbbError(Errors.OUTPUT_NOT_WRITABLE, out, (err as Error).message)
  }
  const progress = new Progress('replay')
  log.info({ input, out, stateDir, cacheCapacity, partitions }, 'replay started')
  const file = basename(input)
  const records = (): number => tasks.reduce((n, t) => n + t.stats.recordsIn, 0)
  try {
    let sinceCommit = 0
    let bytesDone = 0
    for await (const { lines, lineNumbers, rejected, blank, bytesRead } of readLineBatches(input, batchSize, maxLineBytes)) {
      bytesDone = bytesRead
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
      progress.tick(() => `${along(bytesDone, inputStat.size, progress.elapsedMs)}: ${count(records())} records, ${rate(records(), progress.elapsedMs)}, alerts ${count(tasks.reduce((n, t) => n + t.stats.alertTotal, 0))}, dead letters ${count(tasks.reduce((n, t) => n + t.stats.deadLetterTotal, 0))}`)
    }
    // The stream's present: the latest event time any partition applied.
    const present = Math.max(...tasks.map((t) => t.maxTs))
    for (const t of tasks) {
      if (until !== undefined) t.advanceTo(until)
      // Without --state the state is deleted below: an event still waiting for confirmation
      // would go with it, neither applied nor a dead letter.
      if (o.state === undefined) t.settleHeldAtEnd(present, 'a replay without --state keeps no state for it to wait in: replay with --state to keep it waiting, or --until to confirm it')
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
  const c = summary.counts
  const dead = Object.values(c.deadLettersByReason).reduce((a, b) => a + b, 0)
  if (c.records > 0 && dead / c.records > maxDeadShare) {
    const [reason, n] = Object.entries(c.deadLettersByReason).sort((a, b) => b[1] - a[1])[0]
    process.stderr.write(`ebb replay: ${count(dead)} of ${count(c.records)} records were dead letters (${count(n)} ${reason}, in ${join(out, 'dlq.jsonl')}): ${sentence(DEAD_HINTS[reason] ?? 'see the detail of the first ones')} Exit 1 above a share of ${maxDeadShare} (--max-dead-letter-share)\n`)
    return 1
  }
  return 0
}

/** A hint as a sentence: a full stop unless it ends in a question mark already. */
const sentence = (hint: string): string => /[.?!]$/.test(hint) ? hint : `${hint}.`

/** What a mostly-dead input usually means, by its most frequent reason. */
const DEAD_HINTS: Record<string, string> = {
  undecodable: 'is the file JSON Lines of ebb.UserEvent (one object per line), not compressed, CSV or Avro?',
  invalid: 'the records are JSON but break the event contract; the detail of each names the field',
  late: 'the events are older than stream time minus the grace period: is the input out of order, or is --state already past it?',
  duplicate: 'the same eventIds again: was this input replayed onto the same --state before?',
  future: 'events dated far ahead of the others (a clock or unit error: seconds for milliseconds?), or, at the end of the input, one no later event confirmed (EBB_EVENT_UNCONFIRMED: --state keeps it waiting, --until confirms it)',
  too_large: 'lines longer than --max-line-bytes: is the file binary, or without line breaks?',
  erased: 'events of users erased after them',
  processing: 'Ebb failed on them: please report it with a dead letter'
}

function shareOption (v: string | undefined): number {
  return decimalOption('replay', 'max-dead-letter-share', v, 0.5, (x) => x >= 0 && x <= 1, 'a number in 0..1')
}

/** The time of the first decodable event of a file (its first 4096 lines), or null. */
async function firstEventTime (file: string): Promise<number | null> {
  for await (const { lines } of readLineBatches(file, 4096)) {
    for (const l of lines) {
      try { return decodeJsonEvent(l).ts } catch {}
    }
    return null
  }
  return null
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
