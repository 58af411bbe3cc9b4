import { existsSync } from 'node:fs'
import { EbbError, Errors } from '../errors.js'
import { checkReplay } from '../intervention/checker.js'
import { topologyPath } from '../paths.js'
import { loadTopology } from '../rules/topology.js'
import { parseOptions, requireOption } from './args.js'

export const CHECK_HELP = `ebb check --in events.jsonl --out DIR [--topology T]
  Checks a replay's recall tasks against the rules they must keep: channel rules, consent,
  quiet hours, frequency caps, the golden window, one task per (episode, plan step), no task
  for the holdout, outcomes inside their attribution window. Exit 1 when any is broken.
  --in F         the events the replay read
  --out DIR      the replay's output directory (tasks.jsonl, alerts.jsonl, outcomes.jsonl)
  --topology T   the topology the replay ran (default: topologies/default.yaml)`

export async function check (argv: string[]): Promise<number> {
  const o = parseOptions('check', argv, { in: { type: 'string' }, out: { type: 'string' }, topology: { type: 'string' }, help: { type: 'boolean' } })
  if (o.help === true) { process.stdout.write(CHECK_HELP + '\n'); return 0 }
  const input = requireOption('check', 'in', o.in)
  const out = requireOption('check', 'out', o.out)
  if (!existsSync(input)) throw new EbbError(Errors.INPUT_NOT_FOUND, input, 'no such file')
  if (!existsSync(out)) throw new EbbError(Errors.INPUT_NOT_FOUND, out, 'no such directory')
  const topology = loadTopology(o.topology ?? topologyPath('default.yaml'))
  const r = await checkReplay(input, out, topology)
  process.stdout.write(`checked ${r.tasks} tasks, ${r.alerts} alerts, ${r.outcomes} outcomes: ${r.violations.length === 0 ? 'every rule kept' : `${r.violations.length} violations`}\n`)
  for (const v of r.violations.slice(0, 20)) process.stdout.write(`  ${v.rule}: ${v.id}: ${v.detail}\n`)
  return r.violations.length === 0 ? 0 : 1
}
