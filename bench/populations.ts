import { createHash } from 'node:crypto'
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { once } from 'node:events'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { encodeJsonEvent } from '../src/events/jsonl.js'
import { fileLabels } from '../src/model/dataset.js'
import { type EvalReport, evaluate } from '../src/model/evaluate.js'
import { evalPlots } from '../src/model/plots.js'
import { topologyPath } from '../src/paths.js'
import { makePopulation, type PopulationKind } from '../src/sim/populations.js'

/**
 * `npm run bench -- populations`: the churn model on populations nobody tuned it to, with the
 * default topology and the shipped prior (no `ebb train` on them): each population is generated
 * (by one of the five independent generators, with seeds the prior was not trained on), then
 * `ebb eval`ed with its ground truth. The table in docs/populations.md and the README comes from
 * here; each population's eval.md and pictures are under the work directory.
 */
export interface PopulationSpec {
  name: string
  kind: PopulationKind
  users: number
  days: number
  seed: number
  churnRate?: number
  /** what the population stands for, in the table */
  about: string
}

/** The held-out populations (seeds 201+; the shipped prior is trained on seeds 101–105). */
export const POPULATIONS: readonly PopulationSpec[] = [
  { name: 'habits-90d', kind: 'habits', users: 4000, days: 90, seed: 201, churnRate: 0.15, about: 'daily users who stop without warning' },
  { name: 'habits-365d', kind: 'habits', users: 2500, days: 365, seed: 202, churnRate: 0.1, about: 'the same over a year, 10% churn' },
  { name: 'habits-30d', kind: 'habits', users: 4000, days: 30, seed: 203, churnRate: 0.2, about: 'the same, a 30-day history' },
  { name: 'bgnbd-90d', kind: 'bgnbd', users: 4000, days: 90, seed: 204, churnRate: 0.25, about: 'BG/NBD: Poisson logins, silent dropout after a login' },
  { name: 'bgnbd-365d-3pct', kind: 'bgnbd', users: 4000, days: 365, seed: 205, churnRate: 0.03, about: 'the same over a year, 3% churn' },
  { name: 'fades-90d-40pct', kind: 'fades', users: 4000, days: 90, seed: 206, churnRate: 0.4, about: 'slow faders, 40% churn' },
  { name: 'fades-365d', kind: 'fades', users: 2500, days: 365, seed: 207, churnRate: 0.2, about: 'slow faders over a year' },
  { name: 'cadence-120d', kind: 'cadence', users: 4000, days: 120, seed: 208, churnRate: 0.1, about: 'weekly and weekend users' },
  { name: 'cadence-30d', kind: 'cadence', users: 4000, days: 30, seed: 209, churnRate: 0.15, about: 'the same, a 30-day history' },
  { name: 'archetypes-180d', kind: 'archetypes', users: 4000, days: 180, seed: 210, about: 'the archetype simulator (decliners, bursts, quitters, returners)' },
  { name: 'mixed-120d', kind: 'mixed', users: 6000, days: 120, seed: 211, churnRate: 0.15, about: 'daily, fading, weekly and BG/NBD users in one stream' }
]

/** The quick run (CI): two small populations, to prove the suite and its report. */
export const QUICK: readonly PopulationSpec[] = [
  { name: 'fades-quick', kind: 'fades', users: 600, days: 60, seed: 301, churnRate: 0.4, about: 'slow faders (quick)' },
  { name: 'habits-quick', kind: 'habits', users: 600, days: 45, seed: 302, churnRate: 0.3, about: 'daily users who stop (quick)' }
]

export interface PopulationResult {
  spec: PopulationSpec
  report: EvalReport
}

async function write (path: string, lines: Iterable<string>): Promise<void> {
  const out = createWriteStream(path)
  for (const l of lines) if (!out.write(l + '\n')) await once(out, 'drain')
  out.end()
  await once(out, 'finish')
}

export async function benchPopulations (specs: readonly PopulationSpec[], dir: string, log: (s: string) => void): Promise<PopulationResult[]> {
  const results: PopulationResult[] = []
  for (const spec of specs) {
    const started = performance.now()
    const work = join(dir, spec.name)
    // A finished population is not measured again (an interrupted run resumes where it stopped): its
    // eval.json is reused when the spec it was made from is the same, and so is the engine (the
    // compiled code, the shipped model and topologies): a change to the model measures again.
    const done = join(work, 'spec.json')
    const key = JSON.stringify({ ...spec, engine: engineFingerprint() })
    if (existsSync(done) && readFileSync(done, 'utf8') === key && existsSync(join(work, 'eval.json'))) {
      const report = JSON.parse(readFileSync(join(work, 'eval.json'), 'utf8')) as EvalReport
      // (a report written before byPeriod existed is measured again)
      if (Array.isArray(report.byPeriod)) {
        results.push({ spec, report })
        log(`populations: ${spec.name}: measured before (${done}); reusing it`)
        continue
      }
    }
    const pop = makePopulation(spec.kind, { users: spec.users, days: spec.days, seed: spec.seed, churnRate: spec.churnRate })
    mkdirSync(work, { recursive: true })
    const events = join(work, 'events.jsonl')
    const labels = join(work, 'labels.jsonl')
    let n = 0
    await write(events, (function * () { for (const day of pop.days()) for (const e of day) { n++; yield encodeJsonEvent(e) } })())
    await write(labels, pop.labels().map((l) => JSON.stringify(l)))
    log(`populations: ${spec.name}: ${n} events for ${spec.users} users over ${spec.days} days; evaluating`)
    const report = await evaluate({ input: spec.name, inputPath: events, topologyFile: topologyPath('default.yaml'), modelFile: null, labels: (snap) => fileLabels(labels, snap), warmupDays: 0 })
    writeFileSync(join(work, 'eval.json'), JSON.stringify(report, null, 2) + '\n')
    for (const [name, svg] of Object.entries(evalPlots(report))) writeFileSync(join(work, name), svg)
    writeFileSync(done, key)
    const m = report.sources[0]
    const r = report.sources.find((s) => s.name === 'inactive_7d')
    log(`populations: ${spec.name} in ${((performance.now() - started) / 1000).toFixed(0)} s: model precision ${pct(m.precision)} lead ${m.leadDays.median} vs inactive_7d ${pct(r?.precision ?? Number.NaN)} lead ${r?.leadDays.median ?? '—'}`)
    results.push({ spec, report })
  }
  return results
}

let fingerprint: string | undefined
/** sha256 over the compiled engine (this build's src/) and the topologies directory (the shipped prior, rules and plans). */
function engineFingerprint (): string {
  if (fingerprint !== undefined) return fingerprint
  const hash = createHash('sha256')
  for (const root of [fileURLToPath(new URL('../src/', import.meta.url)), dirname(topologyPath('default.yaml'))]) {
    const files = (readdirSync(root, { recursive: true }) as string[]).filter((f) => !f.endsWith('.map')).sort()
    for (const f of files) {
      const path = join(root, f)
      if (!statSync(path).isFile()) continue
      hash.update(f).update(readFileSync(path))
    }
  }
  fingerprint = hash.digest('hex')
  return fingerprint
}

const pct = (x: number): string => Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : '—'
const days = (x: number): string => Number.isFinite(x) ? x.toFixed(2) : '—'
const yes = (b: boolean | null): string => b === null ? '—' : b ? 'yes' : '**no**'

/** The table of README and docs/populations.md. */
export function populationsTable (results: readonly PopulationResult[]): string {
  const head = '| population | users, days | churned | model_risk precision / recall | inactive_7d precision / recall | median lead: model / rule / yardstick (days) | AUC model / daysInactive (label file; the 30-day question the model learns) | precision ±2 pts | not later (median; churners caught later) | ≥ 3 days earlier (where the yardstick is) |\n|---|---|---:|---|---|---|---|---|---|---|'
  const rows = results.map(({ spec, report: r }) => {
    const m = r.sources[0]
    const rule = r.sources.find((s) => s.name === 'inactive_7d') ?? m
    const churned = m.churnEvents
    // (a report measured before the question was reported has none)
    const q = r.ranking.question ?? null
    return `| ${spec.name}: ${spec.about} | ${spec.users}, ${spec.days} | ${churned} | ${pct(m.precision)} / ${pct(m.recall)} | ${pct(rule.precision)} / ${pct(rule.recall)} | ${days(m.leadDays.median)} / ${days(rule.leadDays.median)} / ${days(r.yardstick?.leadDays.median ?? Number.NaN)} | ${r.ranking.auc.toFixed(3)} / ${r.ranking.aucDaysInactive.toFixed(3)}${q === null || q.snapshots === 0 ? '' : ` (30-day question: ${q.auc.toFixed(3)} / ${q.aucDaysInactive.toFixed(3)})`} | ${yes(r.verdict.precisionWithin2Points)} | ${yes(r.verdict.notLaterThanRule)}${r.laterThanRule === undefined || r.laterThanRule.both === 0 ? '' : ` (${pct(r.laterThanRule.share)})`} | ${yes(r.verdict.threeDaysEarlier)} |`
  })
  return [head, ...rows].join('\n') + '\n'
}

/**
 * The learning curve of each population (docs/populations.md): per 30-day period of its
 * history, the median lead of the model and of the rule over the churn points of that period.
 */
export function populationsCurve (results: readonly PopulationResult[]): string {
  const head = '| population | median lead, model / inactive_7d (days), by 30-day period: days 0–30 · 30–60 · … (churn points) |\n|---|---|'
  const rows = results.map(({ spec, report: r }) => {
    const cells = r.byPeriod.filter((p) => p.churnEvents > 0).map((p) => `${p.fromDay}–${Math.round(p.toDay)}: ${days(p.modelLead)} / ${days(p.ruleLead)} (${p.churnEvents})`)
    return `| ${spec.name} | ${cells.length === 0 ? 'no churn point' : cells.join(' · ')} |`
  })
  return [head, ...rows].join('\n') + '\n'
}
