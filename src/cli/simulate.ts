import { createWriteStream, type WriteStream } from 'node:fs'
import { resolve } from 'node:path'
import { commandHelp, COMMANDS, parseCommand } from './commands.js'
import { once } from 'node:events'
import { EbbError, Errors } from '../errors.js'
import { encodeJsonEvent } from '../events/jsonl.js'
import { MAX_TS, MIN_TS } from '../events/validate.js'
import { isPopulationKind, makePopulation, POPULATION_KINDS, type PopulationKind } from '../sim/populations.js'
import { Simulator } from '../sim/simulator.js'
import { decimalOption, intOption, requireOption } from './args.js'
import { count, writeDays } from './progress.js'

async function write (stream: WriteStream, text: string): Promise<void> {
  if (!stream.write(text)) await once(stream, 'drain')
}

export async function simulate (argv: string[]): Promise<number> {
  const o = parseCommand(COMMANDS.simulate, argv)
  if (o.help === true) { process.stdout.write(commandHelp(COMMANDS.simulate)); return 0 }
  const users = intOption('simulate', 'users', o.users, 1000, 1, 50_000_000)
  const days = intOption('simulate', 'days', o.days, 60, 1, 3650)
  const seed = intOption('simulate', 'seed', o.seed, 1, 0, 2 ** 31 - 1)
  if (o.start !== undefined) startOption(o.start, days)
  if (o.kafka === true) {
    const { produceSimulation } = await import('../kafka/produce.js')
    const sim = new Simulator({ users, days, seed, start: o.start, noise: o.noise === true })
    return await produceSimulation(sim, days, requireOption('simulate', 'config', o.config))
  }
  const out = requireOption('simulate', 'out', o.out)
  const labelsFile = o.labels ?? out.replace(/\.jsonl$/, '') + '.labels.jsonl'
  if (resolve(labelsFile) === resolve(out)) throw new EbbError(Errors.USAGE, `ebb simulate: --labels and --out name the same file (${out}): the labels would overwrite the events`)
  const kind = o.population ?? 'archetypes'
  if (!isPopulationKind(kind)) throw new EbbError(Errors.USAGE, `ebb simulate: --population must be one of ${POPULATION_KINDS.join(', ')}, got "${kind}"`)
  let churnRate: number | undefined
  if (o['churn-rate'] !== undefined) {
    churnRate = decimalOption('simulate', 'churn-rate', o['churn-rate'], 0, (x) => x > 0 && x < 1, 'a number between 0 and 1')
  }
  const prehistoryDays = o.prehistory === undefined ? undefined : intOption('simulate', 'prehistory', o.prehistory, 60, 0, 3650)
  if (kind === 'archetypes' && (churnRate !== undefined || prehistoryDays !== undefined)) throw new EbbError(Errors.USAGE, 'ebb simulate: --churn-rate and --prehistory apply to the other generators; archetypes has fixed shares and starts everyone on day 0')
  const sim = makePopulation(kind as PopulationKind, { users, days, seed, start: o.start, noise: o.noise === true, churnRate, prehistoryDays })
  const stream = createWriteStream(out)
  stream.on('error', () => {})
  let events: number
  try {
    events = await writeDays(sim.days(), days, '', async (batch) => { await write(stream, batch.map(encodeJsonEvent).join('\n') + '\n') })
    stream.end()
    await once(stream, 'finish')
  } catch (err) {
    throw new EbbError(Errors.OUTPUT_NOT_WRITABLE, out, (err as Error).message)
  }
  const labels = createWriteStream(labelsFile)
  labels.on('error', () => {})
  try {
    for (const l of sim.labels()) await write(labels, JSON.stringify(l) + '\n')
    labels.end()
    await once(labels, 'finish')
  } catch (err) {
    throw new EbbError(Errors.OUTPUT_NOT_WRITABLE, labelsFile, (err as Error).message)
  }
  const truth = sim.labels()
  const kinds = new Map<string, number>()
  let churned = 0
  for (const l of truth) { kinds.set(l.archetype, (kinds.get(l.archetype) ?? 0) + 1); if (l.churned) churned++ }
  const shares = [...kinds].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(v / truth.length * 100).toFixed(0)}%`).join(', ')
  // Generators draw users' lives, some of which send nothing in the written days (a rate too low,
  // a life that ended before them): those are not in the events or the labels, and say so here.
  const silent = truth.length < users ? ` (of ${count(users)} drawn: ${count(users - truth.length)} sent no event in these days)` : ''
  process.stdout.write(`simulate: ${count(events)} events for ${count(truth.length)} users${silent} (${kind}) over ${days} days → ${out}\n  labels → ${labelsFile}\n  ${shares}; churned ${(churned / Math.max(1, truth.length) * 100).toFixed(1)}%\n`)
  return 0
}

/**
 * `--start`: a real calendar date, and the simulated days inside the years an event may be dated
 * (2000..2100; a stream outside them is dead-lettered whole by every command that reads it).
 */
function startOption (start: string, days: number): void {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(start)
  const ms = m === null ? Number.NaN : Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))
  if (m === null || Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== start) throw new EbbError(Errors.USAGE, `ebb simulate: --start must be a real date like 2026-01-05, got "${start}"`)
  if (ms < MIN_TS || ms + days * 86_400_000 > MAX_TS) throw new EbbError(Errors.USAGE, `ebb simulate: --start ${start} with --days ${days} leaves 2000..2100, the years an event may be dated`)
}
