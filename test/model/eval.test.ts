import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { main } from '../../src/cli/main.js'
import { trainingTopology } from '../../src/cli/train.js'
import { encodeJsonEvent } from '../../src/events/jsonl.js'
import { derivedLabels, LABEL_HORIZON_MS, replayForModel } from '../../src/model/dataset.js'
import type { EvalReport } from '../../src/model/evaluate.js'
import { loadModel, type LogisticModelFile } from '../../src/model/model.js'
import { timeSplit, trainModel } from '../../src/model/train.js'
import { Simulator } from '../../src/sim/simulator.js'
import { defaultTopology, handModel, tempDir } from '../helpers.js'

const DAY = 86_400_000
const tmp = tempDir('ebb-eval-')
afterAll(() => { tmp.cleanup() })

/** Silences the CLI's stdout/stderr while it runs; returns what it printed. */
async function quiet (argv: string[]): Promise<{ code: number, out: string }> {
  const w1 = process.stdout.write.bind(process.stdout)
  const w2 = process.stderr.write.bind(process.stderr)
  let out = ''
  process.stdout.write = ((s: string) => { out += s; return true }) as typeof process.stdout.write
  process.stderr.write = ((s: string) => { out += s; return true }) as typeof process.stderr.write
  try {
    return { code: await main(argv), out }
  } finally {
    process.stdout.write = w1
    process.stderr.write = w2
  }
}

describe('ebb eval on a hand-made fixture', () => {
  // Four users in UTC, logging in at 10:00 from day 0: a and b every day to day 79; c every day
  // to day 39, then never again (churns: day 39 10:00 starts 30 silent days); d to day 39, then
  // silent 10 days and back from day 50 to 79 (a returner). Data ends day 79 10:00.
  const day0 = Date.parse('2026-03-02T10:00:00Z')
  const lines: string[] = []
  let n = 0
  const login = (u: string, d: number): void => { lines.push(JSON.stringify({ eventId: `e${n++}`, userId: u, type: 'LOGIN', ts: day0 + d * DAY, tz: 'UTC' })) }
  for (let d = 0; d <= 79; d++) {
    login('a', d)
    login('b', d)
    if (d <= 39) { login('c', d); login('d', d) }
    if (d >= 50) login('d', d)
  }
  let report: EvalReport
  let markdown: string

  beforeAll(async () => {
    writeFileSync(join(tmp.dir, 'fixture.jsonl'), lines.join('\n') + '\n')
    // score = σ(daysInactive − 4.5): ≥ 0.7 from 6 silent days, ≥ 0.2 from 4
    writeFileSync(join(tmp.dir, 'di.json'), JSON.stringify(handModel(['daysInactive'], [0], [1], [1], -4.5)))
    const r = await quiet(['eval', '--in', join(tmp.dir, 'fixture.jsonl'), '--derive-labels', '--model', join(tmp.dir, 'di.json'), '--warmup', '0', '--out', join(tmp.dir, 'eval')])
    expect(r.code).toBe(0)
    report = JSON.parse(readFileSync(join(tmp.dir, 'eval', 'eval.json'), 'utf8')) as EvalReport
    markdown = readFileSync(join(tmp.dir, 'eval', 'eval.md'), 'utf8')
  })

  it('gives inactive_7d its known precision, recall, volume and lead time', () => {
    const s = report.sources.find((x) => x.name === 'inactive_7d')
    // c and d both reach 7 silent days at day 47 00:00; only c stays away: precision ½.
    // c's lead: day 39 10:00 → day 47 00:00 = 7 days 14 hours.
    expect(s).toMatchObject({ alerts: 2, judged: 2, truePositives: 1, precision: 0.5, churnEvents: 1, caught: 1, recall: 1 })
    expect(s?.leadDays.median).toBeCloseTo(7 + 14 / 24, 3)
    expect(s?.leadDays.p25).toBeCloseTo(7 + 14 / 24, 3)
    expect(s?.alertsPer1kUsersPerDay).toBeCloseTo(2 / 4 / 79 * 1000, 3)
  })

  it('gives the model rule (threshold 0.7: six silent days) its lead, and at inactive_7d precision the sweep finds 0.2 (four days)', () => {
    const m = report.sources.find((x) => x.name === 'model_risk')
    expect(m).toMatchObject({ alerts: 2, precision: 0.5, recall: 1 })
    expect(m?.leadDays.median).toBeCloseTo(6 + 14 / 24, 3)
    expect(report.samePrecision.threshold).toBe(0.2)
    expect(report.samePrecision.model?.leadDays.median).toBeCloseTo(4 + 14 / 24, 3)
    expect(report.samePrecision.medianLeadDaysEarlier).toBeCloseTo(3, 3)
  })

  it('ranks the daily snapshots with the known AUC', () => {
    // Midnights of days 1..49 have their 30 days inside the data: 4 × 49 = 196 snapshots.
    // Positives: c on days 40..49 (0..9 silent days). Negatives: 176 at 0 silent days, and d on
    // days 40..49 (0..9). Pairs won + ½ ties: 9·176 + 88 + (0+…+9) + 10·½ = 1722 of 10·186.
    expect(report.ranking.snapshots).toBe(196)
    expect(report.ranking.positives).toBe(10)
    expect(report.ranking.auc).toBeCloseTo(1722 / 1860, 4)
    expect(report.ranking.aucDaysInactive).toBeCloseTo(1722 / 1860, 4)
    expect(markdown).toContain('| inactive_7d | 2 | 50.0% | 100.0% |')
    expect(markdown).toMatch(/Median lead time: 3\.00 days earlier than inactive_7d/)
  })
})

describe('ebb train', () => {
  const events = join(tmp.dir, 'sim.jsonl')
  beforeAll(() => {
    const sim = new Simulator({ users: 400, days: 140, seed: 21 })
    const out: string[] = []
    for (const day of sim.days()) for (const e of day) out.push(encodeJsonEvent(e))
    writeFileSync(events, out.join('\n') + '\n')
  })

  it('writes a sealed model that loads, with its training window, split and validation metrics', async () => {
    const file = join(tmp.dir, 'trained.json')
    const r = await quiet(['train', '--in', events, '--derive-labels', '--out', file, '--algorithm', 'logistic', '--split', '2026-04-15T00:00:00Z'])
    expect(r.code).toBe(0)
    expect(r.out).toMatch(/\[train\] .*replay|logistic: Newton step 1/)
    const m = loadModel(file)
    expect(m.kind).toBe('logistic')
    const t = m.file.training
    expect(t.split).toBe('2026-04-15T00:00:00.000Z')
    expect(Date.parse(String(t.trainSnapshotsTo)) + LABEL_HORIZON_MS).toBe(Date.parse(String(t.split)))
    expect((m.file.metrics.validation as { auc: number }).auc).toBeGreaterThan(0.8)
  }, 60_000)

  it('has no leakage across the split: rewriting every event after it leaves the fit unchanged', async () => {
    const topology = trainingTopology(defaultTopology())
    const data = await replayForModel(events, topology, { label: 'test', withFeatures: true })
    const split = data.start + 90 * DAY
    for (const i of timeSplit(data, split).train) expect(data.snapshots.ts[i] + LABEL_HORIZON_MS).toBeLessThanOrEqual(split)
    const fit = (d: typeof data): LogisticModelFile => trainModel(d, { algorithm: 'logistic', split, l2: 1, input: 'x', labels: derivedLabels(d.snapshots) }) as LogisticModelFile
    const before = fit(data)

    // The future after the split changes completely: nobody logs in again. A training row whose
    // label window reached past the split would now be labelled churn, and the weights would move.
    const cut = readFileSync(events, 'utf8').split('\n').filter((l) => l !== '' && !(l.includes('"LOGIN"') && (JSON.parse(l) as { ts: number }).ts > split))
    const cutFile = join(tmp.dir, 'cut.jsonl')
    writeFileSync(cutFile, cut.join('\n') + '\n')
    const data2 = await replayForModel(cutFile, topology, { label: 'test', withFeatures: true })
    const after = fit(data2)
    expect(after.weights).toEqual(before.weights)
    expect(after.intercept).toBe(before.intercept)
    // …while the validation rows (after the split) did see the change.
    expect(after.metrics.validation).not.toEqual(before.metrics.validation)
  }, 60_000)
})
