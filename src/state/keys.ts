/**
 * Key layout of a partition's store (one RocksDB per partition task):
 *   's' ‖ userId            → ebb.UserState (Avro)
 *   't' ‖ dueMs (8 B, BE)   ‖ userId → empty: the timer index, byte order = due-time order
 *   'm' ‖ name              → task metadata (watermark)
 */
export const STATE_PREFIX = 0x73 // 's'
export const TIMER_PREFIX = 0x74 // 't'
export const META_PREFIX = 0x6d // 'm'

export function stateKey (userId: string): Buffer {
  const n = Buffer.byteLength(userId)
  const b = Buffer.allocUnsafe(1 + n)
  b[0] = STATE_PREFIX
  b.write(userId, 1)
  return b
}

export function timerKey (due: number, userId: string): Buffer {
  const n = Buffer.byteLength(userId)
  const b = Buffer.allocUnsafe(9 + n)
  b[0] = TIMER_PREFIX
  // Due times are positive epoch millis < 2^53: high and low 32-bit words, big-endian.
  b.writeUInt32BE(Math.floor(due / 0x100000000), 1)
  b.writeUInt32BE(due >>> 0, 5)
  b.write(userId, 9)
  return b
}

const scratch = Buffer.allocUnsafe(4096)

/**
 * The same keys written into one shared scratch buffer: the returned view is valid until the
 * next call. For the commit path, whose store batch copies the bytes at once.
 */
export function stateKeyView (userId: string): Buffer {
  if (Buffer.byteLength(userId) > 4000) return stateKey(userId)
  scratch[0] = STATE_PREFIX
  const n = scratch.write(userId, 1)
  return scratch.subarray(0, 1 + n)
}

export function timerKeyView (due: number, userId: string): Buffer {
  if (Buffer.byteLength(userId) > 4000) return timerKey(due, userId)
  scratch[0] = TIMER_PREFIX
  scratch.writeUInt32BE(Math.floor(due / 0x100000000), 1)
  scratch.writeUInt32BE(due >>> 0, 5)
  const n = scratch.write(userId, 9)
  return scratch.subarray(0, 9 + n)
}

export function timerKeyDue (key: Buffer): number {
  return key.readUInt32BE(1) * 0x100000000 + key.readUInt32BE(5)
}

export function timerKeyUser (key: Buffer): string {
  return key.toString('utf8', 9)
}

/** The first and last possible timer keys with due ≤ `until`. */
export function timerRange (until: number): [Buffer, Buffer] {
  const hi = Buffer.alloc(9 + 4, 0xff)
  hi[0] = TIMER_PREFIX
  hi.writeUInt32BE(Math.floor(until / 0x100000000), 1)
  hi.writeUInt32BE(until >>> 0, 5)
  return [Buffer.from([TIMER_PREFIX]), hi]
}

export function metaKey (name: string): Buffer {
  return Buffer.from('m' + name)
}
