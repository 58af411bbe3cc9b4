import { writeFileSync } from 'node:fs'
import { commandHelp, COMMANDS, parseCommand } from './commands.js'
import { basename } from 'node:path'
import { EbbError, Errors } from '../errors.js'
import { DAY_MS, derivedLabels, fileLabels, type Labels, replayForModel } from '../model/dataset.js'
import { neutralModel } from '../model/model.js'
import { FEATURES } from '../model/spell.js'
import { type LabelledData, trainModel, TrainRefusal } from '../model/train.js'
import { topologyPath } from '../paths.js'
import { loadTopology, type Topology } from '../rules/topology.js'
import { decimalOption, instantOption, intOption, requireInputFile, requireOption } from './args.js'

export async function train (argv: string[]): Promise<number> {
  const o = parseCommand(COMMANDS.train, argv)
  if (o.help === true) { process.stdout.write(commandHelp(COMMANDS.train)); return 0 }
  const inputs = o.in ?? []
  if (inputs.length === 0) throw new EbbError(Errors.USAGE, 'ebb train: --in is required')
  const out = requireOption('train', 'out', o.out)
  const labelFiles = o.labels ?? []
  if ((labelFiles.length > 0) === (o['derive-labels'] === true)) throw new EbbError(Errors.USAGE, 'ebb train: give exactly one of --labels F and --derive-labels')
  if (labelFiles.length > 0 && labelFiles.length !== inputs.length) throw new EbbError(Errors.USAGE, `ebb train: ${inputs.length} --in and ${labelFiles.length} --labels: give one label file per input, in the same order`)
  for (const input of inputs) requireInputFile(input)
  for (const f of labelFiles) requireInputFile(f)
  const warmupDays = intOption('train', 'warmup', o.warmup, 0, 0, 3650)
  const l2 = decimalOption('train', 'l2', o.l2, 1, (x) => x >= 0, 'a number ≥ 0')
  const split = instantOption('train', 'split', o.split) ?? null
  const topology = trainingTopology(loadTopology(o.topology ?? topologyPath('default.yaml'), { loadModel: false }))

  const sets: LabelledData[] = []
  for (let k = 0; k < inputs.length; k++) {
    const data = await replayForModel(inputs[k], topology, { label: 'train', from: (start) => start + warmupDays * DAY_MS })
    const labels: Labels = labelFiles.length > 0 ? fileLabels(labelFiles[k], data.snapshots) : derivedLabels(data.snapshots)
    sets.push({ data, labels })
  }
  let model: ReturnType<typeof trainModel>
  try {
    model = trainModel(sets, {
      split,
      l2,
      interceptPerInput: o['intercept-per-input'] === true,
      input: inputs.map((i) => basename(i)).join(', '),
      onProgress: (l) => process.stderr.write(`[train] ${l}\n`),
      onWarning: (l) => process.stderr.write(`[train] WARNING: ${l}\n`)
    })
  } catch (err) {
    if (err instanceof TrainRefusal) throw new EbbError(Errors.USAGE, `ebb train: ${err.message}`)
    throw err
  }
  try {
    writeFileSync(out, JSON.stringify(model, null, 1) + '\n')
  } catch (err) {
    throw new EbbError(Errors.OUTPUT_NOT_WRITABLE, out, (err as Error).message)
  }
  const m = model.metrics as Record<string, { auc: number, logLoss: number, samples: number, positives: number }>
  const lines = [
    `train: ${model.kind} prior → ${out} (sha256 ${model.sha256.slice(0, 12)})`,
    `  split ${String(model.training.split)}`,
    `  training   ${m.train.samples} scored days, ${m.train.positives} churned: AUC ${m.train.auc.toFixed(4)}, log loss ${m.train.logLoss.toFixed(4)}`,
    `  validation ${m.validation.samples} scored days, ${m.validation.positives} churned: AUC ${Number(m.validation.auc).toFixed(4)}, log loss ${Number(m.validation.logLoss).toFixed(4)}`,
    `  intercept ${model.prior.intercept.toFixed(3)}; weights (per standard deviation):`,
    ...FEATURES.map((f, i) => `    ${f.name.padEnd(18)} ${model.prior.weights[i] >= 0 ? '+' : ''}${model.prior.weights[i].toFixed(3)}`),
    `  prior threshold ${String(model.training.priorThreshold)}`
  ]
  process.stdout.write(lines.join('\n') + '\n')
  return 0
}

/**
 * Features need the engine's spells only: a neutral model (every score ½) makes the engine keep
 * them, with no recall tasks. The rows do not depend on the model's coefficients.
 */
export function trainingTopology (t: Topology): Topology {
  return { ...t, model: neutralModel(), modelPath: null, intervention: null }
}
