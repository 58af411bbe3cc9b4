import { EbbError, Errors } from '../errors.js'
import type { RejectedLine } from '../io/line-reader.js'
import type { DeadLetterSource } from '../io/records.js'

/**
 * A batch of raw input records from any source. Values are read by index and the source
 * position is built only for a record that goes to the dead letters, so a batch allocates
 * nothing per record.
 */
export interface RecordBatch {
  readonly length: number
  /** 'json' values are one JSON Lines record each; 'avro' values are raw Avro bodies */
  readonly format: 'json' | 'avro'
  value (i: number): string | Buffer
  source (i: number): DeadLetterSource
  /**
   * Why record i cannot be decoded before it is tried, or null when it can: a string is an
   * undecodable record (an unknown schema id, an empty value), an EbbError says its own reason
   * (a line too large).
   */
  rejection? (i: number): string | EbbError | null
  /** the record's bytes as received, for the dead letters, when value(i) is a part of them (framing removed) */
  raw? (i: number): Buffer
  /** when raw(i) is only the first bytes of the record: its whole length and SHA-256 */
  rawWhole? (i: number): { bytes: number, sha256: string } | undefined
  /** Kafka: the record's timestamp (CreateTime or LogAppendTime), ms; NaN when unknown */
  recordTime? (i: number): number
  /** Kafka: the record's key (the contract: its userId), null when it has none */
  key? (i: number): Buffer | null
}

/** Lines of a file (replay) or of an in-memory list (the test driver). */
export class LineBatch implements RecordBatch {
  readonly format = 'json' as const
  private readonly rejected: Map<number, RejectedLine> | undefined
  /**
   * `lines` as read; `lineNumbers` their 1-based numbers in the file, or the number of the first
   * when they are consecutive; `rejected` the lines the reader refused (too large, not UTF-8),
   * by their index in `lines`.
   */
  constructor (readonly lines: string[], readonly file: string, readonly lineNumbers: number[] | number, rejected?: readonly RejectedLine[]) {
    this.rejected = rejected === undefined || rejected.length === 0 ? undefined : new Map(rejected.map((r) => [r.index, r]))
  }

  get length (): number { return this.lines.length }
  value (i: number): string { return this.lines[i] }
  rejection (i: number): string | EbbError | null {
    const r = this.rejected?.get(i)
    if (r === undefined) return null
    return r.reason === 'too_large' ? new EbbError(Errors.EVENT_TOO_LARGE, r.bytes, r.limit) : 'the line is not valid UTF-8 (its exact bytes are in raw)'
  }

  raw (i: number): Buffer {
    const r = this.rejected?.get(i)
    return r === undefined ? Buffer.from(this.lines[i], 'utf8') : r.raw
  }

  rawWhole (i: number): { bytes: number, sha256: string } | undefined {
    const r = this.rejected?.get(i)
    return r === undefined || r.reason !== 'too_large' ? undefined : { bytes: r.bytes, sha256: r.sha256 }
  }

  /** The sub-batch of records [from, to) (replay --partitions). */
  slice (from: number, to: number): LineBatch {
    const numbers = typeof this.lineNumbers === 'number' ? this.lineNumbers + from : this.lineNumbers.slice(from, to)
    const rejected = this.rejected === undefined ? undefined : [...this.rejected.values()].filter((r) => r.index >= from && r.index < to).map((r) => ({ ...r, index: r.index - from }))
    return new LineBatch(this.lines.slice(from, to), this.file, numbers, rejected)
  }
  source (i: number): DeadLetterSource {
    const line = typeof this.lineNumbers === 'number' ? this.lineNumbers + i : this.lineNumbers[i]
    return { topic: null, partition: null, offset: null, file: this.file, line }
  }
}

/** Raw Avro bodies with Kafka-style positions (the benchmark, the embedded log; Kafka's own batches are KafkaBatch). */
export class AvroBatch implements RecordBatch {
  readonly format = 'avro' as const
  constructor (readonly values: Buffer[], readonly topic: string, readonly partition: number, readonly firstOffset: bigint) {}
  get length (): number { return this.values.length }
  value (i: number): Buffer { return this.values[i] }
  source (i: number): DeadLetterSource {
    return { topic: this.topic, partition: this.partition, offset: String(this.firstOffset + BigInt(i)), file: null, line: null }
  }
}
