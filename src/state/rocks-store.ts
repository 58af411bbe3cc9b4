import { mkdirSync } from 'node:fs'
import { RocksLevel } from '@nxtedition/rocksdb'
import { EbbError, Errors } from '../errors.js'
import type { KeyCursor, KvStore } from './kv-store.js'

/**
 * RocksDB through @nxtedition/rocksdb (abstract-level). Batched async reads for the hot path;
 * the binding's synchronous multi-get, iterator and write-batch entry points (`_getManySync`,
 * `_nextvSync`, `_writeSync`, part of @nxtedition/rocksdb 12.x, pinned in package.json) serve
 * the timer path, which must not await (see kv-store.ts).
 */
interface SyncIterator { _nextvSync (n: number, o: object): { rows: Array<Buffer | undefined>, finished: boolean }, _closeSync (): void }
interface SyncDb { _getManySync (keys: Buffer[], o: object): Array<Buffer | undefined> }

export class RocksStore implements KvStore {
  private constructor (private readonly db: RocksLevel<Buffer, Buffer>, readonly dir: string) {}

  static async open (dir: string): Promise<RocksStore> {
    try {
      mkdirSync(dir, { recursive: true })
    } catch (err) {
      throw new EbbError(Errors.OUTPUT_NOT_WRITABLE, dir, (err as Error).message)
    }
    const db = new RocksLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    try {
      await db.open({ infoLogLevel: 'error' } as object)
    } catch (err) {
      const cause = (err as { cause?: Error }).cause?.message ?? (err as Error).message
      if (/lock/i.test(cause)) throw new EbbError(Errors.STATE_LOCKED, dir, cause)
      throw new EbbError(Errors.STORE_IO, `opening ${dir}: ${cause}`)
    }
    return new RocksStore(db, dir)
  }

  async getMany (keys: Buffer[]): Promise<Array<Buffer | undefined>> {
    if (keys.length === 0) return []
    return await this.db.getMany(keys)
  }

  getManySync (keys: Buffer[]): Array<Buffer | undefined> {
    if (keys.length === 0) return []
    return (this.db as unknown as SyncDb)._getManySync(keys, {})
  }

  scanSync (gte: Buffer, lte: Buffer): KeyCursor {
    const it = this.db.iterator({ gte, lte, keys: true, values: false }) as unknown as SyncIterator
    let done = false
    return {
      nextKeys (n: number): Buffer[] {
        if (done) return []
        const { rows, finished } = it._nextvSync(n, {})
        done = finished
        const out: Buffer[] = []
        for (let i = 0; i < rows.length; i += 2) out.push(rows[i] as Buffer)
        return out
      },
      close (): void { it._closeSync() }
    }
  }

  async write (puts: ReadonlyArray<readonly [Buffer, Buffer]>, dels: readonly Buffer[]): Promise<void> {
    const batch = this.db.batch()
    for (const k of dels) batch.del(k)
    for (const [k, v] of puts) batch.put(k, v)
    await batch.write()
  }

  approximateSize (): number {
    const live = Number(this.db.getProperty('rocksdb.total-sst-files-size'))
    const mem = Number(this.db.getProperty('rocksdb.cur-size-all-mem-tables'))
    return (Number.isFinite(live) ? live : 0) + (Number.isFinite(mem) ? mem : 0)
  }

  async close (): Promise<void> { await this.db.close() }
}
