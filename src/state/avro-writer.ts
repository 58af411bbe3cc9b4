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

  reset (): void { this.pos = 0 }

  private ensure (n: number): void {
    if (this.pos + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n))
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
  }

  /** int or long, as a zig-zag varint; exact for |n| < 2^53. */
  long (n: number): void {
    this.ensure(10)
    let z = n >= 0 ? n * 2 : -n * 2 - 1
    const b = this.buf
    while (z >= 0x80) {
      b[this.pos++] = (z % 0x80) | 0x80
      z = Math.floor(z / 0x80)
    }
    b[this.pos++] = z
  }

  string (s: string): void {
    const n = Buffer.byteLength(s)
    this.long(n)
    this.ensure(n)
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
    for (let i = from; i < from + n; i++) { this.buf.writeUInt16LE(words[i], this.pos); this.pos += 2 }
  }

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
