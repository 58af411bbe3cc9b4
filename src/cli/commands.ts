import { parseArgs } from 'node:util'
import { EbbError, Errors } from '../errors.js'
import { packageVersion } from '../paths.js'
import { POPULATION_KINDS } from '../sim/populations.js'

/**
 * Every command and its options, in one table: `parseCommand` builds the parser from it and
 * `commandHelp` the help, so an option cannot be accepted without being documented, or the
 * other way round.
 */
export interface OptionSpec {
  readonly type: 'string' | 'boolean'
  readonly multiple?: boolean
  /** the value's placeholder in the help (string options) */
  readonly value?: string
  readonly help: string
}

export interface CommandSpec {
  readonly name: string
  /** one line, for the list of commands */
  readonly summary: string
  readonly usage: string
  /** what it does, a few lines */
  readonly about: string
  readonly options: Readonly<Record<string, OptionSpec>>
  /** bench: suite names */
  readonly positionals?: string
  readonly environment?: ReadonlyArray<readonly [string, string]>
  readonly examples: readonly string[]
}

const HTTP_OPTIONS = {
  port: { type: 'string', value: 'P', help: 'HTTP port (default 8080, or EBB_HTTP_PORT; 0 picks a free one)' },
  host: { type: 'string', value: 'H', help: 'address to bind (default 127.0.0.1, or EBB_HTTP_HOST)' },
  token: { type: 'string', value: 'T', help: 'bearer token for /users and /alerts (or EBB_HTTP_TOKEN)' }
} as const

export const COMMANDS = {
  demo: {
    name: 'demo',
    summary: 'embedded mode, no Kafka: a simulated population through the engine, its API served (= npm start)',
    usage: 'ebb demo [--users N] [--days D] [--seed S] [--state DIR] [--port P] [--exit]',
    about: `Simulates a population (with the simulator's injected noise: duplicate and late events, so the
dead-letter path shows), encodes it as Avro into an in-process log, runs it through the engine
with RocksDB state (a temporary directory unless --state), and prints progress and a summary
with an example alert of each rule. The HTTP API and /metrics are served during the run and
after it, until Ctrl-C. Event times are simulated (months behind the clock): lags read in
simulated time.`,
    options: {
      users: { type: 'string', value: 'N', help: 'simulated users (default 5000)' },
      days: { type: 'string', value: 'D', help: 'simulated days (default 60)' },
      seed: { type: 'string', value: 'S', help: 'simulator seed (default 7)' },
      state: { type: 'string', value: 'DIR', help: 'keep the RocksDB state here (default: a temporary directory)' },
      ...HTTP_OPTIONS,
      exit: { type: 'boolean', help: 'end after the summary instead of serving' }
    },
    environment: [['EBB_HTTP_PORT, EBB_HTTP_HOST, EBB_HTTP_TOKEN', 'as --port, --host, --token'], ['EBB_LOG_LEVEL', 'pino level of the JSON logs on stderr (default warn)']],
    examples: ['ebb demo', 'ebb demo --users 20000 --days 90 --exit']
  },
  run: {
    name: 'run',
    summary: 'production mode on Kafka: a consumer group member with changelog-backed state',
    usage: 'ebb run --config F',
    about: `Joins the consumer group <applicationId>, reads ebb.UserEvent (Avro) from the input topic,
keeps each partition's state in RocksDB with a compacted changelog, and writes alerts, recall
tasks, outcomes and dead letters (Avro, Confluent-framed with a schema registry, or JSON:
outputFormat), in one transaction per commit interval with the
consumer offsets (exactly-once). Serves the HTTP API. Rides out brokers that cannot be reached,
at start or later (a failed commit, a consumer that gave up): its Kafka clients start again from
the last commit, with backoff, for retryTimeout (5 min), then it exits 1. Stops gracefully on
SIGTERM / SIGINT. The configuration file: README, "Production mode on Kafka".`,
    options: {
      config: { type: 'string', value: 'F', help: 'the run configuration (YAML or JSON; environment variables win over it)' }
    },
    environment: [
      ['EBB_BROKERS', 'host:port,host:port (brokers)'],
      ['EBB_APPLICATION_ID', 'applicationId: the consumer group and the prefix of every topic the instance names'],
      ['EBB_INSTANCE_ID', 'instanceId: the transactional id, stable per instance'],
      ['EBB_STATE_DIR', 'stateDir'],
      ['EBB_TOPOLOGY', 'topology'],
      ['EBB_AUTO_OFFSET_RESET', 'autoOffsetReset: earliest (default) or latest, where a new group starts on the input'],
      ['EBB_RETRY_TIMEOUT', 'retryTimeout: how long Kafka may stay unavailable before the process exits 1 (default 5m)'],
      ['EBB_PIPELINED_COMMITS', 'pipelinedCommits: true to go on processing while a commit is in flight (default false)'],
      ['EBB_SSL_CA_FILE, EBB_SSL_CERT_FILE, EBB_SSL_KEY_FILE', 'TLS files (PEM) for the brokers: CA, client certificate and key (mutual TLS)'],
      ['EBB_SSL_KEY_PASSWORD', 'the passphrase of an encrypted client key'],
      ['EBB_SCHEMA_REGISTRY_URL', 'schemaRegistryUrl'],
      ['EBB_OUTPUT_FORMAT', 'outputFormat for every output topic: avro, confluent or json'],
      ['EBB_SCHEMA_REGISTRY_USER_INFO', 'user:password for the schema registry (HTTP Basic)'],
      ['EBB_SASL_USERNAME', 'sasl.username'],
      ['EBB_SASL_PASSWORD', 'the SASL password (never in the file)'],
      ['EBB_HTTP_PORT, EBB_HTTP_HOST, EBB_HTTP_TOKEN', 'http.port, http.host, the bearer token'],
      ['EBB_ADVERTISED_URL', 'the API address other instances send callers to (307)'],
      ['EBB_LOG_LEVEL', 'pino level of the JSON logs on stderr (default warn)']
    ],
    examples: ['ebb run --config deploy/ebb.local.yaml', 'EBB_INSTANCE_ID=churn-1 ebb run --config /etc/ebb/ebb.yaml']
  },
  replay: {
    name: 'replay',
    summary: 'deterministic file-to-file run (--in events.jsonl --out DIR)',
    usage: 'ebb replay --in events.jsonl --out DIR [--topology T] [--until ISO] [--state DIR] [--partitions N]',
    about: `The same input gives byte-identical outputs, whatever the batch size and commit points.
Writes alerts.jsonl, tasks.jsonl, outcomes.jsonl, dlq.jsonl, summary.json and kpis.json (recall
rates per plan, channel, churn type and arm; uplift) to DIR (created if absent). Exit 1 when
more than --max-dead-letter-share of the records were dead letters; exit 2 for a compressed
input or a --state already past the input.`,
    options: {
      in: { type: 'string', value: 'F', help: 'JSON Lines of ebb.UserEvent (README, "The event contract")' },
      out: { type: 'string', value: 'DIR', help: 'the output directory' },
      topology: { type: 'string', value: 'T', help: 'rules file (default: topologies/default.yaml)' },
      until: { type: 'string', value: 'ISO', help: 'advance stream time to this instant at the end, so due timers fire' },
      state: { type: 'string', value: 'DIR', help: 'keep RocksDB state here (default: a temporary directory, removed after)' },
      cache: { type: 'string', value: 'N', help: 'users held in memory between commits (default 200000)' },
      batch: { type: 'string', value: 'N', help: 'lines per batch (default 4096; outputs do not depend on it)' },
      partitions: { type: 'string', value: 'N', help: 'split users into N partitions as a Kafka producer does (murmur2 of the userId), each with its own stream time, state and churn-model learning: the outputs of `ebb run` on an N-partition topic (default 1)' },
      'max-line-bytes': { type: 'string', value: 'N', help: 'a longer line is a dead letter (too_large), never read into memory whole (default 1048576)' },
      'max-dead-letter-share': { type: 'string', value: 'X', help: 'exit 1 above this share of dead letters (default 0.5; 1: never)' },
      'accept-late': { type: 'boolean', help: 'continue a --state already past the input\'s first event (its events are late, or count twice)' }
    },
    examples: [
      'ebb simulate --users 2000 --days 60 --out /tmp/pop.jsonl',
      'ebb replay --in /tmp/pop.jsonl --out /tmp/out --until 2026-03-10T00:00:00Z',
      'ebb replay --in /tmp/pop.jsonl --out /tmp/out4 --partitions 4'
    ]
  },
  check: {
    name: 'check',
    summary: 'verify a replay\'s recall tasks keep channel rules, consent, caps, quiet hours',
    usage: 'ebb check --in events.jsonl --out DIR [--topology T]',
    about: `Checks a replay's recall tasks against the rules they must keep: channel rules, consent,
quiet hours, frequency caps, the golden window, one task per (episode, plan step), no task for
the holdout, outcomes inside their attribution window. Exit 1 when any is broken.`,
    options: {
      in: { type: 'string', value: 'F', help: 'the events the replay read' },
      out: { type: 'string', value: 'DIR', help: 'the replay\'s output directory (tasks.jsonl, alerts.jsonl, outcomes.jsonl)' },
      topology: { type: 'string', value: 'T', help: 'the topology the replay ran (default: topologies/default.yaml)' }
    },
    examples: ['ebb replay --in /tmp/pop.jsonl --out /tmp/out && ebb check --in /tmp/pop.jsonl --out /tmp/out']
  },
  reset: {
    name: 'reset',
    summary: 'start an application over: group offsets to the start (or a time), changelog and local state removed',
    usage: 'ebb reset --config F [--to ISO]',
    about: `Like Kafka Streams' application reset tool, for a stopped application (refused while its
group has members): sets the group's offsets on the input topic to each partition's start, or
with --to to the first record at or after that instant; deletes the changelog topic (recreated
empty at the next start); and removes this host's partition stores (<input>-<partition> in the
configured stateDir, and stateDir itself once empty; nothing else in it).
Remove the state directories of the other hosts too before they start. The output topics are
kept: a rerun emits its alerts and tasks again with the same alertId and taskId (deterministic),
so consumers that dedupe on them see each once.`,
    options: {
      config: { type: 'string', value: 'F', help: 'the run configuration of the application to reset' },
      to: { type: 'string', value: 'ISO', help: 'start from the first input record at or after this instant instead of the beginning (ISO-8601 with its offset, or epoch millis)' }
    },
    examples: ['ebb reset --config deploy/ebb.local.yaml', 'ebb reset --config /etc/ebb/ebb.yaml --to 2026-03-01T00:00:00Z']
  },
  tail: {
    name: 'tail',
    summary: 'print what Ebb wrote to an output topic, decoded, as JSON lines',
    usage: 'ebb tail --config F --topic alerts|tasks|outcomes|deadLetters  |  ebb tail --brokers B --topic NAME --kind K [--format F]',
    about: `Reads an output topic (committed records only, from its start to where it ended when tail
started) and prints each record decoded as one JSON line, partition by partition. With --config,
--topic names one of the configured outputs and its kind and format (outputFormat) follow; with
--brokers, give the topic's name, its --kind and, unless it is raw Avro, its --format. Exit 0 at
the end of the topic (no following yet).`,
    options: {
      config: { type: 'string', value: 'F', help: 'the run configuration: brokers, TLS/SASL and the output topic names (as `ebb run`)' },
      brokers: { type: 'string', value: 'B', help: 'host:port,host:port (instead of --config; or EBB_BROKERS)' },
      topic: { type: 'string', value: 'T', help: 'alerts, tasks, outcomes, deadLetters (with --config), or a topic name' },
      kind: { type: 'string', value: 'K', help: 'alert, task, outcome or deadLetter: how to decode a topic given by name' },
      format: { type: 'string', value: 'F', help: 'avro (default), confluent (Avro in the Confluent wire format) or json: how the values are written (with --config: outputFormat)' },
      max: { type: 'string', value: 'N', help: 'stop after N records' }
    },
    examples: ['ebb tail --config deploy/ebb.local.yaml --topic tasks', 'ebb tail --brokers 127.0.0.1:9092 --topic ebb.alerts --kind alert --max 10 | jq .reasons']
  },
  simulate: {
    name: 'simulate',
    summary: 'write a synthetic population with ground-truth churn labels',
    usage: 'ebb simulate --users N --days D (--out F | --kafka --config F) [--population K] [--labels F] [--seed S]',
    about: `Writes a synthetic population as JSON Lines (ebb.UserEvent), time-ordered, and the ground
truth per user (whether and when they churned) to --labels (default F.labels.jsonl).
Deterministic for a seed. docs/populations.md describes the generators.`,
    options: {
      users: { type: 'string', value: 'N', help: 'users (default 1000)' },
      days: { type: 'string', value: 'D', help: 'days of events (default 60)' },
      out: { type: 'string', value: 'F', help: 'the JSON Lines file to write' },
      labels: { type: 'string', value: 'F', help: 'the ground truth (default: F.labels.jsonl beside --out)' },
      seed: { type: 'string', value: 'S', help: 'seed (default 1)' },
      start: { type: 'string', value: 'DATE', help: 'first day, like 2026-01-05 (default 2026-01-05)' },
      population: { type: 'string', value: 'K', help: `the generator: ${POPULATION_KINDS.join(' | ')} (default archetypes)` },
      'churn-rate': { type: 'string', value: 'X', help: 'about this share churns inside the written days (0 < X < 1; all but archetypes)' },
      prehistory: { type: 'string', value: 'D', help: 'users\' lives start up to D days before the first written day (default 60; all but archetypes)' },
      noise: { type: 'boolean', help: 'add duplicate and late events, as real streams have (archetypes only)' },
      kafka: { type: 'boolean', help: 'produce the events as Avro (key = userId) to the input topic of --config instead of a file' },
      config: { type: 'string', value: 'F', help: 'the run configuration naming brokers and the input topic (with --kafka)' }
    },
    environment: [['EBB_BROKERS', 'with --kafka: the brokers, over the configuration\'s']],
    examples: ['ebb simulate --users 2000 --days 60 --out /tmp/pop.jsonl', 'ebb simulate --population fades --churn-rate 0.3 --users 4000 --days 90 --out /tmp/fades.jsonl']
  },
  train: {
    name: 'train',
    summary: 'fit the churn model\'s prior on labelled events',
    usage: 'ebb train --in events.jsonl [--in more.jsonl …] (--labels F … | --derive-labels) --out model.json [options]',
    about: `Fits the prior of the churn model: the coefficients every partition starts from and then
refines on its own stream (docs/churn-model.md). Each input is replayed through the engine;
every scored day (a user at a local midnight of a silence) is a row, labelled churned when no
LOGIN follows within 30 days. Training uses rows whose label is known before the split, and
validation the rows after it; on a history too short for that, a fifth of the users validate.
Refuses (exit 2) to write a model from too few churned days or silences, and warns when the
churn rate of training and validation differ more than twofold.`,
    options: {
      in: { type: 'string', multiple: true, value: 'F', help: 'events (JSON Lines); repeat for more inputs' },
      out: { type: 'string', value: 'F', help: 'the model file to write' },
      labels: { type: 'string', multiple: true, value: 'F', help: 'ground truth per input (the simulator\'s label file), in the order of --in' },
      'derive-labels': { type: 'boolean', help: 'derive the labels from the LOGIN events of each input' },
      split: { type: 'string', value: 'ISO', help: 'start of validation (default: the last quarter of the labelled span)' },
      warmup: { type: 'string', value: 'DAYS', help: 'skip rows of each input\'s first DAYS days (default 0)' },
      topology: { type: 'string', value: 'T', help: 'signal parameters come from it (default: topologies/default.yaml)' },
      l2: { type: 'string', value: 'X', help: 'L2 penalty on the standardised coefficients (default 1)' },
      'intercept-per-input': { type: 'boolean', help: 'with several --in, fit each input its own intercept: the prior learns how users rank within a population, not how the inputs\' churn rates differ (docs/churn-model.md, "The prior")' }
    },
    examples: ['ebb simulate --population habits --users 5000 --days 120 --out h.jsonl', 'ebb train --in h.jsonl --derive-labels --out model.json']
  },
  eval: {
    name: 'eval',
    summary: 'precision, recall, alert volume and lead time of the model against inactive_7d, with pictures',
    usage: 'ebb eval --in events.jsonl (--labels F | --derive-labels) --out DIR [--topology T] [--model M]',
    about: `Replays the events with the churn model learning from them as it would in production, and
reports, for the model rule, inactive_7d alone and the whole topology: precision per alert,
recall, alerts per 1k users per day and the lead time (days from the last LOGIN to the first
alert); the model's AUC and calibration (with --labels, against the file and against the
question the model learns, no LOGIN within 30 days); fixed score thresholds; and a yardstick
fitted in hindsight on the same data. Writes DIR/eval.json, DIR/eval.md and five SVG pictures,
and prints the Markdown.`,
    options: {
      in: { type: 'string', value: 'F', help: 'events (JSON Lines)' },
      out: { type: 'string', value: 'DIR', help: 'where eval.json, eval.md and the pictures go' },
      labels: { type: 'string', value: 'F', help: 'ground truth (the simulator\'s label file)' },
      'derive-labels': { type: 'boolean', help: 'derive the labels from the LOGIN events' },
      topology: { type: 'string', value: 'T', help: 'the topology (default: topologies/default.yaml)' },
      model: { type: 'string', value: 'M', help: 'the model file (default: the topology\'s `model:`)' },
      warmup: { type: 'string', value: 'DAYS', help: 'daily snapshots of the first DAYS days are not ranked (default 28)' }
    },
    examples: ['ebb simulate --population fades --users 4000 --days 120 --out f.jsonl', 'ebb eval --in f.jsonl --labels f.labels.jsonl --out /tmp/eval']
  },
  bench: {
    name: 'bench',
    summary: 'the benchmark suites (= npm run bench -- SUITE)',
    usage: 'ebb bench [SUITE …] [--quick] [options]',
    positionals: 'SUITE: core, state, restore, timers, e2e, peer, scaling, populations (default: all but populations)',
    about: `Runs benchmark suites and writes their numbers to bench/results/<suite>.json. The Kafka
suites start the project's broker (scripts/kafka.sh). bench/README.md explains each suite.`,
    options: {
      quick: { type: 'boolean', help: 'small sizes (what the test suite runs)' },
      work: { type: 'string', value: 'DIR', help: 'working directory (default: a temporary one)' },
      users: { type: 'string', value: 'N', help: 'core, state, timers: users' },
      events: { type: 'string', value: 'N', help: 'core, e2e: events' },
      days: { type: 'string', value: 'D', help: 'core: days the events span' },
      results: { type: 'string', value: 'DIR', help: 'where results go (default bench/results)' },
      partitions: { type: 'string', value: 'N', help: 'e2e, scaling: input partitions' },
      seconds: { type: 'string', value: 'S', help: 'e2e: seconds per latency level' },
      'commit-interval': { type: 'string', value: 'D', help: 'e2e: commit interval (default 100ms)' },
      'rate-base': { type: 'string', value: 'N', help: 'e2e: the latency levels are shares of N events/s, not of the measured maximum (two builds at the same loads)' },
      guarantee: { type: 'string', value: 'G', help: 'e2e: exactly_once (default) or at_least_once' },
      pipelined: { type: 'boolean', help: 'e2e: pipelinedCommits: true' },
      cache: { type: 'string', value: 'N', help: 'core: users cached between commits' },
      chunk: { type: 'string', value: 'N', help: 'core: events built, processed and dropped at a time (large populations)' }
    },
    examples: ['ebb bench core --quick', 'npm run bench -- core', 'npm run bench -- e2e --events 2000000']
  }
} as const satisfies Record<string, CommandSpec>

export type CommandName = keyof typeof COMMANDS

type Values<T extends Readonly<Record<string, OptionSpec>>> = {
  [K in keyof T]?: T[K]['type'] extends 'boolean' ? boolean : T[K]['multiple'] extends true ? string[] : string
} & { help?: boolean }

function parserOptions (spec: CommandSpec): Record<string, { type: 'string' | 'boolean', multiple?: boolean, short?: string }> {
  const out: Record<string, { type: 'string' | 'boolean', multiple?: boolean, short?: string }> = { help: { type: 'boolean', short: 'h' } }
  for (const [name, o] of Object.entries(spec.options)) out[name] = o.multiple === true ? { type: o.type, multiple: true } : { type: o.type }
  return out
}

/** Strict parsing from the table: an unknown or malformed option is a usage error (exit 2) that names it. */
export function parseCommand<S extends CommandSpec> (spec: S, argv: string[]): Values<S['options']> {
  return parseCommandWithPositionals(spec, argv, false).values
}

export function parseCommandWithPositionals<S extends CommandSpec> (spec: S, argv: string[], positionals = true): { values: Values<S['options']>, positionals: string[] } {
  const help = `\`ebb ${spec.name} --help\` lists its options`
  let r: ReturnType<typeof parseArgs>
  try {
    r = parseArgs({ args: argv, options: parserOptions(spec), strict: true, allowPositionals: positionals, tokens: true })
  } catch (err) {
    const first = (err as Error).message.split('\n')[0]
      .replace(/^Unknown option '(.*?)'.*$/, 'unknown option $1')
      .replace(/^Option '(.*?)' argument is ambiguous\.?$/, '$1 needs a value; one that starts with "-" is given as $1=VALUE')
      .replace(/\.$/, '')
    throw new EbbError(Errors.USAGE, `${first}. ${help}`)
  }
  // An option given twice is a mistake to say, not one value silently kept (only lists repeat).
  const seen = new Set<string>()
  for (const t of r.tokens ?? []) {
    if (t.kind !== 'option' || spec.options[t.name]?.multiple === true) continue
    if (seen.has(t.name)) throw new EbbError(Errors.USAGE, `--${t.name} is given more than once. ${help}`)
    seen.add(t.name)
  }
  return { values: r.values as Values<S['options']>, positionals: r.positionals }
}

/** A command's help: usage, what it does, every option of the table, environment, examples. */
export function commandHelp (spec: CommandSpec): string {
  const rows = Object.entries(spec.options).map(([name, o]) => [`--${name}${o.type === 'string' ? ` ${o.value ?? 'X'}` : ''}${o.multiple === true ? ' …' : ''}`, o.help] as const)
  rows.push(['--help, -h', 'this text'])
  const width = Math.min(26, Math.max(...rows.map((r) => r[0].length)) + 2)
  const wrap = (text: string, indent: number): string => {
    const words = text.split(' ')
    const lines: string[] = []
    let line = ''
    for (const w of words) {
      if (line !== '' && indent + line.length + 1 + w.length > 100) { lines.push(line); line = w } else line = line === '' ? w : `${line} ${w}`
    }
    lines.push(line)
    return lines.join('\n' + ' '.repeat(indent))
  }
  const opt = rows.map(([name, help]) => name.length + 2 > width ? `  ${name}\n${' '.repeat(width + 2)}${wrap(help, width + 2)}` : `  ${name.padEnd(width)}${wrap(help, width + 2)}`)
  const parts = [`Usage: ${spec.usage}`, '', spec.about, '']
  if (spec.positionals !== undefined) parts.push(wrap(spec.positionals, 2), '')
  parts.push('Options:', ...opt)
  if (spec.environment !== undefined) {
    const w = Math.max(...spec.environment.map((e) => e[0].length)) + 2
    parts.push('', 'Environment:', ...spec.environment.map(([k, v]) => `  ${k.padEnd(w)}${v}`))
  }
  parts.push('', 'Examples:', ...spec.examples.map((e) => `  ${e}`))
  return parts.join('\n') + '\n'
}

export function version (): string { return packageVersion() }

/** The general help: the commands from the table, how to get one command's help, exit codes. */
export function generalHelp (): string {
  const w = Math.max(...Object.keys(COMMANDS).map((n) => n.length)) + 2
  return `ebb ${version()} — real-time churn early-warning engine

Usage: ebb <command> [options]     ebb help <command>, or ebb <command> --help, lists its options

Commands:
${Object.values(COMMANDS).map((c) => `  ${c.name.padEnd(w)}${c.summary}`).join('\n')}
  ${'help'.padEnd(w)}this text, or a command's options (ebb help replay)
  ${'version'.padEnd(w)}the version

Exit codes: 0 success; 2 bad usage or configuration (fix the command or file and run again);
1 runtime failure (the message says what failed; docs/errors.md lists every error code).
`
}
