/**
 * A minimal Avro binary writer into one reusable scratch buffer: zig-zag varints, strings,
 * bytes, fixed, doubles. The state is flushed for every dirty user at every commit, and going
 * through avsc's object model (building a record, arrays and Buffers per user) cost more than
 * the RocksDB write itself. state-codec.ts uses it to write exactly what avsc would write for
 * the same record (test/unit/state-codec.test.ts compares the bytes).
 */
export class AvroWriter {
  private buf = Buffer.allocUnsafe(4096)
  pos = 0

  /** Starts a record; `capacity` bytes are then available without further checks (fixed-size fields). */
  reset (capacity = 0): void {
    this.pos = 0
    this.ensure(capacity)
  }

  ensure (n: number): void {
    if (this.pos + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n))
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
  }

  /** int or long, as a zig-zag varint; exact for |n| < 2^53. The caller has ensured 10 bytes. */
  long (n: number): void {
    const b = this.buf
    if (n >= -0x40000000 && n < 0x40000000) {
      // Fits 31 bits after zig-zag: integer ops, no float division (most fields: counts, days).
      let z = (n << 1) ^ (n >> 31)
      while (z >= 0x80) {
        b[this.pos++] = (z & 0x7f) | 0x80
        z >>>= 7
      }
      b[this.pos++] = z
      return
    }
    let z = n >= 0 ? n * 2 : -n * 2 - 1
    while (z >= 0x80) {
      b[this.pos++] = (z % 0x80) | 0x80
      z = Math.floor(z / 0x80)
    }
    b[this.pos++] = z
  }

  /** Bytes written elsewhere (a cached encoding), copied in. */
  raw (bytes: Buffer): void {
    this.ensure(bytes.length)
    bytes.copy(this.buf, this.pos)
    this.pos += bytes.length
  }

  string (s: string): void {
    const n = Buffer.byteLength(s)
    this.ensure(n + 10)
    this.long(n)
    this.buf.write(s, this.pos)
    this.pos += n
  }

  /** `bytes`: a length, then n 16-bit words from `from`, little-endian. */
  u16AsBytes (words: Uint16Array, from: number, n: number): void {
    this.long(n * 2)
    this.u16AsFixed(words, from, n)
  }

  /** `fixed` of 2n bytes: n 16-bit words from `from`, little-endian. */
  u16AsFixed (words: Uint16Array, from: number, n: number): void {
    this.ensure(n * 2)
    const b = this.buf
    let p = this.pos
    for (let i = from; i < from + n; i++) { const w = words[i]; b[p++] = w & 0xff; b[p++] = w >>> 8 }
    this.pos = p
  }

  /** 10 bytes for the varint of each of `items` values (the caller writes them next). */
  reserveVarints (items: number): void { this.ensure(items * 10) }

  double (x: number): void {
    this.ensure(8)
    this.buf.writeDoubleLE(x, this.pos)
    this.pos += 8
  }

  /** What was written since reset(), as a view valid until the next reset(). */
  view (): Buffer {
    return this.buf.subarray(0, this.pos)
  }

  /** A copy of what was written since reset(). */
  take (): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos))
  }
}
