import { type Batch, Kafka, logLevel } from 'kafkajs'
import { count, Progress, rate } from '../src/cli/progress.js'
import { decodeAvroEvent, encodeAvroEvent } from '../src/events/avro.js'
import { kafkajsConfig } from '../src/kafka/kafkajs-client.js'
import { ensureBroker, produceBacklog, stopBroker } from './kafka-env.js'

/**
 * clients: the consume → produce loop of `ebb run` in at-least-once mode, with each client:
 * consume a backlog of N Avro events as a group member, decode every record, produce one record
 * per input (re-encoded: the size of an output) to an output topic in batches, and commit the
 * group offsets after each batch's produce is acknowledged. The engine is left out on purpose: it
 * costs the same with either client and would hide the difference this suite is for.
 *
 * kafkajs is the client the product is specified with (maintenance mode since 2023);
 * @platformatic/kafka is the actively developed pure-JS alternative (engines: Node ≥ 22; it runs
 * here on Node 20, which this suite proves each time it runs).
 */
export async function benchClients (o: { events: number, partitions: number }, log: (s: string) => void): Promise<Record<string, number | string>> {
  const broker = ensureBroker()
  const kafka = new Kafka({ ...kafkajsConfig({ brokers: [broker.bootstrap], ssl: false, sasl: null }, 'ebb-bench-clients'), logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  const out: Record<string, number | string> = { events: o.events, partitions: o.partitions }
  try {
    const run = `bench-clients-${Date.now()}`
    const input = `${run}.events`
    await admin.createTopics({ topics: [{ topic: input, numPartitions: o.partitions }] })
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    const { produced } = await produceBacklog(producer, input, o.events, 7, 9, 'bench clients')
    await producer.disconnect()
    log(`clients: ${count(produced)} events in ${input}`)
    for (const client of ['kafkajs', 'platformatic'] as const) {
      const output = `${run}.${client}.out`
      await admin.createTopics({ topics: [{ topic: output, numPartitions: o.partitions }] })
      const t0 = performance.now()
      const n = client === 'kafkajs'
        ? await loopKafkajs(kafka, input, output, `${run}-${client}`, produced)
        : await loopPlatformatic(broker.bootstrap, input, output, `${run}-${client}`, produced)
      const secs = (performance.now() - t0) / 1000
      out[`${client}EventsPerSec`] = Math.round(n / secs)
      log(`clients: ${client}: ${count(n)} consumed → produced in ${secs.toFixed(1)} s (${rate(n, secs * 1000)})`)
    }
    out.platformaticToKafkajs = Math.round(Number(out.platformaticEventsPerSec) / Number(out.kafkajsEventsPerSec) * 100) / 100
  } finally {
    await admin.disconnect()
    if (broker.started) stopBroker()
  }
  return out
}

async function loopKafkajs (kafka: Kafka, input: string, output: string, group: string, total: number): Promise<number> {
  const consumer = kafka.consumer({ groupId: group, maxBytesPerPartition: 1 << 20, maxBytes: 8 << 20 })
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await Promise.all([consumer.connect(), producer.connect()])
  await consumer.subscribe({ topic: input, fromBeginning: true })
  let done = 0
  const progress = new Progress('bench clients')
  const finished = new Promise<void>((resolve, reject) => {
    const onBatch = async (batch: Batch): Promise<void> => {
      const messages = new Array<{ key: Buffer | null, value: Buffer }>(batch.messages.length)
      for (let i = 0; i < batch.messages.length; i++) {
        const m = batch.messages[i]
        messages[i] = { key: m.key, value: encodeAvroEvent(decodeAvroEvent(m.value as Buffer)) }
      }
      // ≤ 2,000 messages a request, as the platformatic loop does: a whole fetched batch
      // (~1 MB in, more out) would pass the broker's max.message.bytes.
      for (let i = 0; i < messages.length; i += 2000) await producer.send({ topic: output, acks: -1, messages: messages.slice(i, i + 2000) })
      await consumer.commitOffsets([{ topic: input, partition: batch.partition, offset: (BigInt(batch.lastOffset()) + 1n).toString() }])
      done += batch.messages.length
      progress.tick(() => `kafkajs: ${count(done)} of ${count(total)}`)
      if (done >= total) resolve()
    }
    consumer.run({
      autoCommit: false,
      // A failed batch fails the suite (kafkajs alone would restart the consumer and retry).
      eachBatch: async ({ batch }) => { await onBatch(batch).catch((err: unknown) => { reject(err as Error); throw err }) }
    }).catch(reject)
  })
  await finished
  await Promise.all([consumer.disconnect(), producer.disconnect()])
  return done
}

/**
 * @platformatic/kafka declares Node ≥ 22 and calls Promise.withResolvers (Node 22); the product is
 * pinned to Node 20, so the bench supplies that one function (the spec's semantics) before loading it.
 */
function polyfillForNode20 (): void {
  const P = Promise as unknown as { withResolvers?: () => unknown }
  if (typeof P.withResolvers === 'function') return
  P.withResolvers = () => {
    let resolve: ((v: unknown) => void) | undefined
    let reject: ((e: unknown) => void) | undefined
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

async function loopPlatformatic (bootstrap: string, input: string, output: string, group: string, total: number): Promise<number> {
  polyfillForNode20()
  const { Consumer, Producer } = await import('@platformatic/kafka')
  const consumer = new Consumer({ groupId: group, clientId: `${group}-c`, bootstrapBrokers: [bootstrap] })
  const producer = new Producer({ clientId: `${group}-p`, bootstrapBrokers: [bootstrap], idempotent: true })
  const stream = await consumer.consume({ topics: [input], mode: 'earliest', autocommit: false, maxBytes: 8 << 20, maxBytesPerPartition: 1 << 20, maxWaitTime: 500 })
  let done = 0
  const progress = new Progress('bench clients')
  // The stream yields one message at a time: batches are what arrived since the last send, as
  // Ebb's runner would gather them (one produce and one commit per batch, like the kafkajs loop).
  let pending: Array<{ key: Buffer, value: Buffer, topic: string }> = []
  let last: { commit: () => void | Promise<void> } | undefined
  let sending: Promise<void> = Promise.resolve()
  const flush = async (): Promise<void> => {
    if (pending.length === 0) return
    const messages = pending
    const commit = last
    pending = []
    await producer.send({ messages, acks: -1 })
    await commit?.commit()
    done += messages.length
    progress.tick(() => `platformatic: ${count(done)} of ${count(total)}`)
  }
  let consumed = 0
  for await (const m of stream) {
    pending.push({ key: m.key, value: encodeAvroEvent(decodeAvroEvent(m.value)), topic: output })
    last = m
    if (pending.length >= 2000) { await sending; sending = flush() }
    if (++consumed >= total) break
  }
  await sending
  await flush()
  await stream.close()
  await Promise.all([consumer.close(true), producer.close()])
  return done
}
