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
  /** why record i cannot be decoded before it is tried (an unknown schema id, an empty value); null when it can */
  rejection? (i: number): string | null
  /** the record's bytes as received, for the dead letters, when value(i) is a part of them (framing removed) */
  raw? (i: number): Buffer
}

/** Lines of a file (replay) or of an in-memory list (the test driver). */
export class LineBatch implements RecordBatch {
  readonly format = 'json' as const
  /** `lines` as read; `lineNumbers` their 1-based numbers in the file, or the number of the first when they are consecutive */
  constructor (readonly lines: string[], readonly file: string, readonly lineNumbers: number[] | number) {}
  get length (): number { return this.lines.length }
  value (i: number): string { return this.lines[i] }
  source (i: number): DeadLetterSource {
    const line = typeof this.lineNumbers === 'number' ? this.lineNumbers + i : this.lineNumbers[i]
    return { topic: null, partition: null, offset: null, file: this.file, line }
  }
}

/** Raw Avro bodies with Kafka-style positions (the benchmark, the embedded log, the Kafka source). */
export class AvroBatch implements RecordBatch {
  readonly format = 'avro' as const
  constructor (readonly values: Buffer[], readonly topic: string, readonly partition: number, readonly firstOffset: bigint) {}
  get length (): number { return this.values.length }
  value (i: number): Buffer { return this.values[i] }
  source (i: number): DeadLetterSource {
    return { topic: this.topic, partition: this.partition, offset: String(this.firstOffset + BigInt(i)), file: null, line: null }
  }
}
