import { existsSync, statSync } from 'node:fs'
import { commandHelp, COMMANDS, parseCommand } from './commands.js'
import { EbbError, Errors } from '../errors.js'
import { checkReplay } from '../intervention/checker.js'
import { topologyPath } from '../paths.js'
import { loadTopology } from '../rules/topology.js'
import { refuseCompressed, requireInputFile, requireOption } from './args.js'

export async function check (argv: string[]): Promise<number> {
  const o = parseCommand(COMMANDS.check, argv)
  if (o.help === true) { process.stdout.write(commandHelp(COMMANDS.check)); return 0 }
  const input = requireOption('check', 'in', o.in)
  const out = requireOption('check', 'out', o.out)
  requireInputFile(input, { streams: true })
  refuseCompressed(input)
  if (!existsSync(out)) throw new EbbError(Errors.INPUT_NOT_FOUND, out, 'no such directory')
  if (!statSync(out).isDirectory()) throw new EbbError(Errors.INPUT_NOT_FOUND, out, 'it is a file: give --out the directory `ebb replay` wrote')
  const topology = loadTopology(o.topology ?? topologyPath('default.yaml'))
  const r = await checkReplay(input, out, topology)
  process.stdout.write(`checked ${r.tasks} tasks, ${r.alerts} alerts, ${r.outcomes} outcomes: ${r.violations.length === 0 ? 'every rule kept' : `${r.violations.length} violations`}\n`)
  for (const v of r.violations.slice(0, 20)) process.stdout.write(`  ${v.rule}: ${v.id}: ${v.detail}\n`)
  return r.violations.length === 0 ? 0 : 1
}
