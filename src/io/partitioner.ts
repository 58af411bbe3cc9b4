/**
 * The partition a Kafka producer's default partitioner gives a keyed record: murmur2 of the key's
 * UTF-8 bytes (Kafka's Java implementation: seed 0x9747b28c, m 0x5bd1e995, r 24), made positive,
 * modulo the partition count. `ebb replay --partitions N` splits users with it, so a replay runs
 * the very partitions (and per-partition learning) that `ebb run` runs on an N-partition topic.
 */
export function murmur2 (data: Uint8Array): number {
  const m = 0x5bd1e995
  const length = data.length
  let h = 0x9747b28c ^ length
  const whole = length & ~3
  for (let i = 0; i < whole; i += 4) {
    let k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
    k = Math.imul(k, m)
    k ^= k >>> 24
    k = Math.imul(k, m)
    h = Math.imul(h, m) ^ k
  }
  const rest = length & 3
  if (rest === 3) h ^= data[whole + 2] << 16
  if (rest >= 2) h ^= data[whole + 1] << 8
  if (rest >= 1) { h ^= data[whole]; h = Math.imul(h, m) }
  h ^= h >>> 13
  h = Math.imul(h, m)
  h ^= h >>> 15
  return h | 0
}

/** The partition of a userId among `partitions`, as the Kafka producer computes it. */
export function partitionOfKey (key: string, partitions: number): number {
  return (murmur2(Buffer.from(key, 'utf8')) & 0x7fffffff) % partitions
}
