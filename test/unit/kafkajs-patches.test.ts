import { readFileSync } from 'node:fs'
import { createRequire, Module } from 'node:module'
import { describe, expect, it } from 'vitest'
import '../../src/kafka/kafkajs-client.js'
import { groupingModulePath, groupMessagesPerPartition, kafkajsGroupingPatched } from '../../src/kafka/kafkajs-patches.js'

const require = createRequire(import.meta.url)

describe('the kafkajs producer patch (one-pass grouping by partition)', () => {
  it('is in effect once the Kafka client module is loaded', () => {
    expect(groupingModulePath).not.toBeNull()
    expect(kafkajsGroupingPatched()).toBe(true)
    expect(require.cache[groupingModulePath as string]?.exports).toBe(groupMessagesPerPartition)
  })

  it('groups exactly as the kafkajs function it replaces: same partitions, same order within each', () => {
    // The original, compiled from kafkajs' own file (the require cache holds the patch under its path).
    const path = groupingModulePath as string
    const original = new Module(path) as Module & { _compile: (src: string, file: string) => void }
    original._compile(readFileSync(path, 'utf8'), path)
    const kafkajsGrouping = original.exports as typeof groupMessagesPerPartition
    const partitionMetadata = [{}, {}, {}, {}]
    const partitioner = ({ message }: { message: { partition?: number, key?: string } }): number => message.partition ?? (message.key ?? '').length % 4
    const messages = Array.from({ length: 500 }, (_, i) => i % 3 === 0 ? { partition: i % 4, key: `k${i}` } : { key: 'x'.repeat(i % 7) })
    const ours = groupMessagesPerPartition({ topic: 't', partitionMetadata, messages, partitioner })
    expect(ours).toEqual(kafkajsGrouping({ topic: 't', partitionMetadata, messages, partitioner }))
    expect(Object.values(ours).reduce((n, l) => n + l.length, 0)).toBe(500)
    expect(groupMessagesPerPartition({ topic: 't', partitionMetadata: [], messages, partitioner })).toEqual({})
  })
})
