import avsc from 'avsc'
import { userEventAvroType } from '../events/avro.js'
import { log } from '../log.js'

/**
 * Writer schemas of Confluent-framed input, from a schema registry (GET /schemas/ids/{id}).
 * A record written with another version of ebb.UserEvent is read through Avro schema
 * resolution into the bundled schema (new fields with defaults, removed optional fields), then
 * re-encoded, so the engine's hot path keeps one reader. Each id is fetched once; an id the
 * registry does not know, or a schema that cannot be resolved into ebb.UserEvent, is a reason
 * for the dead letters, never a crash.
 */
export class SchemaRegistry {
  private readonly resolved = new Map<number, { resolver: avsc.Resolver, writer: avsc.Type } | string>()

  constructor (private readonly url: string, private readonly headers: Record<string, string> = {}) {}

  /** Fetches the ids not seen yet; afterwards `problem` and `reencode` answer synchronously. */
  async prefetch (ids: Iterable<number>): Promise<void> {
    for (const id of ids) {
      if (this.resolved.has(id)) continue
      let body: { schema?: string, schemaType?: string }
      try {
        const r = await fetch(`${this.url.replace(/\/$/, '')}/schemas/ids/${id}`, { headers: { accept: 'application/vnd.schemaregistry.v1+json', ...this.headers } })
        if (r.status === 404) { this.resolved.set(id, `schema id ${id} is not in the schema registry`); continue }
        if (!r.ok) throw new Error(`HTTP ${r.status}`)
        body = await r.json() as typeof body
      } catch (err) {
        // Not cached: a registry that is down is asked again for the next batch's records.
        log.warn({ component: 'schema-registry', id, err: (err as Error).message }, 'schema registry lookup failed')
        continue
      }
      if (body.schemaType !== undefined && body.schemaType !== 'AVRO') { this.resolved.set(id, `schema id ${id} is ${body.schemaType}, not Avro`); continue }
      try {
        const writer = avsc.Type.forSchema(JSON.parse(body.schema ?? 'null'))
        this.resolved.set(id, { resolver: userEventAvroType().createResolver(writer), writer })
      } catch (err) {
        this.resolved.set(id, `schema id ${id} cannot be read as ebb.UserEvent: ${(err as Error).message.slice(0, 200)}`)
      }
    }
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
