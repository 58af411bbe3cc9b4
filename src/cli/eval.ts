import { writeFileSync } from 'node:fs'
import { commandHelp, COMMANDS, parseCommand } from './commands.js'
import { basename, join, resolve } from 'node:path'
import { EbbError, Errors } from '../errors.js'
import { labelsOption } from '../model/dataset.js'
import { evaluate as runEval, reportMarkdown } from '../model/evaluate.js'
import { evalPlots } from '../model/plots.js'
import { topologyPath } from '../paths.js'
import { intOption, requireInputFile, requireOption } from './args.js'
import { makeDirectory } from '../io/make-directory.js'

export async function evaluate (argv: string[]): Promise<number> {
  const o = parseCommand(COMMANDS.eval, argv)
  if (o.help === true) { process.stdout.write(commandHelp(COMMANDS.eval)); return 0 }
  const input = requireOption('eval', 'in', o.in)
  const out = requireOption('eval', 'out', o.out)
  const labels = labelsOption('eval', o.labels, o['derive-labels'])
  requireInputFile(input)
  // before the replay, not after it: a mistyped label file should not cost a whole replay
  if (typeof o.labels === 'string') requireInputFile(o.labels)
  const warmupDays = intOption('eval', 'warmup', o.warmup, 28, 0, 3650)
  const report = await runEval({
    input: basename(input),
    inputPath: input,
    topologyFile: o.topology ?? topologyPath('default.yaml'),
    modelFile: o.model === undefined ? null : resolve(o.model),
    labels,
    warmupDays
  })
  try {
    makeDirectory(out)
    writeFileSync(join(out, 'eval.json'), JSON.stringify(report, null, 2) + '\n')
    writeFileSync(join(out, 'eval.md'), reportMarkdown(report))
    for (const [name, svg] of Object.entries(evalPlots(report))) writeFileSync(join(out, name), svg)
  } catch (err) {
    throw new EbbError(Errors.OUTPUT_NOT_WRITABLE, out, (err as Error).message)
  }
  process.stdout.write(reportMarkdown(report))
  return 0
}
