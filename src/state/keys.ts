/**
 * Key layout of a partition's store (one RocksDB per partition task):
 *   's' ‖ userId            → ebb.UserState (Avro)
 *   't' ‖ dueMs (8 B, BE)   ‖ seq (4 B, BE) → a bucket of user ids whose timer is due then
 *                          (the timer index: byte order = due-time order; see timer-service.ts)
 *   'm' ‖ name              → task metadata: stream time ('time'), the waiting future event ('held'),
 *                             erased users ('erased'), the rule-id map ('rules'), the churn learner
 *                             ('learner'); Kafka mode: input offset and changelog position
 */
export const STATE_PREFIX = 0x73 // 's'
export const TIMER_PREFIX = 0x74 // 't'
export const META_PREFIX = 0x6d // 'm'

function writeStateKey (b: Buffer, userId: string): number {
  b[0] = STATE_PREFIX
  return 1 + b.write(userId, 1)
}

/** A timer bucket's key: its due time and a sequence number unique within the partition. */
export function timerBucketKey (due: number, seq: number): Buffer {
  const b = Buffer.allocUnsafe(13)
  b[0] = TIMER_PREFIX
  b.writeUInt32BE(Math.floor(due / 0x100000000), 1)
  b.writeUInt32BE(due >>> 0, 5)
  b.writeUInt32BE(seq >>> 0, 9)
  return b
}

export function stateKey (userId: string): Buffer {
  const b = Buffer.allocUnsafe(1 + Buffer.byteLength(userId))
  writeStateKey(b, userId)
  return b
}

const scratch = Buffer.allocUnsafe(4096)
/** UTF-8 takes at most 3 bytes per UTF-16 code unit: ids this short always fit the scratch buffer. */
const SCRATCH_SAFE_LENGTH = Math.floor((scratch.length - 1) / 3)

/**
 * The state key written into one shared scratch buffer: the returned view is valid until the
 * next call. For the commit path, whose store batch copies the bytes at once.
 */
export function stateKeyView (userId: string): Buffer {
  if (userId.length > SCRATCH_SAFE_LENGTH) return stateKey(userId)
  return scratch.subarray(0, writeStateKey(scratch, userId))
}

export function timerKeyDue (key: Buffer): number {
  return key.readUInt32BE(1) * 0x100000000 + key.readUInt32BE(5)
}

export function metaKey (name: string): Buffer {
  return Buffer.from('m' + name)
}
