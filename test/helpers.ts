import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadTopology, parseTopology, type Topology } from '../src/rules/topology.js'
import { topologyPath } from '../src/paths.js'
import { DEFAULT_LEARNING, MODEL_FORMAT, MODEL_KIND, MODEL_VERSION, type ModelFile, sealModel } from '../src/model/model.js'
import { FEATURE_SET_VERSION, FEATURES } from '../src/model/spell.js'

export function defaultTopology (): Topology {
  return loadTopology(topologyPath('default.yaml'))
}

/** The default topology with a model path set, so churnScore rules are enabled. */
export function topologyWith (yaml: string): Topology {
  return parseTopology(yaml, 'inline.yaml')
}

export function tempDir (prefix = 'ebb-test-'): { dir: string, cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** An ISO instant at a local wall-clock time in a zone with a fixed, known offset, e.g. at('2026-03-02T09:00', '+08:00'). */
export function at (local: string, offset = '+08:00'): number {
  return Date.parse(`${local}:00${offset}`)
}

/**
 * A churn-model prior over the spell features, sealed like `ebb train` writes it: the named
 * features get the given weights (per unit: mean 0, std 1), every other feature 0. With `learn`
 * false (the default) the stream cannot move it (maxStep 0), so a test knows its scores exactly: score = σ(intercept + Σ weight × feature).
 */
export function handModel (weights: Record<string, number>, intercept: number, opts: { thresholdLogit?: number, learn?: boolean, loginRate?: number } = {}): ModelFile {
  return sealModel({
    format: MODEL_FORMAT,
    version: MODEL_VERSION,
    kind: MODEL_KIND,
    featureSetVersion: FEATURE_SET_VERSION,
    features: FEATURES.map((f) => f.name),
    labelHorizonDays: 30,
    standardization: { mean: FEATURES.map(() => 0), std: FEATURES.map(() => 1) },
    prior: { intercept, weights: FEATURES.map((f) => weights[f.name] ?? 0), thresholdLogit: opts.thresholdLogit ?? 0, loginRate: opts.loginRate ?? 0.5 },
    learning: opts.learn === true ? { ...DEFAULT_LEARNING } : { ...DEFAULT_LEARNING, maxStep: 0 },
    training: { input: 'hand-made' },
    metrics: {}
  })
}
