import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { intOption } from '../src/cli/args.js'
import { commandHelp, COMMANDS, parseCommandWithPositionals } from '../src/cli/commands.js'
import { EbbError, Errors } from '../src/errors.js'
import { projectRoot } from '../src/paths.js'
import { benchCore, coreRunName } from './core.js'
import { benchE2e } from './e2e.js'
import { benchPeer } from './peer.js'
import { benchPopulations, POPULATIONS, populationsCurve, populationsTable, QUICK } from './populations.js'
import { benchRestore } from './restore.js'
import { benchScaling } from './scaling.js'
import { benchState } from './state.js'
import { benchTimers } from './timers.js'

const SUITES = ['core', 'state', 'restore', 'timers', 'e2e', 'peer', 'scaling', 'populations'] as const

/**
 * `npm run bench -- [suite…] [--quick]`. Each suite writes bench/results/<suite>.json and a
 * Markdown table. Benchmarks report numbers; they never fail because the machine is slow.
 */
export async function runBench (argv: string[]): Promise<number> {
  const { values: o, positionals: suites } = parseCommandWithPositionals(COMMANDS.bench, argv)
  if (o.help === true) { process.stdout.write(commandHelp(COMMANDS.bench)); return 0 }
  for (const s of suites) if (!(SUITES as readonly string[]).includes(s)) throw new EbbError(Errors.USAGE, `ebb bench: unknown suite "${s}" (suites: ${SUITES.join(', ')})`)
  const quick = o.quick === true
  const log = (s: string): void => { process.stderr.write(`[bench] ${s}\n`) }
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`
  const dir = o.results ?? join(projectRoot(), 'bench', 'results')
  const write = (suite: string, name: string, command: string, results: Record<string, number | string>): void => {
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, `${name}.json`), JSON.stringify({ suite, quick, machine, date: new Date().toISOString(), command, results }, null, 2) + '\n')
    process.stdout.write(`\n### ${suite} (${machine}${quick ? ', quick' : ''})\n\n| metric | value |\n|---|---|\n`)
    for (const [k, v] of Object.entries(results)) process.stdout.write(`| ${k} | ${typeof v === 'number' ? v.toLocaleString('en-US') : v} |\n`)
  }
  // `populations` measures the model, not the machine: run only when named.
  for (const suite of suites.length > 0 ? suites : SUITES.filter((x) => x !== 'populations')) {
    if (suite === 'populations') {
      const work = o.work ?? join(projectRoot(), '.cache', 'populations')
      const results = await benchPopulations(quick ? QUICK : POPULATIONS, work, log)
      const table = populationsTable(results)
      mkdirSync(dir, { recursive: true })
      const name = quick ? 'populations.quick' : 'populations'
      writeFileSync(join(dir, `${name}.json`), JSON.stringify({ suite: 'populations', quick, machine, date: new Date().toISOString(), command: `npm run bench -- populations${quick ? ' --quick' : ''}`, results: results.map(({ spec, report }) => ({ spec, verdict: report.verdict, sources: report.sources, yardstick: report.yardstick, laterThanRule: report.laterThanRule, byPeriod: report.byPeriod, ranking: { auc: report.ranking.auc, aucDaysInactive: report.ranking.aucDaysInactive, aucEarly: report.ranking.aucEarly, aucLearned: report.ranking.aucLearned, aucDaysInactiveLearned: report.ranking.aucDaysInactiveLearned, question: report.ranking.question === null ? null : { snapshots: report.ranking.question.snapshots, auc: report.ranking.question.auc, aucDaysInactive: report.ranking.question.aucDaysInactive } }, learned: report.model.learned })) }, null, 2) + '\n')
      writeFileSync(join(dir, `${name}.md`), `${table}\n${populationsCurve(results)}`)
      process.stdout.write(`\n### populations (${machine}${quick ? ', quick' : ''}; eval reports and plots in ${work})\n\n${table}\n${populationsCurve(results)}`)
    }
    if (suite === 'state') {
      const users = intOption('bench', 'users', o.users, quick ? 5_000 : 1_000_000, 1, 100_000_000)
      const events = intOption('bench', 'events', o.events, quick ? 50_000 : 2_000_000, 1, 1_000_000_000)
      write('state', quick ? 'state.quick' : 'state', `npm run bench -- state${quick ? ' --quick' : ''}`, await benchState({ users, events }, log))
    }
    if (suite === 'restore') {
      const users = intOption('bench', 'users', o.users, quick ? 5_000 : 1_000_000, 1, 100_000_000)
      write('restore', quick ? 'restore.quick' : 'restore', `npm run bench -- restore${quick ? ' --quick' : ''}`, await benchRestore({ users }, log))
    }
    if (suite === 'timers') {
      const users = intOption('bench', 'users', o.users, quick ? 5_000 : 1_000_000, 1, 100_000_000)
      write('timers', quick ? 'timers.quick' : 'timers', `npm run bench -- timers${quick ? ' --quick' : ''}`, await benchTimers({ users }, log))
    }
    if (suite === 'e2e') {
      const events = intOption('bench', 'events', o.events, quick ? 20_000 : 2_000_000, 1000, 1_000_000_000)
      const partitions = intOption('bench', 'partitions', o.partitions, 2, 1, 64)
      const seconds = intOption('bench', 'seconds', o.seconds, quick ? 2 : 20, 1, 3600)
      const commitInterval = o['commit-interval'] ?? '100ms'
      const guarantee = o.guarantee ?? 'exactly_once'
      if (guarantee !== 'exactly_once' && guarantee !== 'at_least_once') throw new EbbError(Errors.USAGE, `ebb bench: --guarantee exactly_once or at_least_once, not "${guarantee}"`)
      const pipelined = o.pipelined === true
      const variant = `${guarantee === 'at_least_once' ? '-at-least-once' : ''}${pipelined ? '-pipelined' : ''}`
      const name = `e2e${variant}${quick ? '.quick' : ''}`
      // --rate-base N: the latency levels are shares of N events/s, not of the measured maximum (two builds at the same loads)
      const rateBase = o['rate-base'] === undefined ? undefined : intOption('bench', 'rate-base', o['rate-base'], 0, 1000, 10_000_000)
      const flags = `${quick ? ' --quick' : ''}${rateBase === undefined ? '' : ` --rate-base ${rateBase}`}${o['commit-interval'] === undefined ? '' : ` --commit-interval ${commitInterval}`}${guarantee === 'exactly_once' ? '' : ` --guarantee ${guarantee}`}${pipelined ? ' --pipelined' : ''}`
      write('e2e', name, `npm run bench -- e2e${flags}`, await benchE2e({ events, partitions, seconds, levels: [0.25, 0.5, 0.9], commitInterval, rateBase, guarantee, pipelined }, log))
    }
    if (suite === 'peer') {
      const events = intOption('bench', 'events', o.events, quick ? 5_000 : 2_000_000, 1000, 1_000_000_000)
      write('peer', quick ? 'peer.quick' : 'peer', `npm run bench -- peer${quick ? ' --quick' : ''}`, await benchPeer({ events, partitions: 2, seconds: intOption('bench', 'seconds', o.seconds, quick ? 2 : 20, 1, 3600) }, log))
    }
    if (suite === 'scaling') {
      const users = quick ? [2_000, 10_000] : [10_000, 100_000, 1_000_000]
      const e2eEvents = intOption('bench', 'events', o.events, quick ? 5_000 : 1_000_000, 1000, 1_000_000_000)
      // 1M and 10M users at 2 events each, a cache of 1M users: the same events per user with the
      // whole population cached and with 90% of it in RocksDB only.
      const streamed = quick ? [{ users: 5_000, events: 10_000, cache: 1_000, chunk: 2_000 }] : [{ users: 1_000_000, events: 2_000_000, cache: 1_000_000, chunk: 1_000_000 }, { users: 10_000_000, events: 20_000_000, cache: 1_000_000, chunk: 1_000_000 }]
      write('scaling', quick ? 'scaling.quick' : 'scaling', `npm run bench -- scaling${quick ? ' --quick' : ''}`, await benchScaling({ users, streamed, instances: [1, 2], e2eEvents, partitions: 2 }, log))
    }
    if (suite === 'core') {
      const users = intOption('bench', 'users', o.users, quick ? 20_000 : 1_000_000, 1, 100_000_000)
      const events = intOption('bench', 'events', o.events, quick ? 200_000 : 10_000_000, 1, 1_000_000_000)
      const days = intOption('bench', 'days', o.days, 2, 1, 90)
      const cache = o.cache === undefined ? undefined : intOption('bench', 'cache', o.cache, users * 2, 1, 100_000_000)
      const chunk = o.chunk === undefined ? undefined : intOption('bench', 'chunk', o.chunk, events, 1000, 1_000_000_000)
      const r = await benchCore({ users, events, days, latencyEvents: quick ? 50_000 : 1_000_000, cache, chunk }, log)
      // The default full run is core.json; other sizes get their own file, so runs do not overwrite each other.
      const custom = o.users !== undefined || o.events !== undefined || o.days !== undefined || cache !== undefined || chunk !== undefined
      const name = quick ? 'core.quick' : !custom ? 'core' : coreRunName(users, events, days, cache)
      const command = `npm run bench -- core${quick ? ' --quick' : ''}${name.startsWith('core-') ? ` --users ${users} --events ${events} --days ${days}${cache === undefined ? '' : ` --cache ${cache}`}${chunk === undefined ? '' : ` --chunk ${chunk}`}` : ''}`
      write('core', name, command, r)
    }
  }
  return 0
}

// Run directly: node dist/bench/run.js core
if (process.argv[1] !== undefined && /bench[/\\]run\.js$/.test(process.argv[1])) {
  runBench(process.argv.slice(2)).then((c) => { process.exitCode = c }, (err: unknown) => {
    process.stderr.write(`ebb bench: ${(err as Error).message}\n`)
    process.exitCode = err instanceof EbbError ? err.exitCode : 1
  })
}
