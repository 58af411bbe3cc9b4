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
    const x = e as { message?: unknown, errors?: unknown[], cause?: unknown }
    const nested = [...(Array.isArray(x.errors) ? x.errors : []), ...(x.cause === undefined ? [] : [x.cause])]
    if (nested.length === 0) {
      const m = String(x.message ?? '').replace(/\.$/, '')
      if (m !== '' && m !== message && !leaves.includes(m)) leaves.push(m)
      return
    }
    for (const n of nested) walk(n, depth + 1)
  }
  walk(err, 0)
  return leaves.length === 0 ? message : `${message} (${leaves.join('; ')})`
}
