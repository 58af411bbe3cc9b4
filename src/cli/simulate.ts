import { createWriteStream, type WriteStream } from 'node:fs'
import { commandHelp, COMMANDS, parseCommand } from './commands.js'
import { once } from 'node:events'
import { EbbError, Errors } from '../errors.js'
import { encodeJsonEvent } from '../events/jsonl.js'
import { isPopulationKind, makePopulation, POPULATION_KINDS, type PopulationKind } from '../sim/populations.js'
import { Simulator } from '../sim/simulator.js'
import { intOption, requireOption } from './args.js'
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
  if (o.start !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(o.start)) throw new EbbError(Errors.USAGE, `ebb simulate: --start must be a date like 2026-01-05, got "${o.start}"`)
  if (o.kafka === true) {
    const { produceSimulation } = await import('../kafka/produce.js')
    const sim = new Simulator({ users, days, seed, start: o.start, noise: o.noise === true })
    return await produceSimulation(sim, days, requireOption('simulate', 'config', o.config))
  }
  const out = requireOption('simulate', 'out', o.out)
  if (o.start !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(o.start)) throw new EbbError(Errors.USAGE, `ebb simulate: --start must be a date like 2026-01-05, got "${o.start}"`)
  const labelsFile = o.labels ?? out.replace(/\.jsonl$/, '') + '.labels.jsonl'
  const kind = o.population ?? 'archetypes'
  if (!isPopulationKind(kind)) throw new EbbError(Errors.USAGE, `ebb simulate: --population must be one of ${POPULATION_KINDS.join(', ')}, got "${kind}"`)
  let churnRate: number | undefined
  if (o['churn-rate'] !== undefined) {
    churnRate = Number(o['churn-rate'])
    if (!(churnRate > 0 && churnRate < 1)) throw new EbbError(Errors.USAGE, `ebb simulate: --churn-rate must be a number between 0 and 1, got "${o['churn-rate']}"`)
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
  for (const l of sim.labels()) await write(labels, JSON.stringify(l) + '\n')
  labels.end()
  await once(labels, 'finish')
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
