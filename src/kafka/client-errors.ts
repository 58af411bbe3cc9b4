import { EbbError, Errors } from '../errors.js'

/**
 * Whether an error comes from the Kafka client (a refused connection, a request that timed out,
 * a leader or coordinator that moved; @platformatic/kafka's codes are PLT_KFK_…): what `ebb run`
 * retries for retryTimeout. Refused credentials are turned into EBB_KAFKA_AUTH by the client
 * port before they get there, and are not retried.
 */
export function isKafkaClientError (err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('PLT_KFK_')
}

/**
 * An error's message with the causes it wraps, for a person: the client reports "metadata failed
 * 6 times." and keeps why in nested errors; this says "metadata failed 6 times (Connection to
 * 127.0.0.1:9092 failed: connect ECONNREFUSED 127.0.0.1:9092)". At most three distinct causes.
 */
export function errorText (err: unknown): string {
  const top = err as { message?: unknown } | null
  const message = String(top?.message ?? err).replace(/\.$/, '')
  const leaves: string[] = []
  const walk = (e: unknown, depth: number): void => {
    if (e === null || typeof e !== 'object' || depth > 6 || leaves.length >= 3) return
    const inner = nested(e)
    if (inner.length === 0) {
      const m = String((e as { message?: unknown }).message ?? '').replace(/\.$/, '')
      if (m !== '' && m !== message && !leaves.includes(m)) leaves.push(m)
      return
    }
    for (const n of inner) walk(n, depth + 1)
  }
  walk(err, 0)
  return leaves.length === 0 ? message : `${message} (${leaves.join('; ')})`
}

/** A client error's own nested errors: the ones it aggregates, then its cause. */
function nested (e: unknown): unknown[] {
  if (e === null || typeof e !== 'object') return []
  const x = e as { errors?: unknown[], cause?: unknown }
  return [...(Array.isArray(x.errors) ? x.errors : []), ...(x.cause === undefined ? [] : [x.cause])]
}

/** The first error, `err` itself or one it wraps at any depth (at most 6), that `match` accepts. */
export function findNestedError (err: unknown, match: (e: { code?: unknown, apiId?: unknown, message?: unknown, cause?: unknown }) => boolean, depth = 0): { code?: unknown, apiId?: unknown, message?: unknown, cause?: unknown } | undefined {
  if (err === null || typeof err !== 'object' || depth > 6) return undefined
  const e = err as { code?: unknown, apiId?: unknown, message?: unknown, cause?: unknown }
  if (match(e)) return e
  for (const n of nested(err)) {
    const found = findNestedError(n, match, depth + 1)
    if (found !== undefined) return found
  }
  return undefined
}

/**
 * The brokers' answers that say "not allowed", not "not now": an ACL missing for this principal
 * (Kafka's *_AUTHORIZATION_FAILED). Retrying them for retryTimeout would only delay the message.
 */
const DENIED: ReadonlySet<string> = new Set(['TOPIC_AUTHORIZATION_FAILED', 'GROUP_AUTHORIZATION_FAILED', 'CLUSTER_AUTHORIZATION_FAILED', 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED', 'DELEGATION_TOKEN_AUTHORIZATION_FAILED'])

/**
 * The brokers' answers that say "never like this": a topic or broker setting, or a broker too old,
 * that no retry can change (Kafka's non-retriable errors a configuration causes). What was
 * rejected, and what to change. Retried as an outage, a topic whose max.message.bytes is below
 * what Ebb writes kept `ebb run` saying "Kafka is unavailable" for retryTimeout (5 minutes).
 */
const REJECTED: Readonly<Record<string, readonly [string, string]>> = {
  MESSAGE_TOO_LARGE: ['a record Ebb wrote', 'A record is larger than its topic\'s max.message.bytes (or the brokers\' message.max.bytes): allow at least 1 MB on the output, dead-letter and changelog topics (a dead letter carries up to 512 KB of the bytes it could not read, and Avro or JSON around them)'],
  RECORD_LIST_TOO_LARGE: ['a batch of records Ebb wrote', 'A batch is larger than its topic\'s max.message.bytes (or the brokers\' message.max.bytes): allow at least 1 MB on the output, dead-letter and changelog topics'],
  INVALID_RECORD: ['a record Ebb wrote', 'A topic refused a record by its own settings (a compacted topic takes only records with a key; dead letters of keyless input have none): make the output and dead-letter topics cleanup.policy=delete, and check their other settings'],
  INVALID_TOPIC_EXCEPTION: ['a topic name', 'Check the names under `topics:` in the configuration (letters, digits, ".", "_" and "-", at most 249 characters)'],
  POLICY_VIOLATION: ['creating a topic', 'The brokers\' topic policy refused it: create the topics yourself (README, "Topics") and set topics.createIfAbsent: false'],
  INVALID_CONFIG: ['creating a topic', 'The brokers refused a topic setting: create the topics yourself (README, "Topics") and set topics.createIfAbsent: false'],
  INVALID_REPLICATION_FACTOR: ['creating a topic', 'topics.replicationFactor is more than the brokers there are: lower it, or create the topics yourself'],
  INVALID_PARTITIONS: ['creating a topic', 'topics.partitions must be at least 1'],
  INVALID_TRANSACTION_TIMEOUT: ['the transaction timeout', 'Ebb asks for client.requestTimeout (10 s by default) as its transaction timeout: keep it below the brokers\' transaction.max.timeout.ms'],
  UNSUPPORTED_VERSION: ['a request', 'Ebb needs Kafka 2.5 or later (transactional offsets with the group\'s generation, KIP-447)'],
  UNSUPPORTED_FOR_MESSAGE_FORMAT: ['a request', 'A topic uses a message format older than Kafka 0.11: Ebb needs record batches (message.format.version 0.11 or later)'],
  UNSUPPORTED_COMPRESSION_TYPE: ['a compressed batch', 'A topic\'s compression.type does not accept what the client sends: remove compression.type from the output topics or set it to producer'],
  TOPIC_DELETION_DISABLED: ['deleting a topic', 'The brokers run with delete.topic.enable=false: `ebb reset` deletes the changelog; enable it, or delete the changelog topic by hand and run `ebb reset` again']
}

/** The library's own errors that a retry cannot change: a broker without an API Ebb needs. */
const UNSUPPORTED_CLIENT: ReadonlySet<string> = new Set(['PLT_KFK_UNSUPPORTED_API', 'PLT_KFK_UNSUPPORTED_COMPRESSION'])

/**
 * What the brokers refused for good somewhere inside `err`, as Ebb's error: EBB_KAFKA_AUTH
 * (credentials), EBB_KAFKA_DENIED (an ACL) or EBB_KAFKA_REJECTED (a setting, a broker too old);
 * else undefined (an outage, retried).
 */
export function kafkaRefusal (err: unknown, brokers: string): EbbError | undefined {
  const rejected = findNestedError(err, (e) => typeof e.apiId === 'string' && Object.hasOwn(REJECTED, e.apiId))
  if (rejected !== undefined) {
    const [what, fix] = REJECTED[String(rejected.apiId)]
    // the topics of the refused request, when the commit protocol named them (commit.ts)
    const topics = (err as { ebbTopics?: string[] }).ebbTopics
    return new EbbError(Errors.KAFKA_REJECTED, brokers, topics === undefined ? what : `${what} to ${topics.join(' or ')}`, `${String(rejected.apiId)}: ${errorText(err)}`, fix)
  }
  const unsupported = findNestedError(err, (e) => typeof e.code === 'string' && UNSUPPORTED_CLIENT.has(e.code))
  if (unsupported !== undefined) return new EbbError(Errors.KAFKA_REJECTED, brokers, 'a request', `${String(unsupported.code)}: ${errorText(err)}`, 'Ebb needs Kafka 2.5 or later (transactional offsets with the group\'s generation, KIP-447)')
  const denied = findNestedError(err, (e) => typeof e.apiId === 'string' && DENIED.has(e.apiId))
  if (denied !== undefined) {
    const what = String(denied.apiId)
    const on = what.startsWith('TOPIC') ? 'access to a topic' : what.startsWith('GROUP') ? 'access to the consumer group' : what.startsWith('TRANSACTIONAL') ? 'the transactional id' : 'a cluster operation'
    return new EbbError(Errors.KAFKA_DENIED, brokers, on, `${what}: ${errorText(err)}`)
  }
  return kafkaAuthError(err, brokers)
}

/**
 * EBB_KAFKA_AUTH when the brokers refused the credentials somewhere inside `err` (the client's
 * message and the broker's, in words), else undefined: retrying would not change the answer.
 */
export function kafkaAuthError (err: unknown, brokers: string): EbbError | undefined {
  const auth = findNestedError(err, (e) => e.code === 'PLT_KFK_AUTHENTICATION')
  if (auth === undefined) return undefined
  // The client raises the same error when the network fails in the middle of the login (a
  // broker restarting, a handshake that timed out): an outage, retried, not refused credentials.
  if (auth.cause !== undefined && findNestedError(auth.cause, (e) => e.code === 'PLT_KFK_NETWORK' || e.code === 'PLT_KFK_TIMEOUT') !== undefined) return undefined
  const broker = (auth.cause as { serverErrorMessage?: string | null } | undefined)?.serverErrorMessage
  const message = String(auth.message ?? '')
  return new EbbError(Errors.KAFKA_AUTH, brokers, broker === undefined || broker === null ? message : `${message} ${broker}`)
}

/**
 * Runs the Kafka part of a one-shot command (`ebb tail`, `ebb reset`, `ebb simulate --config`):
 * a failure of the client comes out as one of Ebb's errors, in words — what the brokers refuse
 * for good as such (exit 2), anything else as EBB_KAFKA_REQUEST_FAILED — instead of the client's
 * "metadata failed 6 times." and a stack. (`ebb run` retries instead: cli/run.ts.)
 */
export async function kafkaCommand<T> (brokers: readonly string[], command: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body()
  } catch (err) {
    if (!isKafkaClientError(err)) throw err
    const b = brokers.join(',')
    throw kafkaRefusal(err, b) ?? new EbbError(Errors.KAFKA_REQUEST_FAILED, b, command, errorText(err))
  }
}
