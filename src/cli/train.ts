import { existsSync, statSync, writeFileSync } from 'node:fs'
import { basename } from 'node:path'
import { EbbError, Errors } from '../errors.js'
import { DAY_MS, labelsOption, replayForModel } from '../model/dataset.js'
import { FEATURES } from '../model/features.js'
import { type Algorithm, defaultSplit, trainModel } from '../model/train.js'
import { topologyPath } from '../paths.js'
import { loadTopology, type Topology } from '../rules/topology.js'
import { instantOption, intOption, parseOptions, requireOption } from './args.js'

export const TRAIN_HELP = `ebb train --in events.jsonl (--labels F | --derive-labels) --out model.json [options]
  Fits the churn model (logistic regression, gradient-boosted trees) on daily snapshots of a
  replay: each user at each local midnight, labelled churn when they do not log in within the
  next 30 days. Training uses the snapshots whose 30-day label window ends before --split;
  validation the ones after it (no leakage across time). Writes a sealed, versioned model file.
  --labels F        the simulator's label file (churnAt per user)
  --derive-labels   derive the labels from the LOGIN events of --in
  --split ISO       start of validation (default: the last quarter of the labelled span)
  --warmup DAYS     skip snapshots of the first DAYS days of data (default 0: young accounts
                    are part of what the model must score)
  --topology T      signal parameters come from it (default: topologies/default.yaml)
  --l2 X            L2 penalty on the standardised weights (default 1)
  --algorithm A     logistic | gbt | best (default: fit both, keep gradient-boosted trees only
                    when their validation AUC beats logistic regression by ≥ 0.005)`

export async function train (argv: string[]): Promise<number> {
  const o = parseOptions('train', argv, {
    in: { type: 'string' }, out: { type: 'string' }, labels: { type: 'string' }, 'derive-labels': { type: 'boolean' },
    split: { type: 'string' }, warmup: { type: 'string' }, topology: { type: 'string' }, l2: { type: 'string' }, algorithm: { type: 'string' }, help: { type: 'boolean' }
  })
  if (o.help === true) { process.stdout.write(TRAIN_HELP + '\n'); return 0 }
  const input = requireOption('train', 'in', o.in)
  const out = requireOption('train', 'out', o.out)
  const labelsOf = labelsOption('train', o.labels, o['derive-labels'])
  if (!existsSync(input) || !statSync(input).isFile()) throw new EbbError(Errors.INPUT_NOT_FOUND, input, 'no such file')
  const warmupDays = intOption('train', 'warmup', o.warmup, 0, 0, 3650)
  const l2 = o.l2 === undefined ? 1 : Number(o.l2)
  if (!(l2 >= 0) || !Number.isFinite(l2)) throw new EbbError(Errors.USAGE, `ebb train: --l2 must be a number ≥ 0, got "${o.l2 ?? ''}"`)
  const splitArg = instantOption('train', 'split', o.split)
  const algorithm = (o.algorithm ?? 'best') as Algorithm
  if (!['logistic', 'gbt', 'best'].includes(algorithm)) throw new EbbError(Errors.USAGE, `ebb train: --algorithm must be logistic, gbt or best, got "${algorithm}"`)
  const topology = trainingTopology(loadTopology(o.topology ?? topologyPath('default.yaml')))

  const data = await replayForModel(input, topology, { label: 'train', withFeatures: true, from: (start) => start + warmupDays * DAY_MS })
  const labels = labelsOf(data.snapshots)
  const split = splitArg ?? defaultSplit(data)
  let model
  try {
    model = trainModel(data, { algorithm, split, l2, input: basename(input), labels, onProgress: (l) => process.stderr.write(`[train] ${l}\n`) })
  } catch (err) {
    if (err instanceof RangeError) throw new EbbError(Errors.USAGE, `ebb train: ${err.message}; use more days of data, an earlier --split or a shorter --warmup`)
    throw err
  }
  try {
    writeFileSync(out, JSON.stringify(model) + '\n') // one line: a tree ensemble is thousands of numbers
  } catch (err) {
    throw new EbbError(Errors.OUTPUT_NOT_WRITABLE, out, (err as Error).message)
  }
  const m = model.metrics as Record<string, { auc: number, logLoss: number, samples: number, positives: number }>
  const lines = [
    `train: ${model.kind} model → ${out} (sha256 ${model.sha256.slice(0, 12)})`,
    `  data ${String(model.training.dataFrom)} … ${String(model.training.dataTo)}, split ${String(model.training.split)}`,
    `  training   ${m.train.samples} snapshots, ${m.train.positives} churn: AUC ${m.train.auc.toFixed(4)}, log loss ${m.train.logLoss.toFixed(4)}`,
    `  validation ${m.validation.samples} snapshots, ${m.validation.positives} churn: AUC ${Number(m.validation.auc).toFixed(4)}, log loss ${Number(m.validation.logLoss).toFixed(4)}`,
    ...(model.kind === 'logistic'
      ? ['  weights (per standard deviation):', ...FEATURES.map((f, i) => `    ${f.name.padEnd(18)} ${model.weights[i] >= 0 ? '+' : ''}${model.weights[i].toFixed(3)}`)]
      : [`  ${model.trees.length} trees of depth ≤ ${String((model.training.gbt as { depth: number }).depth)}`])
  ]
  process.stdout.write(lines.join('\n') + '\n')
  return 0
}

/** Features need the engine's state only: no model (nothing to score yet), no recall tasks. */
export function trainingTopology (t: Topology): Topology {
  return { ...t, model: null, modelPath: null, intervention: null }
}
