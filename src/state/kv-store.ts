/**
 * The bytes store under the state: RocksDB in production, memory in the topology test driver.
 * Keys are bytes and iterate in byte order (the timer index depends on that).
 *
 * Reads come in two shapes. `getMany` is the normal one: a batch's cache misses, awaited once
 * before the batch's synchronous loop. `getManySync` and `scanSync` exist for the timer path,
 * which must fire at an exact point inside a batch (between two events) to stay deterministic,
 * and so cannot await; it reads in chunks of many keys, so the blocking cost is amortised.
 */
export interface KeyCursor {
  /** up to `n` next entries (key, value), in key order; an empty array at the end */
  next (n: number): Array<[Buffer, Buffer]>
  close (): void
}

/**
 * An atomic batch being built. put/del copy the bytes they are given before returning, so
 * callers may pass views into a scratch buffer they reuse (the commit path allocates nothing
 * per user that way).
 */
export interface StoreBatch {
  put (key: Buffer, value: Buffer): void
  del (key: Buffer): void
  /** applies every operation atomically, or none */
  write (): Promise<void>
  /** drops the operations */
  discard (): void
}

export interface KvStore {
  batch (): StoreBatch
  getMany (keys: Buffer[]): Promise<Array<Buffer | undefined>>
  getManySync (keys: Buffer[]): Array<Buffer | undefined>
  /** keys in [gte, lte], in byte order */
  scanSync (gte: Buffer, lte: Buffer): KeyCursor
  /** bytes on disk (approximate), for the benchmark and metrics */
  approximateSize (): number
  /**
   * Makes deleted values leave the files (an ERASE): RocksDB keeps them in its write-ahead log
   * and tables until a compaction reaches them. Absent for stores with no files.
   */
  purgeDeleted? (): Promise<void>
  close (): Promise<void>
}
