import { encodeAvroEvent } from '../events/avro.js'
import { count, writeDays } from '../cli/progress.js'
import type { Simulator } from '../sim/simulator.js'
import { loadRunConfig } from './config.js'
import { kafkaCommand } from './client-errors.js'
import { PlatformaticClient } from './platformatic-client.js'

/**
 * `ebb simulate --kafka`: the simulated population as Avro ebb.UserEvent records, keyed by
 * userId (Java-compatible murmur2 partitioning, so a user's events land on one partition, as
 * any producer of the input topic must do), to the run configuration's input topic. A record's
 * timestamp is the time it is produced, or its event time when a simulation runs ahead of the
 * clock (Ebb refuses events dated more than time.future.maxAheadOfRecord after their record; a
 * timestamp in the past would let the topic's retention delete the record).
 */
export async function produceSimulation (sim: Simulator, days: number, configFile: string): Promise<number> {
  const c = loadRunConfig(configFile)
  const client = new PlatformaticClient(c, `${c.applicationId}-simulate`)
  return await kafkaCommand(c.brokers, 'ebb simulate', async () => {
    const admin = await client.admin()
    try {
      if (await admin.partitionCount(c.topics.input) === 0) {
        await admin.createTopics([{ topic: c.topics.input, partitions: c.topics.partitions, replicationFactor: c.topics.replicationFactor }])
      }
    } finally {
      await admin.close()
    }
    const producer = await client.producer({})
    let events: number
    try {
      events = await writeDays(sim.days(), days, 'produced', async (batch) => {
        for (let i = 0; i < batch.length; i += 10_000) {
          const slice = batch.slice(i, i + 10_000)
          const now = Date.now()
          await producer.send(c.topics.input, slice.map((e) => ({ key: e.userId, value: encodeAvroEvent(e), timestamp: Math.max(now, e.ts) })))
        }
      })
    } finally {
      await producer.close()
    }
    process.stdout.write(`simulate: ${count(events)} events produced to ${c.topics.input} on ${c.brokers.join(',')}\n`)
    return 0
  })
}
