import type avsc from 'avsc'
import { CONFLUENT_HEADER, CONFLUENT_MAGIC, confluentBody, confluentFrame, confluentSchemaId, decodeAvroEvent, loadAvroType } from '../events/avro.js'
import type { UserEvent } from '../events/user-event.js'
import type { AlertRecord, DeadLetterRecord, DeadLetterSource, OutcomeRecord, RecallTaskRecord } from '../io/records.js'
import { alertJson, deadLetterJson, type OutputSink, outcomeJson, taskJson } from '../io/sinks.js'
import type { OutputFormat, OutputTopic } from './config.js'
import type { RecordBatch } from '../runtime/record-batch.js'
import type { StoreBatch } from '../state/kv-store.js'
import type { SchemaRegistry } from './schema-registry.js'

/** An input record as the client port hands it over (only what Ebb reads). */
export interface InputMessage { offset: string, value: Buffer | null, timestamp?: string, key?: Buffer | null }

/**
 * One fetched batch of an input partition, as the engine's RecordBatch. Values are raw Avro
 * ebb.UserEvent bodies or Confluent-framed ones (magic byte 0, 4-byte schema id, body): a raw
 * body starts with 0 only when its first field, the eventId, is empty, which only an ERASE may
 * be (its eventId is optional). So a value starting with 0 whose schema id is not known, or not
 * readable, is tried as a raw body: an ERASE is taken as one, another event is refused for its
 * empty eventId instead of an unknown schema id. Without a schema registry, only
 * `knownSchemaIds` (the bundled schema) decode; another id, or an empty value, goes to the dead
 * letters with what was wrong.
 */
export class KafkaBatch implements RecordBatch {
  readonly format = 'avro' as const
  /** bodies re-encoded from another writer schema (registry ids), by index */
  private readonly translated = new Map<number, Buffer>()
  private readonly problems = new Map<number, string>()
  /** values starting with 0 that are raw bodies with an empty eventId, by index (decided once, here): true for an ERASE */
  private readonly rawEmptyId = new Map<number, boolean>()
  /** wall clock at the fetch: bounds event time with the record timestamps (docs/time.md) */
  private readonly fetchedAt = Date.now()

  constructor (private readonly messages: InputMessage[], readonly topic: string, readonly partition: number, private readonly knownSchemaIds: ReadonlySet<number>, registry?: SchemaRegistry) {
    for (let i = 0; i < messages.length; i++) {
      const v = messages[i].value
      // Only a value starting with 0 and no frame of a known id needs a decision here.
      if (v === null || v[0] !== CONFLUENT_MAGIC) continue
      const id = confluentSchemaId(v)
      if (id >= 0 && knownSchemaIds.has(id)) continue
      const raw = rawEmptyEventId(v)
      if (raw !== null) { this.rawEmptyId.set(i, raw === 'ERASE'); continue }
      if (registry === undefined || id < 0) continue
      const problem = registry.problem(id)
      if (problem !== null) { this.problems.set(i, problem); continue }
      try {
        this.translated.set(i, registry.reencode(id, confluentBody(v)))
      } catch (err) {
        this.problems.set(i, `schema id ${id}: ${(err as Error).message}`)
      }
    }
  }

  /** Schema ids in a fetched batch that neither the configuration nor the registry cache knows. */
  static schemaIds (messages: InputMessage[], known: ReadonlySet<number>): Set<number> {
    const ids = new Set<number>()
    for (const m of messages) {
      const id = m.value === null ? -1 : confluentSchemaId(m.value)
      if (id >= 0 && !known.has(id) && rawEmptyEventId(m.value as Buffer) === null) ids.add(id)
    }
    return ids
  }

  get length (): number { return this.messages.length }

  value (i: number): Buffer {
    const v = this.messages[i].value
    if (v === null) return EMPTY
    const t = this.translated.get(i)
    if (t !== undefined) return t
    if (this.rawEmptyId.get(i) === true) return v
    return confluentSchemaId(v) >= 0 ? confluentBody(v) : v
  }

  raw (i: number): Buffer { return this.messages[i].value ?? EMPTY }

  key (i: number): Buffer | null { return this.messages[i].key ?? null }

  /**
   * The record's broker timestamp, never later than the wall clock when the batch was fetched:
   * a producer whose clock runs ahead stamps its records ahead too, and the clock catches that.
   */
  recordTime (i: number): number {
    const t = this.messages[i].timestamp
    const ts = t === undefined ? Number.NaN : Number(t)
    return Number.isFinite(ts) && ts < this.fetchedAt ? ts : this.fetchedAt
  }

  rejection (i: number): string | null {
    const v = this.messages[i].value
    if (v === null || v.length === 0) return 'empty value (a tombstone?): an event needs a body'
    if (v[0] !== CONFLUENT_MAGIC) return null
    const id = confluentSchemaId(v)
    if (this.translated.has(i) || (id >= 0 && this.knownSchemaIds.has(id))) return null
    const rawEmptyId = this.rawEmptyId.get(i)
    if (rawEmptyId === true) return null
    if (rawEmptyId === false) return 'eventId: empty (a value starting with byte 0 is read as Confluent-framed unless it is a raw ebb.UserEvent; only an ERASE may leave its eventId empty)'
    if (id < 0) return `Confluent framing cut short (under ${CONFLUENT_HEADER} bytes)`
    const problem = this.problems.get(i)
    if (problem !== undefined) return problem
    return `schema id ${id} is unknown: without a schema registry only ids ${[...this.knownSchemaIds].join(', ') || '(none configured)'} (knownSchemaIds) are read as ebb.UserEvent`
  }

  source (i: number): DeadLetterSource {
    return { topic: this.topic, partition: this.partition, offset: this.messages[i].offset, file: null, line: null }
  }
}

const EMPTY = Buffer.alloc(0)

/** The event type of `v` read as a whole raw ebb.UserEvent body with an empty eventId; null when it is not one. */
function rawEmptyEventId (v: Buffer): UserEvent['type'] | null {
  // A raw body's second byte starts the userId's length, a positive zig-zag varint (even, not 0);
  // a frame's is its schema id's top byte, 0 below 2^24: most frames are told apart without a decode.
  if (v.length < 2 || v[0] !== 0 || v[1] === 0 || (v[1] & 1) !== 0) return null
  try {
    const e = decodeAvroEvent(v)
    return e.userId.length > 0 ? e.type : null
  } catch {
    return null
  }
}

export interface OutputMessage { key: Buffer | null, value: Buffer | null }

let types: Record<OutputKind, avsc.Type> | undefined
function outputTypes (): Record<OutputKind, avsc.Type> {
  if (types === undefined) {
    const f = OUTPUT_SCHEMA_FILES
    types = { alert: loadAvroType(f.alert), task: loadAvroType(f.task), outcome: loadAvroType(f.outcome), deadLetter: loadAvroType(f.deadLetter) }
  }
  return types
}

/** How one output topic's values are written: its format, and with `confluent` the registered schema id. */
export interface OutputEncoding { format: OutputFormat, schemaId?: number }
export type OutputKind = 'alert' | 'task' | 'outcome' | 'deadLetter'
/** the kind of record each configured output topic carries */
export const OUTPUT_KIND_OF: Readonly<Record<OutputTopic, OutputKind>> = { alerts: 'alert', tasks: 'task', outcomes: 'outcome', deadLetters: 'deadLetter' }
export type OutputEncodings = Record<OutputKind, OutputEncoding>
export const AVRO_OUTPUTS: OutputEncodings = { alert: { format: 'avro' }, task: { format: 'avro' }, outcome: { format: 'avro' }, deadLetter: { format: 'avro' } }
const JSON_LINE: Record<OutputKind, (r: never) => string> = { alert: alertJson, task: taskJson, outcome: outcomeJson, deadLetter: deadLetterJson }
/** the Avro schema file of each output kind (registered as `<topic>-value` for confluent) */
export const OUTPUT_SCHEMA_FILES: Record<OutputKind, string> = { alert: 'alert.avsc', task: 'recall-task.avsc', outcome: 'outcome.avsc', deadLetter: 'dead-letter.avsc' }

/** A record's value in its topic's format. */
function encodeValue (kind: OutputKind, enc: OutputEncoding, record: unknown): Buffer {
  if (enc.format === 'json') return Buffer.from((JSON_LINE[kind] as (r: unknown) => string)(record))
  const body = outputTypes()[kind].toBuffer(record)
  return enc.format === 'avro' ? body : confluentFrame(enc.schemaId ?? 0, body)
}

/**
 * The engine's outputs, keyed by userId so a user's alerts, tasks and outcomes stay in order on
 * one partition, buffered until the runner's next transaction sends them; each topic's values as
 * configured (`outputFormat`: raw Avro of the schemas in schemas/, the Confluent wire format, or
 * JSON). Dead letters have no key (spread over the topic's partitions): the input record's
 * position is in the value.
 */
export class KafkaSink implements OutputSink {
  alerts: OutputMessage[] = []
  tasks: OutputMessage[] = []
  outcomes: OutputMessage[] = []
  deadLetters: OutputMessage[] = []
  /** the same alerts and tasks as records, for the API's recent view once they are committed */
  alertRecords: AlertRecord[] = []
  taskRecords: RecallTaskRecord[] = []
  /** users erased in this transaction: the API's recent view drops them once it commits */
  erasedUsers: string[] = []

  constructor (private readonly encodings: OutputEncodings = AVRO_OUTPUTS) {}

  alert (a: AlertRecord): void { this.alerts.push({ key: Buffer.from(a.userId), value: encodeValue('alert', this.encodings.alert, a) }); this.alertRecords.push(a) }
  task (t: RecallTaskRecord): void { this.tasks.push({ key: Buffer.from(t.userId), value: encodeValue('task', this.encodings.task, t) }); this.taskRecords.push(t) }
  outcome (o: OutcomeRecord): void { this.outcomes.push({ key: Buffer.from(o.userId), value: encodeValue('outcome', this.encodings.outcome, o) }) }
  deadLetter (d: DeadLetterRecord): void { this.deadLetters.push({ key: null, value: encodeValue('deadLetter', this.encodings.deadLetter, d) }) }
  erased (userId: string): void { this.erasedUsers.push(userId) }

  get size (): number { return this.alerts.length + this.tasks.length + this.outcomes.length + this.deadLetters.length }

  /** Takes the buffered records (the transaction sends them). */
  drain (): { alerts: OutputMessage[], tasks: OutputMessage[], outcomes: OutputMessage[], deadLetters: OutputMessage[], alertRecords: AlertRecord[], taskRecords: RecallTaskRecord[], erasedUsers: string[] } {
    const out = { ...this.drainMessages(), alertRecords: this.alertRecords, taskRecords: this.taskRecords, erasedUsers: this.erasedUsers }
    this.erasedUsers = []
    this.alertRecords = []
    this.taskRecords = []
    return out
  }

  /**
   * Takes the encoded outputs only (at-least-once sends them as soon as they are made); the
   * records for the API's recent view stay, for the commit that carries their input offsets.
   */
  drainMessages (): { alerts: OutputMessage[], tasks: OutputMessage[], outcomes: OutputMessage[], deadLetters: OutputMessage[] } {
    const out = { alerts: this.alerts, tasks: this.tasks, outcomes: this.outcomes, deadLetters: this.deadLetters }
    this.alerts = []
    this.tasks = []
    this.outcomes = []
    this.deadLetters = []
    return out
  }

  /** Buffered records are dropped: the transaction that would have carried them was aborted. */
  discard (): void { this.drain() }

  async flush (): Promise<void> {}
  async close (): Promise<void> {}
}

/** Decoders for tests and tools that read Ebb's output topics (raw Avro unless `format` says otherwise). */
export function decodeOutput (kind: OutputKind, value: Buffer, format: OutputFormat = 'avro'): unknown {
  if (format === 'json') return JSON.parse(value.toString('utf8'))
  if (format === 'confluent') {
    if (confluentSchemaId(value) < 0) throw new Error('not in the Confluent wire format (magic byte 0, schema id)')
    return outputTypes()[kind].fromBuffer(confluentBody(value))
  }
  return outputTypes()[kind].fromBuffer(value)
}

/**
 * A store batch that also records every operation for the changelog: the partition's store is
 * rebuilt from its compacted changelog by replaying the same puts and deletes (key = the store
 * key, value = its bytes, null = delete). Copies the bytes: callers pass scratch-buffer views.
 */
export class ChangelogBatch implements StoreBatch {
  /** the commit's changelog records in order: the states (deferred ones included, once encoded), then the rest */
  get records (): OutputMessage[] { return this.states.records.length === 0 ? this.rest.records : this.states.records.concat(this.rest.records) }
  /**
   * Where a pipelined commit's states go as they are encoded (PartitionTask.prepareCommit's
   * `deferStates`): ahead of the rest in `records`; locally, given `newBatch`, into batches of
   * LOCAL_CHUNK operations of their own, written one at a time (write); else the same local batch.
   */
  readonly states: RecordingBatch
  private readonly rest: RecordingBatch
  private readonly chunks: StoreBatch[] = []
  constructor (private readonly inner: StoreBatch, newBatch?: () => StoreBatch) {
    const chunks = this.chunks
    let ops = 0
    this.states = new RecordingBatch(newBatch === undefined
      ? () => inner
      : () => {
          if (chunks.length === 0 || ops >= LOCAL_CHUNK) { chunks.push(newBatch()); ops = 0 }
          ops++
          return chunks[chunks.length - 1]
        })
    this.rest = new RecordingBatch(() => inner)
  }

  put (key: Buffer, value: Buffer): void { this.rest.put(key, value) }
  del (key: Buffer): void { this.rest.del(key) }
  /** An operation for the local store only (the changelog position itself). */
  putLocal (key: Buffer, value: Buffer): void { this.inner.put(key, value) }
  /**
   * The local write, once the changelog holds every record (the transaction committed): the
   * states' chunks first, one at a time with a turn of the event loop between them (the binding's
   * batch write is synchronous: 20k states in one batch held the event loop ~50 ms), then the
   * rest with the changelog position, atomically. A crash between two chunks leaves states newer
   * than the store's changelog position says: the restore reads the changelog from that position
   * and writes the same states again (the whole commit is there: it was one transaction), so the
   * store ends where this write would have. Nothing reads those states from the store meanwhile:
   * the cache keeps every one of them until the task's written().
   */
  async write (): Promise<void> {
    try {
      for (const c of this.chunks) {
        await c.write()
        await new Promise((resolve) => setImmediate(resolve))
      }
      await this.inner.write()
    } catch (err) {
      this.discard() // no native batch is left open under a store that closes next (the runner fails on this)
      throw err
    }
  }

  discard (): void { this.inner.discard(); this.rest.discard(); this.states.discard(); for (const c of this.chunks) c.discard(); this.chunks.length = 0 }
}

/** operations per local batch of a pipelined commit's states (~2 ms of RocksDB's synchronous write) */
const LOCAL_CHUNK = 1000

/** Operations into a local batch (`local()` says which), each also kept as a changelog record (copied). Written with its ChangelogBatch. */
class RecordingBatch implements StoreBatch {
  readonly records: OutputMessage[] = []
  constructor (private readonly local: () => StoreBatch) {}
  put (key: Buffer, value: Buffer): void { this.local().put(key, value); this.records.push({ key: Buffer.from(key), value: Buffer.from(value) }) }
  del (key: Buffer): void { this.local().del(key); this.records.push({ key: Buffer.from(key), value: null }) }
  async write (): Promise<void> { throw new Error('a commit\'s states are written with their ChangelogBatch') }
  /** forgets the records (the local operations go with the ChangelogBatch's discard) */
  discard (): void { this.records.length = 0 }
}
