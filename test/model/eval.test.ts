import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { main } from '../../src/cli/main.js'
import { trainingTopology } from '../../src/cli/train.js'
import { encodeJsonEvent } from '../../src/events/jsonl.js'
import { derivedLabels, LABEL_HORIZON_MS, replayForModel } from '../../src/model/dataset.js'
import { type EvalReport, reportMarkdown } from '../../src/model/evaluate.js'
import { loadModel } from '../../src/model/model.js'
import { FeatureId } from '../../src/model/spell.js'
import { chooseSplit, trainModel } from '../../src/model/train.js'
import { topologyPath } from '../../src/paths.js'
import { loadTopology } from '../../src/rules/topology.js'
import { makePopulation, type PopulationKind } from '../../src/sim/populations.js'
import { handModel, tempDir } from '../helpers.js'

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
    // score = σ(daysInactive − 4.5): ≥ 0.7 from 6 silent days, ≥ 0.02 from 1; a fixed threshold of 0.7
    writeFileSync(join(tmp.dir, 'di.json'), JSON.stringify(handModel({ daysInactive: 1 }, -4.5)))
    writeFileSync(join(tmp.dir, 'fixed.yaml'), readFileSync(topologyPath('default.yaml'), 'utf8').replace('threshold: { earlierThan: inactive_7d }', 'threshold: 0.7'))
    const r = await quiet(['eval', '--in', join(tmp.dir, 'fixture.jsonl'), '--derive-labels', '--model', join(tmp.dir, 'di.json'), '--topology', join(tmp.dir, 'fixed.yaml'), '--warmup', '0', '--out', join(tmp.dir, 'eval')])
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

  it('gives the model rule (threshold 0.7: six silent days) its lead, and at inactive_7d precision the sweep finds 0.02 (one day)', () => {
    const m = report.sources.find((x) => x.name === 'model_risk')
    expect(m).toMatchObject({ alerts: 2, precision: 0.5, recall: 1 })
    expect(m?.leadDays.median).toBeCloseTo(6 + 14 / 24, 3)
    // every threshold alerts c and d once each (precision ½, like the rule): the lowest wins
    expect(report.samePrecision.threshold).toBe(0.02)
    expect(report.samePrecision.model?.leadDays.median).toBeCloseTo(1 + 14 / 24, 3)
    expect(report.samePrecision.medianLeadDaysEarlier).toBeCloseTo(6, 3)
    // the one churn point both caught, paired: the model a day before the rule, not after it
    expect(report.laterThanRule).toMatchObject({ both: 1, later: 0, share: 0 })
    expect(reportMarkdown(report)).toContain('Of the 1 churn points both caught, the model caught 0 (0.0%) later than inactive_7d')
  })

  it('gives the learning curve: each 30-day period its churn points, leads, alerts and precision', () => {
    // 79 days: 0–30, 30–60, 60–79 (a tail of a week or more is a period of its own). c's churn
    // point (day 39) and both rules' alerts on c and d (days 46 and 47) fall in the second.
    expect(report.byPeriod.map((p) => [p.fromDay, p.toDay, p.churnEvents, p.modelAlerts, p.ruleAlerts])).toEqual([[0, 30, 0, 0, 0], [30, 60, 1, 2, 2], [60, 79, 0, 0, 0]])
    const p = report.byPeriod[1]
    expect(p.modelLead).toBeCloseTo(6 + 14 / 24, 3)
    expect(p.ruleLead).toBeCloseTo(7 + 14 / 24, 3)
    expect([p.modelPrecision, p.rulePrecision]).toEqual([0.5, 0.5])
    expect(report.byPeriod[0].modelLead).toBeNull() // NaN in JSON: no churn point to lead
    expect(markdown).toMatch(/\| 30–60 \| 1 \| 6\.58 \/ 7\.58 \| 2 \/ 2 \| 50\.0% \/ 50\.0% \|/)
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
    expect(markdown).toMatch(/a fixed threshold would be 0\.02: median lead 6\.00 days earlier than inactive_7d/)
  })

  it('with a label file, ranks against it and beside it against the question the model learns (no LOGIN within 30 days)', async () => {
    // The file says c left at its last LOGIN (day 39 10:00) and nobody else did. Every scored day
    // is judged by it: c's 30 scored days of silence (days 40..69) are the positives. The question
    // needs 30 days of data after a scored day: the 196 snapshots of the derived run, same answers.
    const labels = ['a', 'b', 'c', 'd'].map((u) => JSON.stringify(u === 'c' ? { userId: u, churned: true, churnAt: day0 + 39 * DAY } : { userId: u, churned: false }))
    writeFileSync(join(tmp.dir, 'fixture.labels.jsonl'), labels.join('\n') + '\n')
    const r = await quiet(['eval', '--in', join(tmp.dir, 'fixture.jsonl'), '--labels', join(tmp.dir, 'fixture.labels.jsonl'), '--model', join(tmp.dir, 'di.json'), '--topology', join(tmp.dir, 'fixed.yaml'), '--warmup', '0', '--out', join(tmp.dir, 'eval-file')])
    expect(r.code).toBe(0)
    const withFile = JSON.parse(readFileSync(join(tmp.dir, 'eval-file', 'eval.json'), 'utf8')) as EvalReport
    expect(withFile.ranking.positives).toBe(30)
    expect(withFile.ranking.snapshots).toBeGreaterThan(196)
    expect(withFile.ranking.question).toMatchObject({ snapshots: 196, positives: 10, auc: report.ranking.auc, aucDaysInactive: report.ranking.aucDaysInactive })
    expect(withFile.ranking.question?.calibration).toEqual(report.ranking.calibration)
    expect(report.ranking.question).toBeNull()
    const md = readFileSync(join(tmp.dir, 'eval-file', 'eval.md'), 'utf8')
    expect(md).toContain(`| no LOGIN within 30 days | 196 | 5.1% | ${report.ranking.auc.toFixed(4)} |`)
    expect(md).toContain('their share with no LOGIN within 30 days |')
    expect(markdown).not.toContain('| label file |')
    expect(readFileSync(join(tmp.dir, 'eval-file', 'calibration.svg'), 'utf8')).toContain('no LOGIN within 30 days')
  })

  it('writes the pictures, and they render (rsvg-convert, librsvg: the SVG a browser would show)', () => {
    for (const name of ['precision-recall', 'precision-lead', 'lead-time', 'calibration', 'score-histogram']) {
      const svg = join(tmp.dir, 'eval', `${name}.svg`)
      expect(readFileSync(svg, 'utf8')).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="720" height="460"/)
      const png = join(tmp.dir, `${name}.png`)
      const r = spawnSync('rsvg-convert', [svg, '-o', png], { encoding: 'utf8' })
      expect(r.status, r.stderr).toBe(0)
      const b = readFileSync(png)
      expect(b.subarray(1, 4).toString()).toBe('PNG')
      expect([b.readUInt32BE(16), b.readUInt32BE(20)]).toEqual([720, 460]) // IHDR width, height
    }
    expect(markdown).toContain('![lead time](lead-time.svg)')
    // the lead-time plot draws the model, inactive_7d and the yardstick from their leads
    const lead = readFileSync(join(tmp.dir, 'eval', 'lead-time.svg'), 'utf8')
    expect(lead.match(/<polyline /g)?.length).toBe(3)
    expect(report.yardstick).not.toBeNull()
    expect(report.leads.rule).toEqual([7 + 14 / 24].map((x) => expect.closeTo(x, 6)))
  })
})

describe('ebb eval on a history with no churner it can judge', () => {
  it('says n/a for recall and for not later, instead of a failure', async () => {
    // 20 days: no churner's 30 silent days fit, so no churn point and no lead to compare
    const pop = population('cadence', 200, 20, 5)
    const out = join(tmp.dir, 'eval-short')
    const r = await quiet(['eval', '--in', pop.events, '--labels', pop.labels, '--warmup', '0', '--out', out])
    expect(r.code).toBe(0)
    const short = JSON.parse(readFileSync(join(out, 'eval.json'), 'utf8')) as EvalReport
    expect([short.verdict.recallAtLeast90, short.verdict.notLaterThanRule]).toEqual([null, null])
    expect(readFileSync(join(out, 'eval.md'), 'utf8')).toMatch(/recall ≥ 90% n\/a; median lead not later than inactive_7d n\/a/)
  }, 120_000)
})

/** A generated population as a JSON Lines file (and its ground truth). */
function population (kind: PopulationKind, users: number, days: number, seed: number, churnRate?: number): { events: string, labels: string } {
  const pop = makePopulation(kind, { users, days, seed, churnRate })
  const lines: string[] = []
  for (const day of pop.days()) for (const e of day) lines.push(encodeJsonEvent(e))
  const events = join(tmp.dir, `${kind}-${users}-${days}-${seed}.jsonl`)
  writeFileSync(events, lines.join('\n') + '\n')
  const labels = events.replace(/\.jsonl$/, '.labels.jsonl')
  writeFileSync(labels, pop.labels().map((l) => JSON.stringify(l)).join('\n') + '\n')
  return { events, labels }
}

describe('ebb train', () => {
  let fades: { events: string, labels: string }
  beforeAll(() => { fades = population('fades', 1500, 100, 21, 0.3) })

  it('writes a sealed prior that loads, with its split, validation metrics and prior threshold', async () => {
    const file = join(tmp.dir, 'trained.json')
    const r = await quiet(['train', '--in', fades.events, '--derive-labels', '--out', file])
    expect(r.code, r.out).toBe(0)
    expect(r.out).toMatch(/Newton step 1/)
    const m = loadModel(file)
    expect(m.kind).toBe('online-logistic')
    expect(String(m.file.training.split)).toMatch(/^by time at 20\d\d-/)
    expect((m.file.metrics.validation as { auc: number }).auc).toBeGreaterThan(0.85)
    expect(m.file.prior.thresholdLogit).toBeGreaterThan(-8)
    // what the prior learned to fear most is the silence of a user who usually logs in: five
    // silent days of a user who logged in on 90% of days (longest gap 1 day) against one, every
    // feature that does not describe the silence at its mean
    const { weights, intercept } = m.file.prior
    const { mean, std } = m.file.standardization
    const logit = (set: Map<FeatureId, number>): number => weights.reduce((z, w, j) => z + w * ((set.get(j) ?? mean[j]) - mean[j]) / std[j], intercept)
    const silence = (d: number): Map<FeatureId, number> => {
      const surprise = -d * Math.log(1 - 0.9)
      return new Map([[FeatureId.daysInactive, d], [FeatureId.logDaysInactive, Math.log1p(d)], [FeatureId.silenceSurprise, surprise], [FeatureId.logSilenceSurprise, Math.log1p(surprise)],
        [FeatureId.recentSurprise, surprise], [FeatureId.loginRate, Math.log(0.9)], [FeatureId.beyondLongestGap, d - 1], [FeatureId.fullWeek, 0]])
    }
    expect(logit(silence(5)) - logit(silence(1))).toBeGreaterThan(0.5)
  }, 60_000)

  it('refuses, with exit 2 and what to do, to fit a handful of churned days', async () => {
    const tiny = population('habits', 150, 45, 4, 0.1)
    const r = await quiet(['train', '--in', tiny.events, '--derive-labels', '--out', join(tmp.dir, 'tiny.json')])
    expect(r.code).toBe(2)
    expect(r.out).toMatch(/ebb train: the training part holds \d+ churned scored days \(at least 200 are needed.*Give more users or more days of data/)
    expect(existsSync(join(tmp.dir, 'tiny.json'))).toBe(false)
  }, 60_000)

  it('on a history too short for a time split, validates on a fifth of the users instead', async () => {
    const short = population('fades', 2500, 40, 8, 0.4)
    const file = join(tmp.dir, 'short.json')
    const r = await quiet(['train', '--in', short.events, '--labels', short.labels, '--out', file])
    expect(r.code, r.out).toBe(0)
    const m = loadModel(file)
    expect(String(m.file.training.split)).toMatch(/^by user/)
    expect((m.file.metrics.validation as { positives: number }).positives).toBeGreaterThan(50)
  }, 60_000)

  it('warns loudly when churn is much commoner on one side of the split', async () => {
    // archetypes: nobody leaves in the first quarter of the simulated days, many later
    const arch = population('archetypes', 1500, 120, 9)
    const r = await quiet(['train', '--in', arch.events, '--derive-labels', '--out', join(tmp.dir, 'arch.json')])
    expect(r.code, r.out).toBe(0)
    expect(r.out).toMatch(/\[train\] WARNING: churn is [\d.]+% of the training days and [\d.]+% of the validation days/)
    expect((loadModel(join(tmp.dir, 'arch.json')).file.training.warnings as string[]).length).toBe(1)
  }, 60_000)

  it('has no leakage across a time split: rewriting every LOGIN after it leaves the fit unchanged', async () => {
    const topology = trainingTopology(loadTopology(topologyPath('default.yaml'), { loadModel: false }))
    const data = await replayForModel(fades.events, topology, { label: 'test' })
    const split = data.start + 65 * DAY
    const sets = [{ data, labels: derivedLabels(data.snapshots) }]
    for (const i of chooseSplit(sets, split).train.rows) expect(data.snapshots.ts[i] + LABEL_HORIZON_MS).toBeLessThanOrEqual(split)
    const before = trainModel(sets, { split, l2: 1, input: 'x' })

    // The future after the split changes completely: nobody logs in again. A training row whose
    // label window reached past the split would now be labelled churn, and the weights would move.
    const cut = readFileSync(fades.events, 'utf8').split('\n').filter((l) => l !== '' && !(l.includes('"LOGIN"') && (JSON.parse(l) as { ts: number }).ts > split))
    const cutFile = join(tmp.dir, 'cut.jsonl')
    writeFileSync(cutFile, cut.join('\n') + '\n')
    const data2 = await replayForModel(cutFile, topology, { label: 'test' })
    const after = trainModel([{ data: data2, labels: derivedLabels(data2.snapshots) }], { split, l2: 1, input: 'x' })
    expect(after.prior.weights).toEqual(before.prior.weights)
    expect(after.prior.intercept).toBe(before.prior.intercept)
    // …while the validation rows (after the split) did see the change.
    expect(after.metrics.validation).not.toEqual(before.metrics.validation)
  }, 60_000)
})
