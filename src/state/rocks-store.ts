import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { RocksLevel } from '@nxtedition/rocksdb'
import { EbbError, Errors } from '../errors.js'
import type { KeyCursor, KvStore, StoreBatch } from './kv-store.js'
import { makeDirectory } from '../io/make-directory.js'

/**
 * RocksDB through @nxtedition/rocksdb (abstract-level). Batched async reads for the hot path;
 * the binding's synchronous multi-get, iterator and write-batch entry points (`_getManySync`,
 * `_nextvSync`, `_writeSync`, part of @nxtedition/rocksdb 12.x, pinned in package.json) serve
 * the timer path, which must not await (see kv-store.ts), and its raw batch calls serve commits.
 */
interface SyncIterator { _nextvSync (n: number, o: object): { rows: Array<Buffer | undefined>, finished: boolean }, _closeSync (): void }
interface SyncDb { _getManySync (keys: Buffer[], o: object): Array<Buffer | undefined> }
interface RawBatch { _put (k: Buffer, v: Buffer, o: object): void, _del (k: Buffer, o: object): void, _writeSync (o: object): void, _closeSync (): void }
const NO_OPTIONS = {}

/** Bytes of the files in a (closed) store directory: SST files, WAL, manifest, options. */
export function directoryBytes (dir: string): number {
  const active = activeDir(dir)
  let n = 0
  for (const f of readdirSync(active)) {
    const st = statSync(join(active, f))
    if (st.isFile()) n += st.size
  }
  return n
}

/**
 * Where a store's RocksDB files are: the store directory itself, until an ERASE made the store
 * rewrite them into a generation subdirectory (`gen-<n>`), named by the `STORE` file. Writing
 * that file (write, then rename) is the instant a rewrite takes effect: a crash before it keeps
 * the old files, a crash after it leaves only old files to delete at the next open.
 */
const POINTER = 'STORE'
const ROCKS_FILE = /^(\d+\.(sst|log|blob|dbtmp)|MANIFEST-\d+|CURRENT|IDENTITY|LOCK|OPTIONS-\d+(\.dbtmp)?|LOG(\.old\.\d+)?)$/

/** The generation subdirectory the `STORE` file names, or null while the files are at the top. */
function generation (dir: string): string | null {
  const p = join(dir, POINTER)
  return existsSync(p) ? readFileSync(p, 'utf8').trim() : null
}

function activeDir (dir: string): string {
  const gen = generation(dir)
  return gen === null ? dir : join(dir, gen)
}

/** Removes what an interrupted or finished rewrite left: other generations, and the top-level files once a generation is active. */
function tidy (dir: string): void {
  const active = generation(dir)
  for (const f of readdirSync(dir)) {
    if (/^gen-\d+$/.test(f) && f !== active) rmSync(join(dir, f), { recursive: true, force: true })
    else if (active !== null && ROCKS_FILE.test(f)) rmSync(join(dir, f), { force: true })
  }
}

/**
 * The settled size of a closed store: reopening replays the write-ahead log into SST files
 * (RocksDB flushes recovered memtables), so overwritten values no longer count. Right after a
 * close the WAL still holds every value written since the last memtable flush.
 */
export async function settledDirectoryBytes (dir: string): Promise<number> {
  const store = await RocksStore.open(dir)
  await store.close()
  return directoryBytes(dir)
}

export class RocksStore implements KvStore {
  private constructor (private db: RocksLevel<Buffer, Buffer>, readonly dir: string) {}

  static async open (dir: string): Promise<RocksStore> {
    try {
      makeDirectory(dir)
    } catch (err) {
      throw new EbbError(Errors.OUTPUT_NOT_WRITABLE, dir, (err as Error).message)
    }
    const db = await openDb(activeDir(dir), dir)
    try {
      tidy(dir)
    } catch (err) {
      await db.close()
      throw new EbbError(Errors.STORE_IO, `tidying ${dir}: ${(err as Error).message}`)
    }
    return new RocksStore(db, dir)
  }

  /**
   * Copies every live key into a new generation and drops the old files: deleted values (an
   * erased user's state, their tombstones, old values in the write-ahead log) are in no file
   * afterwards. The binding has no compactRange; a copy is O(live data) and ERASEs are rare.
   */
  async purgeDeleted (): Promise<void> {
    const gen = generation(this.dir)
    const name = `gen-${gen === null ? 1 : Number(gen.slice('gen-'.length)) + 1}`
    const to = join(this.dir, name)
    rmSync(to, { recursive: true, force: true })
    try {
      const fresh = new RocksStore(await openDb(to, this.dir), to)
      const all = this.cursor({})
      try {
        for (let rows = all.next(4096); rows.length > 0; rows = all.next(4096)) {
          const b = fresh.batch()
          for (const [k, v] of rows) b.put(k, v)
          await b.write()
        }
      } finally {
        all.close()
        await fresh.close()
      }
      await this.db.close()
      writeFileSync(join(this.dir, POINTER + '.tmp'), name)
      renameSync(join(this.dir, POINTER + '.tmp'), join(this.dir, POINTER))
      tidy(this.dir)
      this.db = await openDb(to, this.dir)
    } catch (err) {
      if (err instanceof EbbError) throw err
      throw new EbbError(Errors.STORE_IO, `rewriting ${this.dir} without erased users: ${(err as Error).message}`)
    }
  }

  async getMany (keys: Buffer[]): Promise<Array<Buffer | undefined>> {
    if (keys.length === 0) return []
    return await this.db.getMany(keys)
  }

  getManySync (keys: Buffer[]): Array<Buffer | undefined> {
    if (keys.length === 0) return []
    return (this.db as unknown as SyncDb)._getManySync(keys, {})
  }

  scanSync (gte: Buffer, lte: Buffer): KeyCursor { return this.cursor({ gte, lte }) }

  /** Key–value rows in key order, within `range` (all of them with no bounds). */
  private cursor (range: { gte?: Buffer, lte?: Buffer }): KeyCursor {
    const it = this.db.iterator({ ...range, keys: true, values: true }) as unknown as SyncIterator
    let done = false
    return {
      next (n: number): Array<[Buffer, Buffer]> {
        if (done) return []
        const { rows, finished } = it._nextvSync(n, {})
        done = finished
        const out: Array<[Buffer, Buffer]> = []
        for (let i = 0; i < rows.length; i += 2) out.push([rows[i] as Buffer, rows[i + 1] as Buffer])
        return out
      },
      close (): void { it._closeSync() }
    }
  }

  /**
   * A native WriteBatch. The binding's `_put`/`_del` copy the bytes into the batch at once and
   * skip abstract-level's per-operation checks and events, which cost more than RocksDB itself
   * (building a batch of 3M operations: ~8 s through `put`, ~2.5 s through `_put`, measured).
   * Keys and values are always Buffers here, so those checks have nothing to catch.
   */
  batch (): StoreBatch {
    const raw = this.db.batch() as unknown as RawBatch
    let open = true
    const close = (): void => { if (open) { open = false; raw._closeSync() } }
    return {
      put (k: Buffer, v: Buffer): void { raw._put(k, v, NO_OPTIONS) },
      del (k: Buffer): void { raw._del(k, NO_OPTIONS) },
      async write (): Promise<void> {
        try {
          raw._writeSync(NO_OPTIONS)
        } finally {
          close()
        }
      },
      discard: close
    }
  }

  /** SST files plus memtables; an open store's memtable arena makes this large until a flush. */
  approximateSize (): number {
    const live = Number(this.db.getProperty('rocksdb.total-sst-files-size'))
    const mem = Number(this.db.getProperty('rocksdb.cur-size-all-mem-tables'))
    return (Number.isFinite(live) ? live : 0) + (Number.isFinite(mem) ? mem : 0)
  }

  async close (): Promise<void> { await this.db.close() }
}

async function openDb (path: string, dir: string): Promise<RocksLevel<Buffer, Buffer>> {
  const db = new RocksLevel<Buffer, Buffer>(path, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
  try {
    // The write-ahead log uncompressed (the binding's default is zstd): it is written inside the
    // commit's synchronous batch write, which the event loop waits for, and it is deleted once
    // its memtable is flushed. The tables stay compressed. bench/README.md, "RocksDB options".
    await db.open({ infoLogLevel: 'error', walCompression: false } as object)
  } catch (err) {
    const cause = (err as { cause?: Error }).cause?.message ?? (err as Error).message
    if (/lock/i.test(cause)) throw new EbbError(Errors.STATE_LOCKED, dir, cause)
    throw new EbbError(Errors.STORE_IO, `opening ${dir}: ${cause}`)
  }
  return db
}
