import type { KeyCursor, KvStore, StoreBatch } from './kv-store.js'

/**
 * An in-memory KvStore with RocksDB's semantics (byte-ordered keys, atomic batches), for the
 * topology test driver: no files, milliseconds per test. Keys are held as latin1 strings, whose
 * code-unit order is the byte order.
 */
export class MemoryStore implements KvStore {
  private readonly map = new Map<string, Buffer>()

  async getMany (keys: Buffer[]): Promise<Array<Buffer | undefined>> { return this.getManySync(keys) }

  getManySync (keys: Buffer[]): Array<Buffer | undefined> {
    return keys.map((k) => this.map.get(k.toString('latin1')))
  }

  scanSync (gte: Buffer, lte: Buffer): KeyCursor {
    const lo = gte.toString('latin1')
    const hi = lte.toString('latin1')
    const keys = [...this.map.keys()].filter((k) => k >= lo && k <= hi).sort()
    let i = 0
    return {
      next: (n: number) => {
        const out = keys.slice(i, i + n).map((k): [Buffer, Buffer] => [Buffer.from(k, 'latin1'), this.map.get(k) as Buffer])
        i += out.length
        return out
      },
      close: () => {}
    }
  }

  batch (): StoreBatch {
    const ops: Array<[string, Buffer | null]> = []
    return {
      put: (k, v) => { ops.push([k.toString('latin1'), Buffer.from(v)]) },
      del: (k) => { ops.push([k.toString('latin1'), null]) },
      write: async () => {
        for (const [k, v] of ops) { if (v === null) this.map.delete(k); else this.map.set(k, v) }
        ops.length = 0
      },
      discard: () => { ops.length = 0 }
    }
  }


  approximateSize (): number {
    let n = 0
    for (const [k, v] of this.map) n += k.length + v.length
    return n
  }

  get size (): number { return this.map.size }

  async close (): Promise<void> {}
}
