import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadTopology, parseTopology, type Topology } from '../src/rules/topology.js'
import { topologyPath } from '../src/paths.js'
import { type ModelFile, sealModel } from '../src/model/model.js'

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

/** A logistic model over a few named features, sealed like `ebb train` writes it. */
export function handModel (features: string[], mean: number[], std: number[], weights: number[], intercept: number): ModelFile {
  return sealModel({
    format: 'ebb.churn-model',
    version: 1,
    kind: 'logistic',
    featureSetVersion: 1,
    features,
    labelHorizonDays: 30,
    standardization: { mean, std },
    intercept,
    weights,
    training: { input: 'hand-made' },
    metrics: {}
  })
}

