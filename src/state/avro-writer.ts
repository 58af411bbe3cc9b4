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

  /** `bytes`: a length, then the 32-bit words little-endian. */
  wordsAsBytes (words: Int32Array | Uint32Array): void {
    this.long(words.length * 4)
    this.wordsAsFixed(words)
  }

  /** `fixed` of 4 × words.length bytes, little-endian. */
  wordsAsFixed (words: Int32Array | Uint32Array): void {
    this.ensure(words.length * 4)
    for (let i = 0; i < words.length; i++) { this.buf.writeUInt32LE(words[i] >>> 0, this.pos); this.pos += 4 }
  }

  double (x: number): void {
    this.ensure(8)
    this.buf.writeDoubleLE(x, this.pos)
    this.pos += 8
  }

  /** A copy of what was written since reset(). */
  take (): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos))
  }
}
