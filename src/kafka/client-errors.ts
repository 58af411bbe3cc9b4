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
 * What the brokers refused for good somewhere inside `err`, as Ebb's error: EBB_KAFKA_AUTH
 * (credentials) or EBB_KAFKA_DENIED (an ACL); else undefined (an outage, retried).
 */
export function kafkaRefusal (err: unknown, brokers: string): EbbError | undefined {
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
  const broker = (auth.cause as { serverErrorMessage?: string | null } | undefined)?.serverErrorMessage
  const message = String(auth.message ?? '')
  return new EbbError(Errors.KAFKA_AUTH, brokers, broker === undefined || broker === null ? message : `${message} ${broker}`)
}
