// The part of @nxtedition/rocksdb's abstract-level API that Ebb uses (the package ships no types).
declare module '@nxtedition/rocksdb' {
  interface Batch<K, V> { put (k: K, v: V): this, del (k: K): this, write (): Promise<void> }
  interface IteratorOptions<K> { gte?: K, lte?: K, gt?: K, lt?: K, keys?: boolean, values?: boolean, limit?: number }
  export class RocksLevel<K = Buffer, V = Buffer> {
    constructor (location: string, options?: { keyEncoding?: string, valueEncoding?: string })
    open (options?: object): Promise<void>
    close (): Promise<void>
    getMany (keys: K[]): Promise<Array<V | undefined>>
    batch (): Batch<K, V>
    iterator (options?: IteratorOptions<K>): unknown
    getProperty (name: string): string
    readonly status: string
  }
}
