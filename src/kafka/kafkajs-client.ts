// First: replaces a kafkajs module before kafkajs loads (see kafkajs-patches.ts).
import './kafkajs-patches.js'
import { AssignerProtocol, Kafka, type KafkaConfig, logLevel, Partitioners, type PartitionMetadata, type Producer } from 'kafkajs'
import { log } from '../log.js'
import type { AdminPort, BatchSendResult, GroupConsumerPort, InputRecord, KafkaClient, OutRecord, ProducerPort, SendPiece, SendResult, TopicSpec, TransactionPort } from './client.js'
import { EbbError, Errors } from '../errors.js'
import type { RunConfig } from './config.js'

/** kafkajs client settings from the run configuration; its logs go to pino as warnings. */
export function kafkajsConfig (c: Pick<RunConfig, 'brokers' | 'ssl' | 'sasl'> & Partial<Pick<RunConfig, 'client'>>, clientId: string): KafkaConfig {
  return {
    ...c.client,
    clientId,
    brokers: c.brokers,
    ssl: typeof c.ssl === 'boolean' ? c.ssl : { ca: c.ssl.ca === undefined ? undefined : [c.ssl.ca], cert: c.ssl.cert, key: c.ssl.key, passphrase: c.ssl.passphrase, rejectUnauthorized: c.ssl.rejectUnauthorized },
    ...(c.sasl === null ? {} : { sasl: c.sasl as KafkaConfig['sasl'] }),
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, level, log: entry }) => {
      const { message, ...extra } = entry
      // kafkajs retries what it logs as errors (coordinator loading, leader moves); Ebb logs
      // its own failures itself, so the client's messages are warnings.
      if (level <= logLevel.WARN && message !== BOUNDED_RETRIES_WARNING) log.warn({ component: 'kafkajs', namespace, ...extra }, message)
    }
  }
}

function results (meta: Array<{ partition: number, baseOffset?: string }>): SendResult[] {
  return meta.filter((m) => m.baseOffset !== undefined).map((m) => ({ partition: m.partition, baseOffset: BigInt(m.baseOffset as string) }))
}

function batchResults (meta: Array<{ topicName: string, partition: number, baseOffset?: string }>): BatchSendResult[] {
  return meta.filter((m) => m.baseOffset !== undefined).map((m) => ({ topic: m.topicName, partition: m.partition, baseOffset: BigInt(m.baseOffset as string) }))
}

const toTopicMessages = (pieces: SendPiece[]): Array<{ topic: string, messages: Array<{ key: Buffer | string | null, value: Buffer | null, partition?: number }> }> => pieces.map((p) => ({ topic: p.topic, messages: p.records }))

const toMessages = (records: OutRecord[]): Array<{ key: Buffer | string | null, value: Buffer | null, partition?: number, timestamp?: string }> =>
  records.map((r) => r.timestamp === undefined ? r as { key: Buffer | string | null, value: Buffer | null, partition?: number } : { key: r.key, value: r.value, partition: r.partition, timestamp: String(r.timestamp) })

/**
 * Retries of the transactional producer when `client:` sets none (with any retry setting there,
 * the producer takes the client's, kafkajs' defaults filling the rest). A transaction that starts
 * right after the last one committed finds the coordinator still writing that one's commit
 * markers: its first AddPartitionsToTxn is answered CONCURRENT_TRANSACTIONS for a few
 * milliseconds. kafkajs waits 300 ms (±20%, doubling) before it asks again; measured on this
 * machine, back-to-back transactions took 271 ms each, 260 of them in that wait, and 19 ms with a
 * first retry after 10 ms (the Java producer also retries this error after a few ms). Fifteen
 * retries doubling from 10 ms up to 1 s wait about 9 s in all, as kafkajs' default five from
 * 300 ms did: a broker that moves a leader is still ridden out inside the commit; a commit that
 * fails after that is an outage, which the runner rides out (README, "When the brokers go away").
 */
const TRANSACTION_RETRY = { initialRetryTime: 10, maxRetryTime: 1000, retries: 15 }

/** The transactional producer's retry settings: Ebb's when `client:` sets no retry, else the client's (undefined: kafkajs uses them). */
export function transactionalRetry (client: RunConfig['client'] | undefined): typeof TRANSACTION_RETRY | undefined {
  return client?.retry === undefined ? TRANSACTION_RETRY : undefined
}

/**
 * kafkajs warns at every start of an idempotent producer whose retries are bounded ("may
 * invalidate EoS guarantees"): a send that runs out of retries fails its transaction, which is
 * aborted and redone from the last commit, so nothing is written twice. Not logged.
 */
const BOUNDED_RETRIES_WARNING = 'Limiting retries for the idempotent producer may invalidate EoS guarantees'

/** The KafkaClient ports on kafkajs 2.x. */
export class KafkajsClient implements KafkaClient {
  private readonly kafka: Kafka
  private readonly partitioner = Partitioners.DefaultPartitioner()
  private metadata: PartitionMetadata[] = []

  constructor (private readonly config: Pick<RunConfig, 'brokers' | 'ssl' | 'sasl'> & Partial<Pick<RunConfig, 'client'>>, private readonly clientId: string) {
    this.kafka = new Kafka(kafkajsConfig(config, clientId))
  }

  async admin (): Promise<AdminPort> {
    const admin = this.kafka.admin()
    try {
      await admin.connect()
    } catch (err) {
      // Refused credentials are not an outage: retrying for retryTimeout would not change them.
      if ((err as Error).name === 'KafkaJSSASLAuthenticationError') throw new EbbError(Errors.KAFKA_AUTH, this.config.brokers.join(','), (err as Error).message)
      throw err
    }
    return {
      topics: async () => new Set(await admin.listTopics()),
      partitionCount: async (topic) => {
        if (!(await admin.listTopics()).includes(topic)) return 0
        const meta = await admin.fetchTopicMetadata({ topics: [topic] })
        return meta.topics[0]?.partitions.length ?? 0
      },
      createTopics: async (specs: TopicSpec[]) => {
        await admin.createTopics({
          waitForLeaders: true,
          topics: specs.map((t) => ({ topic: t.topic, numPartitions: t.partitions, replicationFactor: t.replicationFactor, configEntries: t.compact === true ? [{ name: 'cleanup.policy', value: 'compact' }] : [] }))
        })
      },
      endOffsets: async (topic) => new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, BigInt(o.high)])),
      committedOffsets: async (groupId, topic) => {
        const [t] = await admin.fetchOffsets({ groupId, topics: [topic] })
        return new Map((t?.partitions ?? []).map((o) => [o.partition, o.offset === '-1' ? null : BigInt(o.offset)]))
      },
      groupAssignments: async (groupId, topic) => {
        const { groups } = await admin.describeGroups([groupId])
        return (groups[0]?.members ?? []).filter((m) => m.memberAssignment.length > 0).map((m) => ({
          clientId: m.clientId,
          partitions: AssignerProtocol.MemberAssignment.decode(m.memberAssignment)?.assignment[topic] ?? []
        }))
      },
      groupMemberCount: async (groupId) => {
        const { groups } = await admin.describeGroups([groupId])
        return groups[0]?.members.length ?? 0
      },
      startOffsets: async (topic) => new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, BigInt(o.low)])),
      offsetsForTime: async (topic, ts) => {
        const [byTime, ends] = await Promise.all([admin.fetchTopicOffsetsByTimestamp(topic, ts), admin.fetchTopicOffsets(topic)])
        // A partition with no record at or after ts answers -1: its end.
        return new Map(byTime.map((o) => [o.partition, o.offset === '-1' ? BigInt(ends.find((e) => e.partition === o.partition)?.high ?? '0') : BigInt(o.offset)]))
      },
      setGroupOffsets: async (groupId, topic, offsets) => {
        await admin.setOffsets({ groupId, topic, partitions: [...offsets].map(([partition, offset]) => ({ partition, offset: offset.toString() })) })
      },
      deleteTopics: async (topics) => { await admin.deleteTopics({ topics }) },
      close: async () => { await admin.disconnect() }
    }
  }

  async producer (opts: { transactionalId?: string, onRequest?: (api: string, seconds: number) => void }): Promise<ProducerPort> {
    const producer: Producer = this.kafka.producer(opts.transactionalId === undefined
      ? { idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner }
      // 10 s as Kafka Streams sets for exactly-once (kafkajs: 60 s): a transaction left open by
      // an instance that died is aborted by the broker that soon, so what follows it on the
      // changelog becomes readable to a restore (read_committed stops at the first open one).
      : { transactionalId: opts.transactionalId, idempotent: true, maxInFlightRequests: 1, transactionTimeout: 10_000, createPartitioner: Partitioners.DefaultPartitioner, retry: transactionalRetry(this.config.client) })
    const onRequest = opts.onRequest
    if (onRequest !== undefined) producer.on(producer.events.REQUEST, (e) => { onRequest(e.payload.apiName, e.payload.duration / 1000) })
    await producer.connect()
    return {
      send: async (topic, records) => results(await producer.send({ topic, acks: -1, messages: toMessages(records) })),
      sendBatch: async (pieces) => batchResults(await producer.sendBatch({ acks: -1, topicMessages: toTopicMessages(pieces) })),
      transaction: async (): Promise<TransactionPort> => {
        const txn = await producer.transaction()
        return {
          sendBatch: async (pieces) => batchResults(await txn.sendBatch({ acks: -1, topicMessages: toTopicMessages(pieces) })),
          sendOffsets: async (groupId, topic, offsets) => { await txn.sendOffsets({ consumerGroupId: groupId, topics: [{ topic, partitions: offsets }] }) },
          commit: async () => { await txn.commit() },
          abort: async () => { await txn.abort() }
        }
      },
      close: async () => { await producer.disconnect() }
    }
  }

  async groupConsumer (opts: { groupId: string, topic: string, clientId?: string, fromBeginning: boolean }): Promise<GroupConsumerPort> {
    const kafka = opts.clientId === undefined ? this.kafka : new Kafka(kafkajsConfig(this.config, opts.clientId))
    let closed = false
    // A consumer that crashes restarts by itself (kafkajs), unless it was closed: a crash racing
    // the close (a broker outage) would otherwise schedule a restart after the close cleared the
    // last one, and that zombie member would rejoin the group, hold partitions nobody processes,
    // and — disconnected again — crash and restart in a loop (a chaos run stalled on it).
    const consumer = kafka.consumer({ groupId: opts.groupId, readUncommitted: false, maxBytesPerPartition: 1 << 20, maxBytes: 8 << 20, sessionTimeout: 10_000, heartbeatInterval: 1000, retry: { retries: 5, restartOnFailure: async () => !closed } })
    await consumer.connect()
    await consumer.subscribe({ topic: opts.topic, fromBeginning: opts.fromBeginning })
    // The second line of defence: a member that rejoins after it was closed is disconnected at once.
    consumer.on(consumer.events.GROUP_JOIN, () => {
      if (!closed) return
      log.warn({ groupId: opts.groupId }, 'a closed Kafka consumer rejoined its group; disconnecting it')
      void consumer.disconnect().catch(() => {})
    })
    return {
      onRebalancing: (cb) => { consumer.on(consumer.events.REBALANCING, () => { if (!closed) cb() }) },
      onAssigned: (cb) => { consumer.on(consumer.events.GROUP_JOIN, (e) => { if (!closed) cb(e.payload.memberAssignment[opts.topic] ?? []) }) },
      onCrash: (cb) => { consumer.on(consumer.events.CRASH, (e) => { cb(e.payload.restart, e.payload.error) }) },
      start: async (eachBatch) => {
        await consumer.run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          eachBatch: async ({ batch, heartbeat, isRunning, isStale, resolveOffset }) => {
            // A member that runs after it was stopped (a restart the client scheduled in a crash
            // that raced the stop) crashes here (retriable: false ends kafkajs' retries), and
            // restartOnFailure keeps it down.
            if (closed) throw Object.assign(new Error('the consumer was stopped'), { retriable: false })
            await eachBatch(
              { topic: batch.topic, partition: batch.partition, records: batch.messages as InputRecord[], lastOffset: batch.lastOffset(), highWatermark: batch.highWatermark },
              { resolve: (offset) => { resolveOffset(offset) }, heartbeat: async () => { await heartbeat() }, active: () => isRunning() && !isStale() }
            )
          }
        })
      },
      commitOffsets: async (topic, offsets) => { await consumer.commitOffsets(offsets.map((o) => ({ topic, ...o }))) },
      seek: (topic, partition, offset) => { consumer.seek({ topic, partition, offset: offset.toString() }) },
      stop: async () => { closed = true; await consumer.stop() },
      close: async () => { closed = true; await consumer.disconnect() }
    }
  }

  /**
   * Reads [from, end) of one partition, read_committed, where `end` is the offset after `last`.
   * kafkajs has no manual assignment: a throwaway group member subscribes to the topic, pauses
   * the partitions it does not want and seeks to `from`. The end is known only from the
   * batches' own offsets: kafkajs reports every fetched batch, including one left empty by
   * filtering (control records, aborted transactions), through END_BATCH_PROCESS with its last
   * offset, after `apply` has run for its records. (Its FETCH
   * event's numberOfBatches is always 0 in kafkajs 2.2: a restore that waited for "empty fetches"
   * stopped after three fetches, ~18k records.) No batch for `stallMs` is an error: the restore
   * is retried, never cut short silently.
   */
  async readPartition (topic: string, partition: number, from: bigint, last: bigint, apply: (records: InputRecord[]) => Promise<void>, stallMs = 30_000): Promise<void> {
    // 16 MB per fetch instead of kafkajs' 1 MB a partition: a restore reads one partition.
    // Once the read is over (done, failed or cut short), this throwaway member must never run
    // again: a restart the client scheduled after a crash (a broker outage mid-restore) would
    // fetch into a store that is closed by then. No restart once finished, and no batch applied.
    let finished = false
    const consumer = this.kafka.consumer({ groupId: `${this.clientId}-read-${topic}-${partition}-${Date.now()}`, readUncommitted: false, maxBytes: 16 << 20, maxBytesPerPartition: 16 << 20, retry: { retries: 5, restartOnFailure: async () => !finished } })
    let watchdog: NodeJS.Timeout | undefined
    try {
      await consumer.connect()
      await consumer.subscribe({ topic, fromBeginning: true })
      await new Promise<void>((resolve, reject) => {
        let position = from
        let lastProgress = Date.now()
        watchdog = setInterval(() => {
          if (Date.now() - lastProgress > stallMs) reject(new EbbError(Errors.RESTORE_STALLED, topic, partition, Math.round(stallMs / 1000), position, last + 1n))
        }, Math.min(1000, stallMs))
        consumer.on(consumer.events.GROUP_JOIN, (e) => {
          const others = (e.payload.memberAssignment[topic] ?? []).filter((p) => p !== partition)
          if (others.length > 0) consumer.pause([{ topic, partitions: others }])
        })
        consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
          if (e.payload.topic !== topic || e.payload.partition !== partition) return
          lastProgress = Date.now()
          const end = BigInt(e.payload.lastOffset) + 1n
          if (end > position) position = end
          if (position > last) resolve()
        })
        consumer.run({
          autoCommit: false,
          eachBatchAutoResolve: true,
          eachBatch: async ({ batch }) => {
            if (finished || batch.partition !== partition) return
            // Before the seek lands, the member may start at the beginning: skip what precedes `from`.
            const records = batch.messages as InputRecord[]
            const first = records.length === 0 ? from : BigInt(records[0].offset)
            try {
              await apply(first >= from ? records : records.filter((m) => BigInt(m.offset) >= from))
            } catch (err) {
              reject(err)
              throw err
            }
          }
        }).then(() => { consumer.seek({ topic, partition, offset: String(from) }) }).catch(reject)
      })
    } finally {
      finished = true
      clearInterval(watchdog)
      await consumer.disconnect().catch(() => {})
    }
  }

  partitionOf (topic: string, key: string, partitions: number): number {
    if (this.metadata.length !== partitions) {
      this.metadata = Array.from({ length: partitions }, (_, i) => ({ partitionErrorCode: 0, partitionId: i, leader: 1, replicas: [1], isr: [1] }))
    }
    return this.partitioner({ topic, partitionMetadata: this.metadata, message: { key, value: null } })
  }
}
