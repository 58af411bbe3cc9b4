import avsc from 'avsc'
import { EbbError, Errors } from '../errors.js'
import { userEventAvroType } from '../events/avro.js'
import { log } from '../log.js'

/**
 * How long one registry request may take before it counts as a failure: well under the group's
 * 10 s session timeout, since the lookup runs between two heartbeats.
 */
const REQUEST_TIMEOUT_MS = 5000

/** A registry that could not answer a registration: `ebb run` retries its start (name: SchemaRegistryUnavailable). */
function unavailable (message: string): Error {
  const err = new Error(message)
  err.name = 'SchemaRegistryUnavailable'
  return err
}

/**
 * Writer schemas of Confluent-framed input, from a schema registry (GET /schemas/ids/{id}).
 * A record written with another version of ebb.UserEvent is read through Avro schema
 * resolution into the bundled schema (new fields with defaults, removed optional fields), then
 * re-encoded, so the engine's hot path keeps one reader. Each id is fetched once; an id the
 * registry does not know (404), or a schema that cannot be resolved into ebb.UserEvent, is a
 * reason for the dead letters, never a crash.
 *
 * A registry that cannot answer (down, a timeout after 5 s, a 5xx or 429) says nothing about
 * the records: they are valid until proven otherwise, so they are not dead-lettered. `prefetch`
 * answers false and the caller leaves the batch unprocessed, to be fetched again (consumption of
 * that partition pauses), for as long as `ebb run`'s retryTimeout. Refused credentials (401, 403)
 * will not fix themselves: an error that stops the process. Credentials come from the URL's user
 * info (https://user:password@host) or `userInfo` ("user:password", as Confluent's
 * basic.auth.user.info), sent as HTTP Basic; they never appear in logs or messages.
 */
export class SchemaRegistry {
  private readonly resolved = new Map<number, { resolver: avsc.Resolver, writer: avsc.Type } | string>()
  private readonly base: string
  private readonly headers: Record<string, string>
  /** since when the registry has been failing; undefined while it answers */
  unavailableSince: number | undefined
  /** the last failure, in words (no credentials) */
  lastError: string | undefined
  /** requests that failed (down, timeout, 5xx) */
  failures = 0

  constructor (url: string, userInfo?: string, private readonly timeoutMs = REQUEST_TIMEOUT_MS) {
    const u = new URL(url)
    let user = decodeURIComponent(u.username)
    let password = decodeURIComponent(u.password)
    if (userInfo !== undefined && userInfo !== '') {
      const colon = userInfo.indexOf(':')
      user = colon < 0 ? userInfo : userInfo.slice(0, colon)
      password = colon < 0 ? '' : userInfo.slice(colon + 1)
    }
    u.username = ''
    u.password = ''
    this.base = u.toString().replace(/\/$/, '')
    this.headers = { accept: 'application/vnd.schemaregistry.v1+json' }
    if (user !== '') this.headers.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
  }

  /**
   * Fetches the ids not seen yet; afterwards `problem` and `reencode` answer synchronously.
   * False when the registry could not answer for one of them (the batch must wait).
   */
  async prefetch (ids: Iterable<number>): Promise<boolean> {
    let answered = false
    for (const id of ids) {
      if (this.resolved.has(id)) continue
      let body: { schema?: string, schemaType?: string }
      try {
        const r = await fetch(`${this.base}/schemas/ids/${id}`, { headers: this.headers, signal: AbortSignal.timeout(this.timeoutMs) })
        if (r.status === 404) { this.resolved.set(id, `schema id ${id} is not in the schema registry`); answered = true; continue }
        if (r.status === 401 || r.status === 403) throw new EbbError(Errors.SCHEMA_REGISTRY_AUTH, this.base, r.status)
        if (!r.ok) throw new Error(`HTTP ${r.status}`)
        body = await r.json() as typeof body
        answered = true
      } catch (err) {
        if (err instanceof EbbError) throw err
        // Not cached: a registry that is down is asked again when the batch comes back.
        const why = this.failureText(err)
        this.unavailableSince ??= Date.now()
        this.lastError = `${this.base}: ${why}`
        this.failures++
        log.warn({ component: 'schema-registry', id, err: why }, 'schema registry lookup failed; the records wait')
        return false
      }
      if (body.schemaType !== undefined && body.schemaType !== 'AVRO') { this.resolved.set(id, `schema id ${id} is ${body.schemaType}, not Avro`); continue }
      try {
        const writer = avsc.Type.forSchema(JSON.parse(body.schema ?? 'null'))
        this.resolved.set(id, { resolver: userEventAvroType().createResolver(writer), writer })
      } catch (err) {
        // avsc's own words, after what to do: a writer schema whose fields (names, types, an enum's
        // symbols) the reader schema cannot resolve, or text that is not an Avro schema at all.
        this.resolved.set(id, `schema id ${id} cannot be read as ebb.UserEvent: register a schema compatible with schemas/user-event.avsc (each field of ebb.UserEvent with its type, new fields with defaults, the same enum symbols); the registry's schema says: ${(err as Error).message.slice(0, 200)}`)
      }
    }
    // Only an answer says the registry is back: a batch that needed no lookup says nothing.
    if (answered) this.unavailableSince = undefined
    return true
  }

  /**
   * Registers `schema` under `subject` (POST /subjects/{subject}/versions; the registry answers
   * the existing id when it has the same schema) and returns its id. A registry that cannot
   * answer throws a retriable error (`ebb run` retries its start); refused credentials and a
   * schema the subject's compatibility rules refuse (409, 422) do not fix themselves.
   */
  async register (subject: string, schema: string): Promise<number> {
    let r: Response
    try {
      r = await fetch(`${this.base}/subjects/${encodeURIComponent(subject)}/versions`, { method: 'POST', headers: { ...this.headers, 'content-type': 'application/vnd.schemaregistry.v1+json' }, body: JSON.stringify({ schema }), signal: AbortSignal.timeout(this.timeoutMs) })
    } catch (err) {
      throw unavailable(`registering ${subject} at the schema registry ${this.base} failed: ${this.failureText(err)}`)
    }
    if (r.status === 401 || r.status === 403) throw new EbbError(Errors.SCHEMA_REGISTRY_AUTH, this.base, r.status)
    const body = await r.json().catch(() => ({})) as { id?: number, message?: string }
    if (r.status === 409 || r.status === 422) throw new EbbError(Errors.CONFIG_INVALID, 'outputFormat', `the schema registry ${this.base} refuses Ebb's schema for ${subject} (HTTP ${r.status}: ${body.message ?? 'incompatible'}); set the subject's compatibility, or write this output as avro or json`)
    if (!r.ok || typeof body.id !== 'number') throw unavailable(`registering ${subject} at the schema registry ${this.base} failed: HTTP ${r.status}`)
    return body.id
  }

  /** A request that got no answer, in words: the timeout, or the network's error. */
  private failureText (err: unknown): string {
    return (err as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs / 1000} s` : (err as Error).message
  }

  /** Why a record with this id cannot be read, or null when it can. */
  problem (id: number): string | null {
    const r = this.resolved.get(id)
    if (r === undefined) return `schema id ${id}: the schema registry could not be reached`
    return typeof r === 'string' ? r : null
  }

  /** The body re-encoded with the bundled schema. */
  reencode (id: number, body: Buffer): Buffer {
    const r = this.resolved.get(id)
    if (r === undefined || typeof r === 'string') throw new Error(`schema id ${id} not resolved`)
    const reader = userEventAvroType()
    return reader.toBuffer(reader.fromBuffer(body, r.resolver))
  }
}
