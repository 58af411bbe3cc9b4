import { createRequire, Module } from 'node:module'

/**
 * One fix to kafkajs 2.2.4, applied before kafkajs loads (kafkajs-client.ts imports this module
 * first; nothing else in src/ imports kafkajs).
 *
 * kafkajs groups the messages of a produce request by partition with `[...current, message]`
 * for every message (src/producer/groupMessagesPerPartition.js): O(n²) element copies and as
 * much short-lived garbage per partition. A commit's changelog piece of ~3,000 records copies
 * ~4.5M elements and allocates ~36 MB of arrays, on the critical path of every transaction.
 * The same grouping in one pass takes its place in the require cache, so kafkajs' producer
 * picks it up when it loads. Other kafkajs versions are left alone.
 */
interface Message { partition?: number }
type Partitioner = (args: { topic: string, partitionMetadata: unknown[], message: Message }) => number

export function groupMessagesPerPartition ({ topic, partitionMetadata, messages, partitioner }: { topic: string, partitionMetadata: unknown[], messages: Message[], partitioner: Partitioner }): Record<number, Message[]> {
  if (partitionMetadata.length === 0) return {}
  const result: Record<number, Message[]> = {}
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message })
    const list = result[partition]
    if (list === undefined) result[partition] = [message]
    else list.push(message)
  }
  return result
}

const require = createRequire(import.meta.url)
export const KAFKAJS_PATCHED_VERSION = '2.2.4'
/** The file replaced, or null when the installed kafkajs is another version (nothing patched). */
export const groupingModulePath: string | null = (() => {
  const version = (require('kafkajs/package.json') as { version: string }).version
  if (version !== KAFKAJS_PATCHED_VERSION) return null
  const path = require.resolve('kafkajs/src/producer/groupMessagesPerPartition.js')
  if (require.cache[path] === undefined) {
    const m = new Module(path)
    m.filename = path
    m.loaded = true
    m.exports = groupMessagesPerPartition
    require.cache[path] = m
  }
  return path
})()

/** Whether kafkajs' producer uses the one-pass grouping (false if kafkajs loaded before this module). */
export function kafkajsGroupingPatched (): boolean {
  return groupingModulePath !== null && require.cache[groupingModulePath]?.exports === groupMessagesPerPartition
}
