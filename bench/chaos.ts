import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { createWriteStream, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { intOption, parseOptions } from '../src/cli/args.js'
import { EbbError, Errors } from '../src/errors.js'
import { parseDuration } from '../src/config/yaml.js'
import { encodeAvroEvent } from '../src/events/avro.js'
import { encodeJsonEvent } from '../src/events/jsonl.js'
import type { UserEvent } from '../src/events/user-event.js'
import type { AdminPort, KafkaClient } from '../src/kafka/client.js'
import { PlatformaticClient } from '../src/kafka/platformatic-client.js'
import { decodeOutput } from '../src/kafka/wire.js'
import { projectRoot } from '../src/paths.js'
import { Simulator } from '../src/sim/simulator.js'
import { EBB_NODE_FLAGS, KafkaCluster } from './kafka-env.js'

/**
 * The chaos suite (`npm run chaos`): a 3-instance group on a broker of its own, instances killed
 * with SIGKILL (some restarted on an empty state directory, so they restore from the changelog)
 * and the broker itself killed (-9) and brought back on its data, while the group works through
 * the input. At the end the alerts, tasks and outcomes read back with kcat (read_committed) are
 * compared with `ebb replay --partitions N` of the same events: every record must be there
 * once, and equal.
 *
 * The harness is also the supervisor: an instance that exits by itself is started again after a
 * second, as systemd or Kubernetes would, and counted (`restarts`): since `ebb run` rides out a
 * broker outage in the process, a run passes only with none. The input is
 * produced in chunks, one fault while each chunk is being processed; broker kills fall at a third
 * and two thirds of the instance kills.
 */
export interface ChaosOptions {
  events: number
  partitions: number
  instances: number
  instanceKills: number
  brokerKills: number
  /**
   * instances frozen (SIGSTOP) past the group's session timeout, then let go on (SIGCONT): a
   * zombie whose partitions moved while its transaction was open, the fault KIP-447 fences
   */
  instanceFreezes?: number
  /** how long a frozen instance stays stopped (default 15 s, past the 10 s session timeout) */
  freezeMs?: number
  /** share of instance kills restarted on an empty state directory */
  wipeShare: number
  /** how long the broker stays down */
  brokerDownMs: number
  seed: number
  /** the suite's own broker (scripts/kafka.sh with KAFKA_PORT): other tests keep theirs */
  port: number
  /**
   * 1 (default): one broker, and a broker kill is an outage the instances ride out. More: a
   * cluster of that many nodes (on port, port + 10, …), every topic replicated on each
   * (min.insync.replicas = nodes − 1), and a broker kill takes one node down: leaders and
   * coordinators move to the others while the instances work on.
   */
  brokers?: number
  work?: string
  /** exactly_once (default): every output exactly once; at_least_once: none missing, repeats allowed (and counted) */
  guarantee?: 'exactly_once' | 'at_least_once'
  /** the instances' commitInterval (200ms by default): a longer one leaves more work to redo after a kill */
  commitInterval?: string
}

export interface ChaosResult {
  events: number
  partitions: number
  brokers: number
  instances: number
  instanceKills: number
  instanceKillsOnEmptyState: number
  brokerKills: number
  instanceFreezes: number
  restarts: number
  /** the fewest input records produced and not yet committed when a fault struck (> 0: every fault hit work in flight) */
  inFlightAtFaultMin: number
  /** faults that struck while records of the input were not committed yet */
  faultsWithWorkInFlight: number
  exitCodes: Record<string, number>
  seconds: number
  expected: { alerts: number, tasks: number, outcomes: number }
  missing: { alerts: number, tasks: number, outcomes: number }
  duplicated: { alerts: number, tasks: number, outcomes: number }
  different: { alerts: number, tasks: number, outcomes: number }
  unexpected: { alerts: number, tasks: number, outcomes: number }
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** A small deterministic generator for the fault schedule. */
function rng (seed: number): () => number {
  let s = seed >>> 0
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296 }
}

/** Every committed value of a topic, read by kcat (librdkafka, read_committed). */
function kcat (bootstrap: string, topic: string): Buffer[] {
  const r = spawnSync('kcat', ['-C', '-b', bootstrap, '-t', topic, '-e', '-q', '-X', 'isolation.level=read_committed', '-f', '%R%s'], { timeout: 300_000, maxBuffer: 1 << 30 })
  if (r.status !== 0) throw new Error(`kcat failed: ${r.stderr.toString()}`)
  const out: Buffer[] = []
  for (let i = 0; i < r.stdout.length;) {
    const n = r.stdout.readUInt32BE(i)
    out.push(r.stdout.subarray(i + 4, i + 4 + n))
    i += 4 + n
  }
  return out
}

/** JSON with keys sorted: records compared by content whatever the field order of their source. */
function canonical (x: unknown): string {
  if (x === null || typeof x !== 'object') return JSON.stringify(x)
  if (Array.isArray(x)) return `[${x.map(canonical).join(',')}]`
  return `{${Object.keys(x).sort().map((k) => `${JSON.stringify(k)}:${canonical((x as Record<string, unknown>)[k])}`).join(',')}}`
}

/** Missing, duplicated, different and unexpected records of `got` against `want`, by key. */
function compare (want: unknown[], got: unknown[], key: (x: Record<string, unknown>) => string): { missing: number, duplicated: number, different: number, unexpected: number, examples: string[] } {
  const expected = new Map(want.map((w) => [key(w as Record<string, unknown>), canonical(w)]))
  const seen = new Map<string, number>()
  let different = 0
  let unexpected = 0
  const examples: string[] = []
  for (const g of got) {
    const k = key(g as Record<string, unknown>)
    seen.set(k, (seen.get(k) ?? 0) + 1)
    const w = expected.get(k)
    if (w === undefined) { unexpected++; if (examples.length < 3) examples.push(`unexpected ${k}`) } else if (w !== canonical(g)) { different++; if (examples.length < 3) examples.push(`different ${k}: ${canonical(g)} vs ${w}`) }
  }
  let missing = 0
  for (const k of expected.keys()) if (!seen.has(k)) { missing++; if (examples.length < 3) examples.push(`missing ${k}`) }
  let duplicated = 0
  for (const n of seen.values()) if (n > 1) duplicated += n - 1
  return { missing, duplicated, different, unexpected, examples }
}

/** The sum of a group's committed offsets on `topic`, with an admin client of its own; null while the broker is down or loading. */
async function committedTotal (client: KafkaClient, group: string, topic: string): Promise<number | null> {
  let admin: AdminPort | undefined
  try {
    admin = await client.admin()
    let total = 0
    for (const offset of (await admin.committedOffsets(group, topic)).values()) total += offset === null ? 0 : Number(offset)
    return total
  } catch {
    return null // the broker is down or loading: ask again later
  } finally {
    await admin?.close().catch(() => {})
  }
}

/**
 * Waits (up to `ms`) until no transaction is open on the topics: every partition's read_committed
 * end equals its high watermark. A frozen instance that gave up its transaction at its timeout
 * sends no abort (commit.ts: not beside a step in flight), and one stopped right after leaves the
 * transaction to the broker's timeout abort, 10–20 s later; until then it hides, from every
 * read_committed reader, the records the others committed after it. Those are not lost: read
 * before that abort, they looked missing (a CI run of 12-07). Returns the seconds it waited.
 */
async function untilNoOpenTransaction (client: KafkaClient, topics: string[], ms: number): Promise<number> {
  const t0 = Date.now()
  const admin = await client.admin()
  try {
    for (;;) {
      let open = false
      for (const t of topics) {
        const [stable, high] = [await admin.endOffsets(t), await admin.highWatermarks(t)]
        for (const [p, h] of high) if ((stable.get(p) ?? h) < h) open = true
      }
      if (!open || Date.now() - t0 > ms) return (Date.now() - t0) / 1000
      await sleep(500)
    }
  } finally {
    await admin.close().catch(() => {})
  }
}

export async function runChaos (o: ChaosOptions, log: (s: string) => void): Promise<ChaosResult & { examples: string[] }> {
  const t0 = Date.now()
  const work = o.work ?? join(tmpdir(), `ebb-chaos-${process.pid}-${Date.now()}`)
  mkdirSync(work, { recursive: true })
  const nodes = o.brokers ?? 1
  // (one node is the single broker scripts/kafka.sh starts by default)
  const cluster = new KafkaCluster(o.port, nodes, nodes === 1
    ? ''
    : [
        `offsets.topic.replication.factor=${nodes}`,
        `transaction.state.log.replication.factor=${nodes}`,
        `transaction.state.log.min.isr=${nodes - 1}`,
        `min.insync.replicas=${nodes - 1}`
      ].join('\n'))
  const bootstrap = cluster.bootstrap
  log(nodes > 1 ? `chaos: a cluster of ${nodes} brokers of its own on ${bootstrap}` : `chaos: a broker of its own on ${bootstrap}`)
  cluster.start()
  const client = new PlatformaticClient({ brokers: bootstrap.split(','), ssl: false, sasl: null }, 'ebb-chaos')
  const procs: Array<{ child: ChildProcess, exited: Promise<number | null>, startedAt: number } | undefined> = []
  let supervising = true
  try {
    // ---- the input, and what a replay of it gives --------------------------------------------
    const users = Math.max(200, Math.round(o.events / 60 / 3))
    const sim = new Simulator({ users, days: 60, seed: o.seed, noise: false })
    const events: UserEvent[] = []
    for (const day of sim.days()) { for (const e of day) events.push(e); if (events.length >= o.events) break }
    events.length = Math.min(events.length, o.events)
    const app = `chaos-${o.seed}-${Date.now().toString(36)}`
    const input = `${app}.events`
    const admin = await client.admin()
    try {
      // waits until every partition has a leader
      await admin.createTopics([{ topic: input, partitions: o.partitions, replicationFactor: nodes }])
    } finally {
      await admin.close()
    }
    const file = join(work, 'events.jsonl')
    writeFileSync(file, events.map(encodeJsonEvent).join('\n') + '\n')
    const ref = join(work, 'replay')
    log(`chaos: ${events.length.toLocaleString()} events of ${users.toLocaleString()} users in ${input} (${o.partitions} partitions); replaying them for reference`)
    const r = spawnSync(process.execPath, [join(projectRoot(), 'bin', 'ebb.js'), 'replay', '--in', file, '--out', ref, '--partitions', String(o.partitions)], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] })
    if (r.status !== 0) throw new Error(`ebb replay failed: ${r.stderr}`)
    const jsonl = (name: string): unknown[] => readFileSync(join(ref, name), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as unknown)

    // ---- the group, supervised ------------------------------------------------------------
    const exitCodes: Record<string, number> = {}
    let restarts = 0
    const stateDir = (i: number): string => join(work, 'state', String(i))
    const start = (i: number): void => {
      const cfg = join(work, `instance-${i}.yaml`)
      writeFileSync(cfg, `applicationId: ${app}
instanceId: ${app}-${i}
brokers: [${bootstrap}]
topics: { input: ${input}, alerts: ${app}.alerts, tasks: ${app}.tasks, outcomes: ${app}.outcomes, deadLetters: ${app}.dlq, partitions: ${o.partitions}, replicationFactor: ${nodes} }
stateDir: ${stateDir(i)}
commitInterval: ${o.commitInterval ?? '200ms'}
processingGuarantee: ${o.guarantee ?? 'exactly_once'}
# instance 0 goes on processing while its commits are in flight: both commit modes in one group
pipelinedCommits: ${i === 0}
# the comparison is with a replay, which has no wall clock: no partition follows another's time
idlePartitionTimeout: 1h
retryTimeout: 5m
http: { port: 0 }
`)
      const child = spawn(process.execPath, [...EBB_NODE_FLAGS, join(projectRoot(), 'bin', 'ebb.js'), 'run', '--config', cfg], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, EBB_LOG_LEVEL: 'warn' } })
      child.stderr?.pipe(createWriteStream(join(work, `instance-${i}.log`), { flags: 'a' }))
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code, signal) => {
        const k = code === null ? String(signal) : String(code)
        exitCodes[k] = (exitCodes[k] ?? 0) + 1
        resolve(code)
        // The supervisor: whatever ended it, the instance comes back (unless the run is over, or
        // the harness is restarting it itself after a kill).
        if (supervising && procs[i]?.child === child && !killing.has(i)) {
          restarts++
          setTimeout(() => { if (supervising && procs[i]?.child === child) start(i) }, 1000)
        }
      }))
      procs[i] = { child, exited, startedAt: Date.now() }
    }
    const killing = new Set<number>()
    for (let i = 0; i < o.instances; i++) start(i)

    // ---- the input in chunks, a fault while each is in flight ---------------------------------
    // The first 60% of each chunk is produced, then (at once, while the group works on it)
    // one fault is injected, then the rest of the chunk, and the group must commit it all before
    // the next chunk: every fault lands mid-stream, with work in flight.
    const random = rng(o.seed)
    const total = events.length
    const faults: Array<'instance' | 'broker' | 'freeze'> = Array.from({ length: o.instanceKills }, () => 'instance' as const)
    for (let k = 0; k < o.brokerKills; k++) faults.splice(Math.round(o.instanceKills * (k + 1) / (o.brokerKills + 1)) + k, 0, 'broker')
    // (freezes after the kills: a schedule of kills and broker kills stays what a seed gave before)
    for (let k = 0; k < (o.instanceFreezes ?? 0); k++) faults.push('freeze')
    let freezes = 0
    const chunks = faults.length + 1
    let instanceKills = 0
    let wiped = 0
    let brokerKills = 0
    let produced = 0
    let done = 0
    let lastLog = 0
    /** records produced but not yet committed when each fault struck */
    const inFlight: number[] = []
    for (let j = 0; j < chunks; j++) {
      const chunk = events.slice(Math.round(total * j / chunks), Math.round(total * (j + 1) / chunks))
      const cut = Math.round(chunk.length * 0.6)
      const send = async (part: UserEvent[]): Promise<void> => {
        // A producer per part: one that saw the broker die would have to be recovered first.
        const producer = await client.producer({})
        try {
          for (let i = 0; i < part.length; i += 5000) await producer.send(input, part.slice(i, i + 5000).map((e) => ({ key: e.userId, value: encodeAvroEvent(e) })))
        } finally {
          await producer.close()
        }
        produced += part.length
      }
      await send(chunk.slice(0, cut))
      const fault = faults[j]
      if (fault !== undefined) {
        // At once: the last records were appended a moment ago, and the group commits every
        // 200 ms. What was not committed yet is read just before the fault.
        const c = await committedTotal(client, app, input)
        inFlight.push(produced - (c ?? done))
        if (fault === 'broker') {
          // (no draw for one broker: the single-broker fault schedule stays what a seed gave before)
          const node = nodes > 1 ? Math.floor(random() * nodes) : 0
          log(`chaos: killing ${nodes > 1 ? `broker ${node + 1} of ${nodes}` : 'the broker'} (-9); back in ${o.brokerDownMs / 1000} s`)
          cluster.kill(node)
          await sleep(o.brokerDownMs)
          cluster.resume(node)
          brokerKills++
        } else if (fault === 'freeze') {
          const i = Math.floor(random() * o.instances)
          const p = procs[i]
          if (p !== undefined) {
            log(`chaos: freezing instance ${i} (SIGSTOP) for ${(o.freezeMs ?? 15_000) / 1000} s`)
            p.child.kill('SIGSTOP')
            await sleep(o.freezeMs ?? 15_000)
            p.child.kill('SIGCONT')
          }
          freezes++
        } else {
          const i = Math.floor(random() * o.instances)
          const p = procs[i]
          const wipe = random() < o.wipeShare
          if (p !== undefined) {
            killing.add(i)
            p.child.kill('SIGKILL')
            await p.exited
            if (wipe) { rmSync(stateDir(i), { recursive: true, force: true }); wiped++ }
            killing.delete(i)
            start(i)
          }
          instanceKills++
        }
      }
      await send(chunk.slice(cut))
      let lastProgress = Date.now()
      while (done < produced) {
        const c = await committedTotal(client, app, input)
        if (c !== null && c > done) { done = c; lastProgress = Date.now() }
        if (Date.now() - lastLog > 5000) { lastLog = Date.now(); log(`chaos: ${done.toLocaleString()} / ${total.toLocaleString()} committed (${(100 * done / total).toFixed(0)}%), ${instanceKills}/${o.instanceKills} instance kills (${wiped} on empty state), ${brokerKills}/${o.brokerKills} broker kills, ${restarts} restarts, ${((Date.now() - t0) / 1000).toFixed(0)} s`) }
        if (Date.now() - lastProgress > 300_000) throw new Error(`no progress for 5 minutes at ${done} of ${produced} committed; logs in ${work}`)
        // Instances that exit by themselves again and again crash at start: say why at once.
        if (restarts > 10 * o.instances + 3 * o.brokerKills * o.instances) throw new Error(`instances exited ${restarts} times by themselves; the last lines of instance 0's log:\n${readFileSync(join(work, 'instance-0.log'), 'utf8').split('\n').slice(-6).join('\n')}`)
        if (done < produced) await sleep(250)
      }
    }
    // Settled: everything committed; the instances stop as an operator would stop them.
    supervising = false
    // An instance the supervisor restarted a moment ago is let finish starting first: a signal
    // that comes while Node itself boots (before any JavaScript runs) ends the process by it,
    // which is not what an operator's stop of a running instance tests.
    const youngest = Math.max(...procs.map((p) => p?.startedAt ?? 0))
    if (Date.now() - youngest < 3000) await sleep(3000 - (Date.now() - youngest))
    for (const p of procs) p?.child.kill('SIGTERM')
    await Promise.all(procs.map(async (p) => await p?.exited))
    const waited = await untilNoOpenTransaction(client, [`${app}.alerts`, `${app}.tasks`, `${app}.outcomes`], 60_000)
    log(`chaos: all ${total.toLocaleString()} events committed after ${((Date.now() - t0) / 1000).toFixed(0)} s${waited >= 1 ? ` (then ${waited.toFixed(0)} s until no transaction was open on the outputs)` : ''}; reading the outputs with kcat`)

    // ---- what the consumers read ------------------------------------------------------------
    const alerts = compare(jsonl('alerts.jsonl'), kcat(bootstrap, `${app}.alerts`).map((v) => decodeOutput('alert', v)), (x) => String(x.alertId))
    const tasks = compare(jsonl('tasks.jsonl'), kcat(bootstrap, `${app}.tasks`).map((v) => decodeOutput('task', v)), (x) => String(x.taskId))
    const outcomes = compare(jsonl('outcomes.jsonl'), kcat(bootstrap, `${app}.outcomes`).map((v) => decodeOutput('outcome', v)), (x) => `${String(x.taskId)}@${String(x.recalledAt)}`)
    const pick = (k: 'missing' | 'duplicated' | 'different' | 'unexpected'): { alerts: number, tasks: number, outcomes: number } => ({ alerts: alerts[k], tasks: tasks[k], outcomes: outcomes[k] })
    const result = {
      events: total,
      partitions: o.partitions,
      brokers: nodes,
      instances: o.instances,
      instanceKills,
      instanceKillsOnEmptyState: wiped,
      brokerKills,
      instanceFreezes: freezes,
      restarts,
      inFlightAtFaultMin: inFlight.length === 0 ? 0 : Math.min(...inFlight),
      faultsWithWorkInFlight: inFlight.filter((n) => n > 0).length,
      exitCodes,
      seconds: Math.round((Date.now() - t0) / 1000),
      expected: { alerts: jsonl('alerts.jsonl').length, tasks: jsonl('tasks.jsonl').length, outcomes: jsonl('outcomes.jsonl').length },
      missing: pick('missing'),
      duplicated: pick('duplicated'),
      different: pick('different'),
      unexpected: pick('unexpected'),
      examples: [...alerts.examples, ...tasks.examples, ...outcomes.examples]
    }
    if (o.work === undefined && result.examples.length === 0) rmSync(work, { recursive: true, force: true })
    return result
  } finally {
    supervising = false
    for (const p of procs) if (p !== undefined && p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL')
    cluster.stop()
  }
}

const CHAOS_HELP = `npm run chaos -- [--quick] [--events N] [--kills N] [--broker-kills N] [--freezes N] [--partitions N] [--brokers N] [--guarantee at_least_once] [--commit-interval D]
  A 3-instance group on a broker of its own (port 29192), SIGKILLs of instances (half restarted
  on an empty state directory) and of the broker, instances frozen (SIGSTOP for 15 s, past the
  session timeout, then SIGCONT: zombies), then the outputs read back by kcat compared
  with a replay: 0 missing, 0 duplicated, 0 different, no instance exiting by itself, or exit 1. Results: bench/results/chaos.json.
  --guarantee at_least_once: the group runs at-least-once; repeated outputs are allowed (and
  counted), a missing or different one still fails. Results: bench/results/chaos-at-least-once.json.
  --brokers 3: a cluster of 3 brokers (ports 29192, 29202, 29212), every topic replicated on each;
  a broker kill takes one node down, and leaders and coordinators move. Results: bench/results/chaos-3-brokers.json.
  --commit-interval D: the instances' commitInterval (200ms by default; 5s is what the README
  recommends for at-least-once's lowest latency). Results: …-commit-D.json.
  Defaults: 1,000,000 events, 6 partitions, 20 instance kills, 2 broker kills, 2 freezes (--quick:
  60,000 events, 3 partitions, 4 instance kills, 1 broker kill, 1 freeze).`

async function main (argv: string[]): Promise<number> {
  const o = parseOptions('chaos', argv, { quick: { type: 'boolean' }, events: { type: 'string' }, kills: { type: 'string' }, 'broker-kills': { type: 'string' }, freezes: { type: 'string' }, partitions: { type: 'string' }, brokers: { type: 'string' }, guarantee: { type: 'string' }, 'commit-interval': { type: 'string' }, help: { type: 'boolean' } })
  if (o.help === true) { process.stdout.write(CHAOS_HELP + '\n'); return 0 }
  const quick = o.quick === true
  const opts: ChaosOptions = {
    events: intOption('chaos', 'events', o.events, quick ? 60_000 : 1_000_000, 1000, 100_000_000),
    partitions: intOption('chaos', 'partitions', o.partitions, quick ? 3 : 6, 1, 64),
    instances: 3,
    instanceKills: intOption('chaos', 'kills', o.kills, quick ? 4 : 20, 0, 1000),
    brokerKills: intOption('chaos', 'broker-kills', o['broker-kills'], quick ? 1 : 2, 0, 100),
    instanceFreezes: intOption('chaos', 'freezes', o.freezes, quick ? 1 : 2, 0, 100),
    wipeShare: 0.5,
    brokerDownMs: 20_000,
    seed: 42,
    port: 29192,
    brokers: intOption('chaos', 'brokers', o.brokers, 1, 1, 5),
    guarantee: o.guarantee === 'at_least_once' ? 'at_least_once' : 'exactly_once',
    commitInterval: o['commit-interval']
  }
  if (o['commit-interval'] !== undefined && !((parseDuration(o['commit-interval']) ?? 0) > 0)) throw new EbbError(Errors.USAGE, `chaos: --commit-interval is a duration above zero such as 200ms or 5s, not "${o['commit-interval']}"`)
  if (o.guarantee !== undefined && o.guarantee !== 'at_least_once' && o.guarantee !== 'exactly_once') throw new EbbError(Errors.USAGE, `chaos: --guarantee exactly_once or at_least_once, not "${o.guarantee}"`)
  const result = await runChaos(opts, (s) => { process.stderr.write(s + '\n') })
  // At-least-once may repeat an output (the same id and content) after a crash; it may not lose or change one.
  const checked = opts.guarantee === 'at_least_once' ? (['missing', 'different', 'unexpected'] as const) : (['missing', 'duplicated', 'different', 'unexpected'] as const)
  const ok = checked.every((k) => Object.values(result[k]).every((n) => n === 0)) && result.restarts === 0
  const machine = `${(await import('node:os')).cpus().length} × ${(await import('node:os')).cpus()[0]?.model.trim() ?? '?'}, Node ${process.version}`
  const file = join(projectRoot(), 'bench', 'results', `chaos${opts.guarantee === 'at_least_once' ? '-at-least-once' : ''}${(opts.brokers ?? 1) > 1 ? `-${opts.brokers ?? 1}-brokers` : ''}${opts.commitInterval === undefined ? '' : `-commit-${opts.commitInterval}`}${quick ? '.quick' : ''}.json`)
  writeFileSync(file, JSON.stringify({ suite: 'chaos', quick, machine, date: new Date().toISOString(), command: `npm run chaos${argv.length > 0 ? ' -- ' + argv.join(' ') : ''}`, ok, results: result }, null, 2) + '\n')
  process.stdout.write(`chaos: ${ok ? 'PASS' : 'FAIL'}: ${result.events.toLocaleString()} events, ${result.brokers > 1 ? `${result.brokers} brokers, ` : ''}${result.instanceKills} instance kills (${result.instanceKillsOnEmptyState} on empty state), ${result.brokerKills} broker kills, ${result.instanceFreezes} freezes (${result.faultsWithWorkInFlight} of ${result.instanceKills + result.brokerKills + result.instanceFreezes} faults with uncommitted input, at least ${result.inFlightAtFaultMin} records), ${result.restarts} instances exited by themselves (restarted by the supervisor), ${result.seconds} s
  expected   alerts ${result.expected.alerts}, tasks ${result.expected.tasks}, outcomes ${result.expected.outcomes}
  missing    ${JSON.stringify(result.missing)}
  duplicated ${JSON.stringify(result.duplicated)}
  different  ${JSON.stringify(result.different)}
  unexpected ${JSON.stringify(result.unexpected)}
  exits      ${JSON.stringify(result.exitCodes)}
${result.examples.map((e) => '  e.g. ' + e).join('\n')}
  written to ${file}\n`)
  return ok ? 0 : 1
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (err: unknown) => {
    // a usage error in one line, as `npm run bench` says it (exit 2); anything else with its stack
    if (err instanceof EbbError && err.code === Errors.USAGE.code) { process.stderr.write(`${err.message}\n`); process.exitCode = err.exitCode; return }
    process.stderr.write(`chaos: ${(err as Error).stack ?? String(err)}\n`); process.exitCode = 1
  })
}
