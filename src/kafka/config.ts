import { dirname, isAbsolute, resolve } from 'node:path'
import { readSmallFile } from '../io/small-file.js'
import { isScalar, type Node } from 'yaml'
import { parseDuration, readConfigText, YamlDoc } from '../config/yaml.js'
import { Errors } from '../errors.js'
import { topologyPath } from '../paths.js'

/**
 * `ebb run --config F` (README, "Production mode on Kafka"): a YAML (or JSON) file, then environment variables on top
 * (EBB_BROKERS, EBB_APPLICATION_ID, EBB_STATE_DIR, EBB_TOPOLOGY, EBB_AUTO_OFFSET_RESET, EBB_PIPELINED_COMMITS, EBB_SASL_USERNAME,
 * EBB_SASL_PASSWORD, EBB_HTTP_PORT, EBB_HTTP_HOST, EBB_HTTP_TOKEN). A wrong value stops the
 * start with `file:line: what is wrong` (exit 2).
 */
export interface RunConfig {
  applicationId: string
  /** stable per instance across restarts: the transactional id (fences a previous incarnation) */
  instanceId: string
  /** false: none configured; `ebb run` makes one and keeps it in stateDir (instance-id.ts) */
  instanceIdConfigured: boolean
  brokers: string[]
  topics: { input: string, alerts: string, tasks: string, outcomes: string, deadLetters: string, createIfAbsent: boolean, partitions: number, replicationFactor: number }
  topologyFile: string
  stateDir: string
  commitIntervalMs: number
  /**
   * whether the partitions go on processing while a commit is in flight (its transaction and
   * local writes), the next commit starting when it lands; false (the default): processing waits
   * for each commit. Measured (README, "Choosing commitInterval"): lower latency at light load,
   * higher near the maximum rate, on this project's 2-core machine.
   */
  pipelinedCommits: boolean
  cacheSize: number
  processingGuarantee: 'exactly_once' | 'at_least_once'
  /**
   * where a partition with no committed offset in the group starts (a new applicationId): at the
   * beginning of the input (`earliest`, the default: every stored event builds state) or at its
   * end (`latest`: only what arrives from now on), Kafka's auto.offset.reset
   */
  autoOffsetReset: 'earliest' | 'latest'
  /** a partition that received nothing for this long follows the other partitions' stream time */
  idlePartitionTimeoutMs: number
  /**
   * how long `ebb run` keeps trying to reach the brokers, at start and after a broker outage (a
   * failed commit, a consumer that gave up), before it exits 1; Kafka Streams' task.timeout.ms
   * plays this part (5 minutes by default there too). `startupTimeout` is its older name
   */
  retryTimeoutMs: number
  /**
   * how long opening a partition waits for its restored state to reach the group's committed
   * offset (a dead producer's open transaction can hide the changelog's tail; the broker aborts it
   * after the 10 s transaction timeout) before it fails, retriably; it is then tried again. Short:
   * the restore runs in the runner's serial chain, so the instance's other partitions wait
   */
  restoreConsistencyTimeoutMs: number
  /**
   * how long a transaction may stay open on a changelog or output partition, hiding what follows
   * it from read_committed readers (a restore, the outputs' consumers), while no transaction
   * coordinator owns it (a *hanging* transaction, KIP-664: its marker will never come) before Ebb
   * aborts it itself, as `kafka-transactions.sh abort` would; 0: never (the partition then waits
   * for an operator). See hanging-watch.ts
   */
  hangingTransactionTimeoutMs: number
  /** schema ids read with the bundled ebb.UserEvent schema without asking a registry */
  knownSchemaIds: number[]
  /** a Confluent-compatible schema registry for other ids (EBB_SCHEMA_REGISTRY_URL); null: none */
  schemaRegistryUrl: string | null
  /** "user:password" for the registry's HTTP Basic auth (EBB_SCHEMA_REGISTRY_USER_INFO; or in the URL) */
  schemaRegistryUserInfo: string | undefined
  /**
   * how each output topic's values are written: `confluent` (Avro in the Confluent wire format,
   * the schema registered under `<topic>-value`; the default with a schema registry), `avro` (the
   * raw Avro body; the default without one) or `json` (one JSON object, as `ebb replay` writes)
   */
  outputFormats: Record<OutputTopic, OutputFormat>
  /**
   * TLS to the brokers: false, true (the system's CAs), or PEM files read at load: `ca` to trust
   * (a private CA), `cert` + `key` for mutual TLS (ssl.client.auth=required), the key's
   * passphrase from EBB_SSL_KEY_PASSWORD only
   */
  ssl: boolean | TlsSettings
  /**
   * settings passed to the Kafka client as they are (`client:` in the file): its timeouts and
   * retries, for networks slower or flakier than the defaults assume; unknown keys are refused
   */
  client: ClientProperties
  sasl: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512', username: string, password: string } | null
  http: { port: number, host: string, token: string | undefined }
}

export interface TlsSettings {
  ca?: Buffer
  cert?: Buffer
  key?: Buffer
  passphrase?: string
  /** false only to test against a broker whose certificate cannot be verified */
  rejectUnauthorized: boolean
  /** the files, for messages (never their contents) */
  files: string[]
}

/**
 * The Kafka client's own settings that `client:` may set (durations in ms): the connection and
 * request timeouts, and how often and how patiently a failed request is retried (doubling from
 * initialRetryTime up to maxRetryTime). Mapped onto @platformatic/kafka's options in
 * platformatic-client.ts.
 */
export interface ClientProperties {
  connectionTimeout?: number
  requestTimeout?: number
  retry?: { retries?: number, initialRetryTime?: number, maxRetryTime?: number }
}

const CLIENT_DURATIONS = ['connectionTimeout', 'requestTimeout'] as const

function clientProperties (y: YamlDoc, node: Node | undefined): ClientProperties {
  if (node === undefined) return {}
  y.onlyKeys(node, 'client', [...CLIENT_DURATIONS, 'retries', 'initialRetryTime', 'maxRetryTime'])
  const p: ClientProperties = {}
  for (const k of CLIENT_DURATIONS) if (y.get(node, k) !== undefined) p[k] = y.duration(y.get(node, k), `client.${k}`, 0)
  const retry: NonNullable<ClientProperties['retry']> = {}
  if (y.get(node, 'retries') !== undefined) retry.retries = y.num(y.get(node, 'retries'), 'client.retries', 5, 0, 100, true)
  if (y.get(node, 'initialRetryTime') !== undefined) retry.initialRetryTime = y.duration(y.get(node, 'initialRetryTime'), 'client.initialRetryTime', 300)
  if (y.get(node, 'maxRetryTime') !== undefined) retry.maxRetryTime = y.duration(y.get(node, 'maxRetryTime'), 'client.maxRetryTime', 30_000)
  if (Object.keys(retry).length > 0) p.retry = retry
  return p
}

/**
 * The transaction timeout: 10 s, as Kafka Streams sets for exactly-once, unless
 * `client.requestTimeout` is set (the client sends its request timeout as the transaction
 * timeout). A transaction left open by an instance that died is aborted by the broker that soon,
 * so what follows it on the changelog becomes readable to a restore.
 */
export function transactionTimeoutMs (c: Pick<RunConfig, 'client'>): number {
  return c.client.requestTimeout ?? 10_000
}

export const CHANGELOG_SUFFIX = '-user-state-changelog'

export function changelogTopic (c: RunConfig): string { return c.applicationId + CHANGELOG_SUFFIX }

/** What is wrong with a broker address (host:port, the port 1..65535), or null. */
export function brokerProblem (b: string): string | null {
  const m = /^([^\s:]+):(\d{1,5})$/.exec(b)
  if (m === null) return `"${b}" is not host:port`
  const port = Number(m[2])
  return port >= 1 && port <= 65535 ? null : `"${b}": the port must be 1..65535`
}

export function loadRunConfig (file: string, env: NodeJS.ProcessEnv = process.env): RunConfig {
  return parseRunConfig(readConfigText(file), file, env)
}

export type OutputTopic = 'alerts' | 'tasks' | 'outcomes' | 'deadLetters'
export type OutputFormat = 'avro' | 'confluent' | 'json'
export const OUTPUT_TOPICS: readonly OutputTopic[] = ['alerts', 'tasks', 'outcomes', 'deadLetters']
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['avro', 'confluent', 'json']

/** `outputFormat: F` for every output, or `{ alerts: F, … }`; EBB_OUTPUT_FORMAT wins for every output. */
function outputFormats (y: YamlDoc, node: Node | undefined, registry: boolean, env: NodeJS.ProcessEnv): Record<OutputTopic, OutputFormat> {
  const every = (f: OutputFormat): Record<OutputTopic, OutputFormat> => ({ alerts: f, tasks: f, outcomes: f, deadLetters: f })
  const check = (v: string, where: Node | undefined, what: string): OutputFormat => {
    if (!(OUTPUT_FORMATS as readonly string[]).includes(v)) return y.fail(where, `${what}: avro, confluent or json, not "${v}"`)
    if (v === 'confluent' && !registry) return y.fail(where, `${what}: confluent needs schemaRegistryUrl (the schemas are registered there)`)
    return v as OutputFormat
  }
  const out = every(registry ? 'confluent' : 'avro')
  const fromEnv = env.EBB_OUTPUT_FORMAT
  if (fromEnv !== undefined && fromEnv !== '') return every(check(fromEnv, node, 'EBB_OUTPUT_FORMAT'))
  if (node === undefined) return out
  if (isScalar(node)) return every(check(y.str(node, 'outputFormat'), node, 'outputFormat'))
  y.onlyKeys(node, 'outputFormat', [...OUTPUT_TOPICS])
  for (const t of OUTPUT_TOPICS) {
    const n = y.get(node, t)
    if (n !== undefined) out[t] = check(y.str(n, `outputFormat.${t}`), n, `outputFormat.${t}`)
  }
  return out
}

/** `retryTimeout` (EBB_RETRY_TIMEOUT wins), or its older name `startupTimeout`; 5 minutes by default. */
function retryTimeout (y: YamlDoc, root: Node | undefined, env: NodeJS.ProcessEnv): number {
  const fromEnv = env.EBB_RETRY_TIMEOUT
  if (fromEnv !== undefined && fromEnv !== '') return parseDuration(fromEnv) ?? y.fail(root, `EBB_RETRY_TIMEOUT: "${fromEnv}" is not a duration like 30s, 5m or 1h`)
  const node = y.get(root, 'retryTimeout')
  const old = y.get(root, 'startupTimeout')
  if (node !== undefined && old !== undefined) y.fail(old, 'startupTimeout: the older name of retryTimeout; set one of them')
  return node !== undefined ? y.duration(node, 'retryTimeout', 300_000) : y.duration(old, 'startupTimeout', 300_000)
}

/**
 * `ssl: true | false | { ca, cert, key, rejectUnauthorized }` (files relative to the
 * configuration; EBB_SSL_CA_FILE, EBB_SSL_CERT_FILE, EBB_SSL_KEY_FILE win, and turn TLS on).
 */
function tlsSettings (y: YamlDoc, node: Node | undefined, relative: (p: string) => string, env: NodeJS.ProcessEnv): boolean | TlsSettings {
  const fromEnv = { ca: env.EBB_SSL_CA_FILE, cert: env.EBB_SSL_CERT_FILE, key: env.EBB_SSL_KEY_FILE }
  const anyEnv = Object.values(fromEnv).some((v) => v !== undefined && v !== '')
  if (!anyEnv && (node === undefined || isScalar(node))) return y.bool(node, 'ssl', false)
  if (node !== undefined && !isScalar(node)) y.onlyKeys(node, 'ssl', ['ca', 'cert', 'key', 'rejectUnauthorized'])
  const mapNode = node !== undefined && !isScalar(node) ? node : undefined
  const files: string[] = []
  const read = (key: 'ca' | 'cert' | 'key'): Buffer | undefined => {
    const v = fromEnv[key]
    const file = v !== undefined && v !== '' ? relative(v) : y.get(mapNode, key) === undefined ? undefined : relative(y.str(y.get(mapNode, key), `ssl.${key}`))
    if (file === undefined) return undefined
    files.push(file)
    try {
      return readSmallFile(file)
    } catch (err) {
      return y.fail(y.get(mapNode, key) ?? node, `ssl.${key}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
    }
  }
  const t: TlsSettings = { ca: read('ca'), cert: read('cert'), key: read('key'), rejectUnauthorized: y.bool(y.get(mapNode, 'rejectUnauthorized'), 'ssl.rejectUnauthorized', true), files }
  if ((t.cert === undefined) !== (t.key === undefined)) y.fail(mapNode ?? node, 'ssl: cert and key go together (mutual TLS); set both or neither')
  if (env.EBB_SSL_KEY_PASSWORD !== undefined && env.EBB_SSL_KEY_PASSWORD !== '') t.passphrase = env.EBB_SSL_KEY_PASSWORD
  return t
}

export function parseRunConfig (text: string, file: string, env: NodeJS.ProcessEnv = process.env): RunConfig {
  const y = new YamlDoc(text, file, Errors.CONFIG_INVALID)
  const root = y.root ?? undefined
  const fail = (node: Node | undefined, what: string): never => y.fail(node, what)
  y.onlyKeys(root, 'config', ['applicationId', 'instanceId', 'brokers', 'topics', 'topology', 'stateDir', 'commitInterval', 'pipelinedCommits', 'cacheSize', 'processingGuarantee', 'autoOffsetReset', 'idlePartitionTimeout', 'retryTimeout', 'startupTimeout', 'restoreConsistencyTimeout', 'hangingTransactionTimeout', 'knownSchemaIds', 'schemaRegistryUrl', 'outputFormat', 'ssl', 'client', 'sasl', 'http'])
  const str = (key: string, envName: string, dflt?: string): string => {
    const fromEnv = env[envName]
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv
    const node = y.get(root, key)
    if (node === undefined) { if (dflt === undefined) return fail(root, `${key}: missing (or set ${envName})`); return dflt }
    const v = y.get(root, key)?.toJSON() as unknown
    if (typeof v !== 'string' || v === '') return fail(node, `${key}: expected text`)
    return v
  }
  const applicationId = str('applicationId', 'EBB_APPLICATION_ID', 'ebb')
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(applicationId)) fail(y.get(root, 'applicationId'), 'applicationId: letters, digits, . _ - only (it names the consumer group and the changelog topic)')
  const brokersEnv = env.EBB_BROKERS
  let brokers: string[]
  if (brokersEnv !== undefined && brokersEnv !== '') brokers = brokersEnv.split(',').map((b) => b.trim())
  else {
    const node = y.get(root, 'brokers')
    if (node === undefined) return fail(root, 'brokers: missing (a list of host:port, or set EBB_BROKERS)')
    brokers = y.seq(node, 'brokers').map((b) => y.str(b, 'brokers'))
  }
  for (const b of brokers) {
    const problem = brokerProblem(b)
    if (problem !== null) fail(y.get(root, 'brokers'), `brokers: ${problem}`)
  }

  const t = y.get(root, 'topics')
  y.onlyKeys(t, 'topics', ['input', 'alerts', 'tasks', 'outcomes', 'deadLetters', 'createIfAbsent', 'partitions', 'replicationFactor'])
  const topic = (key: string, dflt: string): string => {
    const v = y.str(y.get(t, key), `topics.${key}`, dflt)
    if (!/^[A-Za-z0-9._-]{1,249}$/.test(v)) fail(y.get(t, key), `topics.${key}: "${v}" is not a valid topic name`)
    return v
  }
  const topics = {
    input: topic('input', 'ebb.events'),
    alerts: topic('alerts', 'ebb.alerts'),
    tasks: topic('tasks', 'ebb.recall-tasks'),
    outcomes: topic('outcomes', 'ebb.outcomes'),
    deadLetters: topic('deadLetters', 'ebb.dlq'),
    createIfAbsent: y.bool(y.get(t, 'createIfAbsent'), 'topics.createIfAbsent', true),
    partitions: y.num(y.get(t, 'partitions'), 'topics.partitions', 4, 1, 10_000, true),
    replicationFactor: y.num(y.get(t, 'replicationFactor'), 'topics.replicationFactor', 1, 1, 10, true)
  }
  const relative = (p: string): string => isAbsolute(p) ? p : resolve(dirname(resolve(file)), p)
  const topologyRef = env.EBB_TOPOLOGY ?? (y.get(root, 'topology') === undefined ? undefined : y.str(y.get(root, 'topology'), 'topology'))
  const stateDir = relative(str('stateDir', 'EBB_STATE_DIR', './ebb-state'))
  const guarantee = y.str(y.get(root, 'processingGuarantee'), 'processingGuarantee', 'exactly_once')
  if (guarantee !== 'exactly_once' && guarantee !== 'at_least_once') fail(y.get(root, 'processingGuarantee'), `processingGuarantee: "${guarantee}" is neither exactly_once nor at_least_once`)
  const resetNode = y.get(root, 'autoOffsetReset')
  const reset = env.EBB_AUTO_OFFSET_RESET ?? y.str(resetNode, 'autoOffsetReset', 'earliest')
  if (reset !== 'earliest' && reset !== 'latest') fail(resetNode, `autoOffsetReset: earliest or latest${env.EBB_AUTO_OFFSET_RESET === undefined ? '' : ' (EBB_AUTO_OFFSET_RESET)'}, not "${reset}"`)
  const saslNode = y.get(root, 'sasl')
  y.onlyKeys(saslNode, 'sasl', ['mechanism', 'username', 'password'])
  const saslUser = env.EBB_SASL_USERNAME ?? (saslNode === undefined ? undefined : y.str(y.get(saslNode, 'username'), 'sasl.username'))
  const mechanism = y.str(y.get(saslNode, 'mechanism'), 'sasl.mechanism', 'plain')
  if (!['plain', 'scram-sha-256', 'scram-sha-512'].includes(mechanism)) fail(y.get(saslNode, 'mechanism'), 'sasl.mechanism: plain, scram-sha-256 or scram-sha-512')
  const sasl = saslUser === undefined
    ? null
    : { mechanism: mechanism as 'plain', username: saslUser, password: env.EBB_SASL_PASSWORD ?? y.str(y.get(saslNode, 'password'), 'sasl.password (or EBB_SASL_PASSWORD)') }
  const httpNode = y.get(root, 'http')
  y.onlyKeys(httpNode, 'http', ['port', 'host', 'token'])
  const port = Number(env.EBB_HTTP_PORT ?? y.num(y.get(httpNode, 'port'), 'http.port', 8080, 0, 65535, true))
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(httpNode, `http.port: EBB_HTTP_PORT "${env.EBB_HTTP_PORT ?? ''}" is not a port`)
  const token = env.EBB_HTTP_TOKEN ?? (y.get(httpNode, 'token') === undefined ? undefined : y.str(y.get(httpNode, 'token'), 'http.token'))
  const registryNode = y.get(root, 'schemaRegistryUrl')
  const registryUrl = env.EBB_SCHEMA_REGISTRY_URL ?? (registryNode === undefined ? null : y.str(registryNode, 'schemaRegistryUrl'))
  if (registryUrl !== null && !/^https?:\/\/\S+$/.test(registryUrl)) fail(registryNode, `schemaRegistryUrl: "${registryUrl}" is not an http(s) URL`)
  return {
    applicationId,
    // (without one, `ebb run` makes its own: instance-id.ts; this placeholder names the other commands' clients)
    instanceId: str('instanceId', 'EBB_INSTANCE_ID', `${applicationId}-0`),
    instanceIdConfigured: (env.EBB_INSTANCE_ID !== undefined && env.EBB_INSTANCE_ID !== '') || y.get(root, 'instanceId') !== undefined,
    brokers,
    topics,
    topologyFile: topologyRef === undefined ? topologyPath('default.yaml') : relative(topologyRef),
    stateDir,
    commitIntervalMs: y.duration(y.get(root, 'commitInterval'), 'commitInterval', 1000),
    cacheSize: y.num(y.get(root, 'cacheSize'), 'cacheSize', 200_000, 1, 50_000_000, true),
    processingGuarantee: guarantee as RunConfig['processingGuarantee'],
    autoOffsetReset: reset as RunConfig['autoOffsetReset'],
    idlePartitionTimeoutMs: y.duration(y.get(root, 'idlePartitionTimeout'), 'idlePartitionTimeout', 60_000),
    pipelinedCommits: env.EBB_PIPELINED_COMMITS === undefined ? y.bool(y.get(root, 'pipelinedCommits'), 'pipelinedCommits', false) : (env.EBB_PIPELINED_COMMITS === 'true' || (env.EBB_PIPELINED_COMMITS !== 'false' && fail(y.get(root, 'pipelinedCommits'), `EBB_PIPELINED_COMMITS: true or false, not "${env.EBB_PIPELINED_COMMITS}"`))),
    retryTimeoutMs: retryTimeout(y, root, env),
    restoreConsistencyTimeoutMs: y.duration(y.get(root, 'restoreConsistencyTimeout'), 'restoreConsistencyTimeout', 15_000),
    hangingTransactionTimeoutMs: y.duration(y.get(root, 'hangingTransactionTimeout'), 'hangingTransactionTimeout', 60_000),
    knownSchemaIds: y.seq(y.get(root, 'knownSchemaIds'), 'knownSchemaIds', false).map((n) => y.num(n, 'knownSchemaIds', 0, 0, 2 ** 31 - 1, true)),
    schemaRegistryUrl: registryUrl,
    schemaRegistryUserInfo: env.EBB_SCHEMA_REGISTRY_USER_INFO === '' ? undefined : env.EBB_SCHEMA_REGISTRY_USER_INFO,
    outputFormats: outputFormats(y, y.get(root, 'outputFormat'), registryUrl !== null, env),
    ssl: tlsSettings(y, y.get(root, 'ssl'), relative, env),
    client: clientProperties(y, y.get(root, 'client')),
    sasl,
    http: { port, host: env.EBB_HTTP_HOST ?? y.str(y.get(httpNode, 'host'), 'http.host', '127.0.0.1'), token: token === '' ? undefined : token }
  }
}
