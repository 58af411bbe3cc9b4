import { describe, expect, it } from 'vitest'
import { murmur2 as platformaticMurmur2 } from '@platformatic/kafka'
import { murmur2, partitionOfKey } from '../../src/io/partitioner.js'

/**
 * `ebb replay --partitions N` must split users exactly as a Kafka producer does, or a replay would
 * not learn what `ebb run` learns per partition. Checked against another implementation of the
 * Java producer's murmur2 (@platformatic/kafka's), on keys of every length mod 4 and non-ASCII.
 */
describe('the Kafka default partitioner', () => {
  it('hashes like the Java producer (another implementation) and splits keys the same way', () => {
    for (let i = 0; i < 5000; i++) {
      const key = `u${i.toString(36)}${'x'.repeat(i % 4)}${i % 7 === 0 ? 'é用户😀' : ''}`
      expect(murmur2(Buffer.from(key, 'utf8'))).toBe(platformaticMurmur2(Buffer.from(key, 'utf8')) | 0)
      for (const n of [1, 2, 3, 12]) expect(partitionOfKey(key, n)).toBe((platformaticMurmur2(Buffer.from(key, 'utf8')) & 0x7fffffff) % n)
    }
    // the vectors of Kafka's own test of Utils.murmur2 (Java), so both implementations are pinned
    const java: Array<[string, number]> = [['21', -973932308], ['foobar', -790332482], ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829], ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971], ['abc', 479470107]]
    for (const [key, h] of java) expect(murmur2(Buffer.from(key))).toBe(h)
  })
})
