import { createWriteStream, type WriteStream } from 'node:fs'
import { once } from 'node:events'
import { EbbError, Errors } from '../errors.js'
import { encodeJsonEvent } from '../events/jsonl.js'
import { Simulator } from '../sim/simulator.js'
import { intOption, parseOptions, requireOption } from './args.js'
import { count, Progress, rate } from './progress.js'

export const SIMULATE_HELP = `ebb simulate --users N --days D (--out F | --kafka --config F) [--labels F] [--seed S] [--start DATE] [--noise]
  Writes a synthetic population as JSON Lines (ebb.UserEvent), time-ordered, and the ground
  truth per user (archetype, whether and when they churned) to --labels (default F.labels.jsonl).
  --noise adds duplicate and late events, as real streams have.
  --kafka        produce the events as Avro (key = userId) to the input topic of the run
                 configuration --config F (brokers and topics from it, and from EBB_BROKERS)`

async function write (stream: WriteStream, text: string): Promise<void> {
  if (!stream.write(text)) await once(stream, 'drain')
}

export async function simulate (argv: string[]): Promise<number> {
  const o = parseOptions('simulate', argv, {
    users: { type: 'string' }, days: { type: 'string' }, out: { type: 'string' }, labels: { type: 'string' },
    seed: { type: 'string' }, start: { type: 'string' }, noise: { type: 'boolean' }, kafka: { type: 'boolean' }, config: { type: 'string' }, help: { type: 'boolean' }
  })
  if (o.help === true) { process.stdout.write(SIMULATE_HELP + '\n'); return 0 }
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
  const sim = new Simulator({ users, days, seed, start: o.start, noise: o.noise === true })
  const stream = createWriteStream(out)
  stream.on('error', () => {})
  const progress = new Progress('simulate')
  let events = 0
  let day = 0
  try {
    for (const batch of sim.days()) {
      day++
      if (batch.length > 0) await write(stream, batch.map(encodeJsonEvent).join('\n') + '\n')
      events += batch.length
      progress.tick(() => `day ${day}/${days}, ${count(events)} events (${rate(events, progress.elapsedMs)})`)
    }
    stream.end()
    await once(stream, 'finish')
  } catch (err) {
    throw new EbbError(Errors.OUTPUT_NOT_WRITABLE, out, (err as Error).message)
  }
  const labels = createWriteStream(labelsFile)
  for (const l of sim.labels()) await write(labels, JSON.stringify(l) + '\n')
  labels.end()
  await once(labels, 'finish')
  const shares = Object.entries(sim.archetypeShares).map(([k, v]) => `${k} ${(v * 100).toFixed(0)}%`).join(', ')
  process.stdout.write(`simulate: ${count(events)} events for ${count(users)} users over ${days} days → ${out}\n  labels → ${labelsFile}\n  archetypes: ${shares}\n`)
  return 0
}
