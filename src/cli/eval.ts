import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { EbbError, Errors } from '../errors.js'
import { labelsOption } from '../model/dataset.js'
import { evaluate as runEval, reportMarkdown } from '../model/evaluate.js'
import { evalPlots } from '../model/plots.js'
import { topologyPath } from '../paths.js'
import { intOption, parseOptions, requireOption } from './args.js'

export const EVAL_HELP = `ebb eval --in events.jsonl (--labels F | --derive-labels) --out DIR [--topology T] [--model M]
  Replays the events with the churn model learning from them as it would in production, and
  reports, for the model rule, inactive_7d alone and the whole topology: precision per alert,
  recall, alerts per 1k users per day and the lead time (days from the last LOGIN to the first
  alert, median and quartiles); the model's AUC and calibration on the scored days; fixed score
  thresholds (the precision–recall curve); and a yardstick of what the data allows (a simple
  detector fitted and thresholded in hindsight on the same data).
  Writes DIR/eval.json, DIR/eval.md and five pictures (precision-recall.svg, precision-lead.svg,
  lead-time.svg, calibration.svg, score-histogram.svg), and prints the Markdown.
  --model M      the model file (default: the topology's \`model:\`)
  --warmup DAYS  daily snapshots of the first DAYS days are not ranked (default 28)`

export async function evaluate (argv: string[]): Promise<number> {
  const o = parseOptions('eval', argv, {
    in: { type: 'string' }, out: { type: 'string' }, labels: { type: 'string' }, 'derive-labels': { type: 'boolean' },
    topology: { type: 'string' }, model: { type: 'string' }, warmup: { type: 'string' }, help: { type: 'boolean' }
  })
  if (o.help === true) { process.stdout.write(EVAL_HELP + '\n'); return 0 }
  const input = requireOption('eval', 'in', o.in)
  const out = requireOption('eval', 'out', o.out)
  const labels = labelsOption('eval', o.labels, o['derive-labels'])
  if (!existsSync(input) || !statSync(input).isFile()) throw new EbbError(Errors.INPUT_NOT_FOUND, input, 'no such file')
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
    mkdirSync(out, { recursive: true })
    writeFileSync(join(out, 'eval.json'), JSON.stringify(report, null, 2) + '\n')
    writeFileSync(join(out, 'eval.md'), reportMarkdown(report))
    for (const [name, svg] of Object.entries(evalPlots(report))) writeFileSync(join(out, name), svg)
  } catch (err) {
    throw new EbbError(Errors.OUTPUT_NOT_WRITABLE, out, (err as Error).message)
  }
  process.stdout.write(reportMarkdown(report))
  return 0
}
