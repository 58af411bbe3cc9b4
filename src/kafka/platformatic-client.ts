// First: Node 20 lacks one function the client calls (see node20.ts).
import './node20.js'
import { Admin, type BaseOptions, type ClusterMetadata, compatibilityPartitioner, Consumer, findErrorBy, kMetadata, kPerformWithRetry, murmur2, Producer, type SASLOptions } from '@platformatic/kafka'
import { EbbError, Errors } from '../errors.js'
import { log } from '../log.js'
import type { AdminPort, BatchControl, BatchSendResult, FetchedBatch, GroupConsumerPort, InputRecord, KafkaClient, OffsetCommit, OutRecord, ProducerPort, SendPiece, SendResult, TopicSpec, TransactionPort } from './client.js'
import { type RunConfig, transactionTimeoutMs } from './config.js'
import { errorText, findNestedError, kafkaRefusal } from './client-errors.js'
import { abortTransaction, apiOf, connectionTo, openTransactions } from './hanging-transactions.js'
import { abortable, withDeadline } from './waits.js'

/** a fetch's answer, as the client returns it */
type FetchResponse = Awaited<ReturnType<Consumer['fetch']>>

type ConnectionConfig = Pick<RunConfig, 'brokers' | 'ssl' | 'sasl'> & Partial<Pick<RunConfig, 'client'>>

const READ_COMMITTED = 1
const READ_UNCOMMITTED = 0
/**
 * Bytes a restore fetch asks for. Small fetches restore faster with this client: 400k records
 * (189 B each) restored at 242k / 307k / 309k / 292k / 184k / 83k records/s with 0.5 / 1 / 2 /
 * 4 / 16 / 64 MB fetches (`npm run bench -- restore --users 400000`, 12-06, same hour); a large
 * response is parsed in one piece on the main thread while nothing else moves. A record batch
 * larger than this still comes whole (the broker returns at least one batch).
 */
const RESTORE_FETCH_BYTES = 2 << 20
const EARLIEST = -2n
const LATEST = -1n
/** the attribute bit of a record batch that holds a transaction marker, not records */
const CONTROL_BATCH = 0x20

/**
 * Exponential backoff from `initial`, doubling, capped at `max` (the retry of `client:`).
 * `onRetry` sees each error the client is about to retry: the client retries a refused
 * handshake or credentials like any other failure, for many seconds, and only says why at the end.
 */
function backoff (initial: number, max: number, onRetry?: (err: Error) => void): (client: unknown, op: string, attempt: number, retries: number, err: Error) => number {
  return (_client, _op, attempt, _retries, err) => {
    onRetry?.(err)
    return Math.min(max, initial * 2 ** Math.max(0, attempt - 1))
  }
}

/**
 * @platformatic/kafka settings from the run configuration. `client:`: connectionTimeout →
 * connectTimeout, requestTimeout → timeout, retries/initialRetryTime/maxRetryTime → retries with
 * a retryDelay doubling from the first to the cap. `retry`: this producer's own defaults when
 * `client:` sets no retry (any retry setting there replaces them whole).
 */
export function platformaticOptions (c: ConnectionConfig, clientId: string, retry?: { retries: number, initialRetryTime: number, maxRetryTime: number }, onRetry?: (err: Error) => void): BaseOptions {
  const client = c.client ?? {}
  const r = client.retry ?? retry ?? {}
  const opts: BaseOptions = {
    clientId,
    bootstrapBrokers: c.brokers,
    connectTimeout: client.connectionTimeout ?? 3000,
    timeout: client.requestTimeout ?? 30_000,
    retries: r.retries ?? 5,
    retryDelay: backoff(r.initialRetryTime ?? 300, r.maxRetryTime ?? 30_000, onRetry),
    metadataMaxAge: 30_000
  }
  if (c.ssl !== false) opts.tls = c.ssl === true ? {} : { ca: c.ssl.ca, cert: c.ssl.cert, key: c.ssl.key, passphrase: c.ssl.passphrase, rejectUnauthorized: c.ssl.rejectUnauthorized }
  if (c.sasl !== null) opts.sasl = { mechanism: c.sasl.mechanism.toUpperCase() as SASLOptions['mechanism'], username: c.sasl.username, password: c.sasl.password }
  return opts
}

/**
 * Retries of the transactional producer when `client:` sets none. A transaction that starts
 * right after the last one committed finds the coordinator still writing that one's commit
 * markers: its first AddPartitionsToTxn is answered CONCURRENT_TRANSACTIONS for a few
 * milliseconds. Waiting 300 ms before asking again (kafkajs' default, measured here: 271 ms a
 * back-to-back transaction, 19 ms with a first retry after 10 ms) would set the latency; the
 * Java producer also retries this after a few ms. Fifteen retries doubling from 10 ms up to 1 s
 * wait about 9 s in all: a leader that moves is ridden out inside the commit; a commit that fails
 * after that is an outage, which the runner rides out (README, "When the brokers go away").
 */
const TRANSACTION_RETRY = { retries: 15, initialRetryTime: 10, maxRetryTime: 1000 }

/** The transactional producer's retry settings: Ebb's when `client:` sets no retry, else undefined (the client's settings apply). */
export function transactionalRetry (client: RunConfig['client'] | undefined): typeof TRANSACTION_RETRY | undefined {
  return client?.retry === undefined ? TRANSACTION_RETRY : undefined
}

const key = (k: Buffer | string | null): Buffer | undefined => k === null ? undefined : typeof k === 'string' ? Buffer.from(k) : k

function toMessages (topic: string, records: OutRecord[]): Array<{ topic: string, key?: Buffer, value?: Buffer, partition?: number, timestamp?: bigint }> {
  const out = new Array(records.length)
  for (let i = 0; i < records.length; i++) {
    const r = records[i]
    out[i] = { topic, key: key(r.key), value: r.value ?? undefined, partition: r.partition, timestamp: r.timestamp === undefined ? undefined : BigInt(r.timestamp) }
  }
  return out
}

function sendResults (offsets: Array<{ topic: string, partition: number, offset: bigint }> | undefined): BatchSendResult[] {
  return (offsets ?? []).map((o) => ({ topic: o.topic, partition: o.partition, baseOffset: o.offset }))
}

/** the attribute bit of a record batch written inside a transaction */
const TRANSACTIONAL_BATCH = 0x10

type FetchedPartition = FetchResponse['responses'][number]['partitions'][number]

/**
 * The records of one fetched partition, as the ports hand them over (read_committed): control
 * batches (transaction markers) skipped, the batches of aborted transactions skipped, records
 * before `from` dropped (a batch is returned whole even when the fetch offset lies inside it).
 * `end`: the offset after the last batch, records, markers or aborted.
 *
 * Aborted data is filtered here, as Java's consumer does, from the partition's list of aborted
 * transactions: a producer's batches are skipped from its aborted transaction's first offset up
 * to its ABORT marker. The client filters too, but keeps an aborted transaction whose marker is
 * not in the same response (a fetch that ends inside it, which small restore fetches make
 * likely) and only the last of several aborted transactions of one producer — Ebb writes every
 * commit with one transactional id, so both happen on its changelog.
 */
export function partitionRecords (part: Pick<FetchedPartition, 'records' | 'abortedTransactions'>, from: bigint): { records: InputRecord[], end: bigint } {
  const records: InputRecord[] = []
  let end = from
  const batches = part.records
  if (batches === null || batches === undefined) return { records, end }
  const aborted = [...(part.abortedTransactions ?? [])].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0))
  let nextAborted = 0
  const abortedProducers = new Set<bigint>()
  const fromNum = Number(from)
  for (const b of batches) {
    const lastOffset = b.firstOffset + BigInt(b.lastOffsetDelta)
    if (lastOffset + 1n > end) end = lastOffset + 1n
    while (nextAborted < aborted.length && aborted[nextAborted].firstOffset <= lastOffset) abortedProducers.add(aborted[nextAborted++].producerId)
    if ((b.attributes & CONTROL_BATCH) !== 0) {
      // An ABORT marker (control key: version, then type 0) ends its producer's aborted range.
      const key = b.records[0]?.key
      if (key !== null && key !== undefined && key.length >= 4 && key.readInt16BE(2) === 0) abortedProducers.delete(b.producerId)
      continue
    }
    if ((b.attributes & TRANSACTIONAL_BATCH) !== 0 && abortedProducers.has(b.producerId)) continue
    // Offsets and times fit a double exactly (< 2^53): no BigInt per record.
    const first = Number(b.firstOffset)
    const ts = Number(b.firstTimestamp)
    for (const r of b.records) {
      const offset = first + r.offsetDelta
      if (offset < fromNum) continue
      records.push({ offset: String(offset), key: r.key, value: r.value, timestamp: String(ts + Number(r.timestampDelta)) })
    }
  }
  return { records, end }
}

async function leaderOf (client: Consumer, topic: string, partition: number, force: boolean): Promise<{ node: number, topicId: string, metadata: ClusterMetadata }> {
  const metadata = await client.metadata({ topics: [topic], forceUpdate: force })
  const t = metadata.topics.get(topic)
  if (t === undefined) throw new Error(`topic ${topic} has no metadata`)
  return { node: t.partitions[partition].leader, topicId: t.id, metadata }
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/**
 * The KafkaClient ports on @platformatic/kafka (maintained, TypeScript, transactions with the
 * consumer group's generation: KIP-447 fencing). Group membership and heartbeats are the
 * client's; fetching is Ebb's own loop over the client's `fetch` (a second connection, so a
 * long poll never delays a heartbeat), which gives what the runner needs and the client's
 * message stream does not: batches per partition, a fetch position that moves only when the
 * runner resolves a batch, and seeks.
 */
export class PlatformaticClient implements KafkaClient {
  /** `onRetry`: each error a client of this one is about to retry by itself (see backoff) */
  constructor (private readonly config: ConnectionConfig, private readonly clientId: string, private readonly onRetry?: (err: Error) => void) {}

  private base (clientId = this.clientId, retry?: typeof TRANSACTION_RETRY): BaseOptions { return platformaticOptions(this.config, clientId, retry, this.onRetry) }

  async admin (): Promise<AdminPort> {
    const admin = new Admin(this.base())
    admin.on('error', (err: Error) => { log.warn({ component: 'kafka-admin', err: err.message }, 'Kafka admin client error') })
    try {
      await admin.metadata({ topics: [] })
    } catch (err) {
      await admin.close().catch(() => {})
      throw kafkaRefusal(err, this.config.brokers.join(',')) ?? err
    }
    const partitionsOf = async (topic: string): Promise<number[]> => {
      const meta = await admin.metadata({ topics: [topic], forceUpdate: true })
      const n = meta.topics.get(topic)?.partitionsCount ?? 0
      return Array.from({ length: n }, (_, i) => i)
    }
    const listOffsets = async (topic: string, timestamp: bigint, isolationLevel: typeof READ_COMMITTED | typeof READ_UNCOMMITTED = READ_COMMITTED): Promise<Map<number, bigint>> => {
      const parts = await partitionsOf(topic)
      const res = await admin.listOffsets({ topics: [{ name: topic, partitions: parts.map((p) => ({ partitionIndex: p, timestamp })) }], isolationLevel })
      return new Map((res[0]?.partitions ?? []).map((p) => [p.partitionIndex, p.offset]))
    }
    const describe = async (groupId: string): Promise<ReturnType<Admin['describeGroups']> extends Promise<infer G> ? G : never> => await admin.describeGroups({ groups: [groupId] })
    return {
      topics: async () => new Set(await admin.listTopics()),
      partitionCount: async (topic) => {
        if (!(await admin.listTopics()).includes(topic)) return 0
        return (await partitionsOf(topic)).length
      },
      createTopics: async (specs: TopicSpec[]) => {
        // One request per topic: each has its own partitions and configuration (the compacted changelog).
        for (const s of specs) {
          try {
            await admin.createTopics({ topics: [s.topic], partitions: s.partitions, replicas: s.replicationFactor, configs: [...(s.compact === true ? [{ name: 'cleanup.policy', value: 'compact' }] : []), ...Object.entries(s.configs ?? {}).map(([name, value]) => ({ name, value }))] })
          } catch (err) {
            // Another instance of the group created it first (they start together): that is the
            // topic wanted; its partition count is checked by the caller.
            if (findNestedError(err, (e) => e.apiId === 'TOPIC_ALREADY_EXISTS') === undefined) throw err
          }
        }
        // Wait for the leaders: a produce right after must find them.
        const deadline = Date.now() + 30_000
        for (const s of specs) {
          for (;;) {
            const meta = await admin.metadata({ topics: [s.topic], forceUpdate: true }).catch(() => undefined)
            const t = meta?.topics.get(s.topic)
            if (t !== undefined && t.partitions.length === s.partitions && t.partitions.every((p) => p.leader >= 0)) break
            if (Date.now() > deadline) throw new Error(`topic ${s.topic} has no leader for every partition after 30 s`)
            await sleep(100)
          }
        }
      },
      endOffsets: async (topic) => await listOffsets(topic, LATEST),
      highWatermarks: async (topic) => await listOffsets(topic, LATEST, READ_UNCOMMITTED),
      committedOffsets: async (groupId, topic) => {
        const parts = await partitionsOf(topic)
        // requireStable: an offset a transaction has sent but not yet committed is waited for
        // (the broker answers UNSTABLE_OFFSET_COMMIT, which the client retries), never read stale:
        // a restore compares it with the changelog, which read_committed also shows only once
        // that transaction ends.
        const res = await admin.listConsumerGroupOffsets({ groups: [{ groupId, topics: [{ name: topic, partitionIndexes: parts }] }], requireStable: true })
        const t = res[0]?.topics.find((x) => x.name === topic)
        return new Map(parts.map((p) => {
          const o = t?.partitions.find((x) => x.partitionIndex === p)?.committedOffset
          return [p, o === undefined || o < 0n ? null : o]
        }))
      },
      groupAssignments: async (groupId, topic) => {
        const g = (await describe(groupId)).get(groupId)
        return [...(g?.members.values() ?? [])].filter((m) => m.assignments !== undefined && m.assignments.size > 0).map((m) => ({
          clientId: m.clientId,
          partitions: [...(m.assignments?.get(topic)?.partitions ?? [])]
        }))
      },
      groupMemberCount: async (groupId) => (await describe(groupId)).get(groupId)?.members.size ?? 0,
      startOffsets: async (topic) => await listOffsets(topic, EARLIEST),
      offsetsForTime: async (topic, ts) => {
        const [byTime, ends] = await Promise.all([listOffsets(topic, BigInt(ts)), listOffsets(topic, LATEST)])
        // A partition with no record at or after ts answers -1: its end.
        return new Map([...byTime].map(([p, o]) => [p, o < 0n ? ends.get(p) ?? 0n : o]))
      },
      setGroupOffsets: async (groupId, topic, offsets) => {
        await admin.alterConsumerGroupOffsets({ groupId, topics: [{ name: topic, partitionOffsets: [...offsets].map(([partition, offset]) => ({ partition, offset })) }] })
      },
      deleteTopics: async (topics) => { await admin.deleteTopics({ topics }) },
      openTransactions: async (topic, partition) => await openTransactions(admin, topic, partition),
      abortTransaction: async (topic, partition, t) => { await abortTransaction(admin, topic, partition, t) },
      close: async () => { await closeWithin(async () => { await admin.close() }, 'the Kafka admin client') }
    }
  }

  async producer (opts: { transactionalId?: string, onRequest?: (api: string, seconds: number) => void }): Promise<ProducerPort> {
    const transactional = opts.transactionalId !== undefined
    const base = this.base(this.clientId, transactional ? transactionalRetry(this.config.client) : undefined)
    // The client sends its request timeout as the transaction timeout (config.ts, transactionTimeoutMs).
    if (transactional) base.timeout = transactionTimeoutMs({ client: this.config.client ?? {} })
    const producer = new Producer({
      ...base,
      idempotent: true,
      acks: -1,
      // Java's partitioner (murmur2 of the key, positive, modulo the partitions; the client's own
      // default reads the hash unsigned, which moves half the keys elsewhere unless the partition
      // count is a power of two):
      // a user's records land where any other Kafka client would put them.
      partitioner: compatibilityPartitioner,
      ...(transactional ? { transactionalId: opts.transactionalId } : {})
    })
    producer.on('error', (err: Error) => { log.warn({ component: 'kafka-producer', err: err.message }, 'Kafka producer error') })
    const timed = async <T>(api: string, f: () => Promise<T>): Promise<T> => {
      if (opts.onRequest === undefined) return await f()
      const t0 = performance.now()
      const out = await f()
      opts.onRequest(api, (performance.now() - t0) / 1000)
      return out
    }
    try {
      if (transactional) {
        // As Java's initTransactions(): the producer id of this transactional id, with its epoch
        // bumped, at start. The bump fences an earlier incarnation (a process that was killed)
        // and aborts its open transaction. -1/-1 asks for that; the client's default (0/0)
        // is refused as fenced once the id has been used before.
        const txn = await producer.beginTransaction({ producerId: -1n, producerEpoch: -1 })
        await txn.cancel()
      } else {
        await producer.initIdempotentProducer({})
      }
    } catch (err) {
      await producer.close().catch(() => {})
      throw kafkaRefusal(err, this.config.brokers.join(',')) ?? err
    }
    const sendPieces = async (send: (o: { messages: ReturnType<typeof toMessages> }) => Promise<{ offsets?: Array<{ topic: string, partition: number, offset: bigint }> }>, pieces: SendPiece[]): Promise<BatchSendResult[]> => {
      const messages = pieces.flatMap((p) => toMessages(p.topic, p.records))
      if (messages.length === 0) return []
      return sendResults((await timed('Produce', async () => await send({ messages }))).offsets)
    }
    return {
      send: async (topic, records): Promise<SendResult[]> => (await sendPieces(async (o) => await producer.send({ ...o, acks: -1 }), [{ topic, records }])).map(({ partition, baseOffset }) => ({ partition, baseOffset })),
      sendBatch: async (pieces) => await sendPieces(async (o) => await producer.send({ ...o, acks: -1 }), pieces),
      transaction: async (): Promise<TransactionPort> => {
        const txn = await producer.beginTransaction()
        return {
          sendBatch: async (pieces) => await sendPieces(async (o) => await txn.send(o), pieces),
          sendOffsets: async (consumerPort, offsets: OffsetCommit[]) => {
            const { member: consumer, announced } = groupConsumerOf(consumerPort)
            if (announced === undefined) throw new Error('no assignment was announced: nothing to commit offsets for')
            await timed('AddOffsetsToTxn', async () => { await txn.addConsumer(consumer) })
            // TxnOffsetCommit with the member id and generation of the assignment the runner
            // processed under (KIP-447), not the client's current ones: the client takes a new
            // generation at JoinGroup, before the assignment is known, and a commit for
            // partitions that generation gives to another member must fail, not land.
            const group = { groupId: consumer.groupId, generationId: announced.generationId, memberId: announced.memberId, coordinatorId: () => consumer.coordinatorId }
            await timed('TxnOffsetCommit', async () => { await commitTxnOffsets(producer, txn.id, group, consumerPort.topic, offsets) })
          },
          commit: async () => { await timed('EndTxn', async () => { await txn.commit() }) },
          abort: async () => { await txn.abort() }
        }
      },
      close: async () => { await closeWithin(async () => { await producer.close() }, 'the Kafka producer') }
    }
  }

  async groupConsumer (opts: { groupId: string, topic: string, clientId?: string, fromBeginning: boolean }): Promise<GroupConsumerPort> {
    const consumer = new PlatformaticGroupConsumer(this.base(opts.clientId ?? this.clientId), opts)
    await consumer.connect()
    return consumer
  }

  /**
   * Reads [from, last] of one partition, read_committed, with a consumer of its own (no group),
   * 2 MB a fetch: the next fetch is in flight while `apply` writes the last one. No progress for `stallMs` is
   * an error (EBB_RESTORE_STALLED, retried by the runner), never a restore cut short.
   */
  async readPartition (topic: string, partition: number, from: bigint, last: bigint, apply: (records: InputRecord[]) => Promise<void>, signal?: AbortSignal, stallMs = 30_000): Promise<void> {
    const reader = new Consumer({ ...this.base(`${this.clientId}-restore`), groupId: `${this.clientId}-read-${topic}-${partition}`, autocommit: false })
    reader.on('error', () => {})
    let position = from
    let lastProgress = Date.now()
    const fetchAt = async (offset: bigint, force: boolean): Promise<FetchResponse> => {
      const { node, topicId } = await leaderOf(reader, topic, partition, force)
      return await fetchCommitted(reader, node, { id: topicId, name: topic }, [{ partition, fetchOffset: offset, partitionMaxBytes: RESTORE_FETCH_BYTES, currentLeaderEpoch: -1, lastFetchedEpoch: -1 }], RESTORE_FETCH_BYTES)
    }
    try {
      let next: Promise<FetchResponse> | undefined = fetchAt(position, false)
      next.catch(() => {}) // awaited below; never left rejected unseen when the read ends first
      let failures = 0
      while (position <= last) {
        let response: FetchResponse
        try {
          signal?.throwIfAborted()
          response = await abortable(next ?? fetchAt(position, failures > 0), signal)
        } catch (err) {
          next = undefined
          if (signal?.aborted === true) throw err
          if (Date.now() - lastProgress > stallMs) throw new EbbError(Errors.RESTORE_STALLED, topic, partition, Math.round(stallMs / 1000), position, last + 1n)
          failures++
          log.warn({ topic, partition, err: (err as Error).message }, 'a restore fetch failed; retrying')
          await sleep(Math.min(1000, 50 * 2 ** failures))
          continue
        }
        failures = 0
        const p = response.responses[0]?.partitions.find((x) => x.partitionIndex === partition)
        const { records, end } = partitionRecords({ records: p?.records, abortedTransactions: p?.abortedTransactions ?? null }, position)
        // The next fetch goes out before this one is applied (the store write is the slow part).
        next = end > position && end <= last ? fetchAt(end, false) : undefined
        if (next !== undefined) next.catch(() => {})
        signal?.throwIfAborted()
        if (records.length > 0) await apply(records)
        if (end > position) { position = end; lastProgress = Date.now() }
        else if (Date.now() - lastProgress > stallMs) throw new EbbError(Errors.RESTORE_STALLED, topic, partition, Math.round(stallMs / 1000), position, last + 1n)
      }
    } finally {
      await reader.close(true).catch(() => {})
    }
  }

  partitionOf (_topic: string, k: string, partitions: number): number {
    return (murmur2(Buffer.from(k)) & 0x7fffffff) % partitions
  }
}

/** a partition of a fetch request, as the client takes it */
interface FetchPartition { partition: number, fetchOffset: bigint, partitionMaxBytes: number, currentLeaderEpoch: number, lastFetchedEpoch: number }

/**
 * A read_committed Fetch request to `node`, sent with the client's own Fetch API on its
 * connection, but not through `Consumer.fetch`. That method filters aborted transactions itself,
 * and wrongly: it ends a producer's aborted range at the producer's *last* ABORT marker in the
 * response, not at the first one after the range. A transactional id that aborts a transaction,
 * commits the next, then aborts an empty one is one producer id with two ABORT markers. The
 * committed transaction between them was dropped. A restore then missed a whole commit of a
 * partition's state, and the partition could never agree with its group's offset again (chaos
 * runs, 12-07). `partitionRecords` filters with the markers in order. Sessionless (epoch -1): every
 * request names all its partitions, and the broker keeps no session for it.
 */
async function fetchCommitted (client: Consumer, node: number, topic: { id: string, name: string }, partitions: FetchPartition[], maxBytes: number): Promise<FetchResponse> {
  try {
    return await fetchCommittedOnce(client, node, topic, partitions, maxBytes, false)
  } catch (err) {
    // Once more after 200 ms on fresh metadata, as Consumer.fetch did (retries: 1), unless the
    // answer cannot change (an offset out of range is the caller's to handle).
    const final = findErrorBy(err as Error, 'canRetry', false)
    if (final !== null && final !== undefined) throw err
    await sleep(200)
    return await fetchCommittedOnce(client, node, topic, partitions, maxBytes, true)
  }
}

async function fetchCommittedOnce (client: Consumer, node: number, topic: { id: string, name: string }, partitions: FetchPartition[], maxBytes: number, force: boolean): Promise<FetchResponse> {
  const metadata = await client.metadata({ topics: [topic.name], forceUpdate: force })
  const broker = metadata.brokers.get(node)
  if (broker === undefined) throw new Error(`broker ${node} is not in the cluster's metadata`)
  const connection = await connectionTo(client, broker)
  const api = await apiOf<unknown[], FetchResponse>(client, 'Fetch')
  // Fetch v12 and older name topics; later versions use their ids.
  const byName = api.version <= 12
  const response = await api.async(connection, 500, 1, maxBytes, READ_COMMITTED, 0, -1, [{ topicId: byName ? topic.name : topic.id, partitions }], [], '')
  if (byName) for (const t of response.responses) t.topicId = topic.id
  return response
}

/**
 * The transaction's input offsets, every partition in one TxnOffsetCommit request (the client's
 * addOffset sends one request per partition: a round trip each, inside the commit an output
 * waits for). The same request the client sends, to the group's coordinator, with the member id
 * and generation the runner processed under (KIP-447), through the client's own retry of
 * retriable answers.
 */
async function commitTxnOffsets (producer: Producer, transactionalId: string, group: { groupId: string, generationId: number, memberId: string, coordinatorId: () => number | null }, topic: string, offsets: OffsetCommit[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    producer[kPerformWithRetry]<void>('commit', (done) => {
      producer[kMetadata]({ topics: [topic] }, (err, metadata) => {
        if (err !== null && err !== undefined) { done(err); return }
        if (metadata === undefined) { done(new Error('the client answered no metadata')); return }
        // the member's coordinator at each attempt (it follows a coordinator that moved)
        const coordinatorId = group.coordinatorId()
        const coordinator = coordinatorId === null ? undefined : metadata.brokers.get(coordinatorId)
        // Not retried (the same metadata would answer the same): the commit fails, and the runner
        // redoes the work from the last commit.
        if (coordinator === undefined) { done(Object.assign(new Error(`the group's coordinator (broker ${String(coordinatorId)}) is not in the cluster's metadata`), { canRetry: false })); return }
        Promise.all([connectionTo(producer, coordinator), apiOf<unknown[], unknown>(producer, 'TxnOffsetCommit')]).then(async ([connection, api]) => {
          const partitions = metadata.topics.get(topic)?.partitions
          await api.async(connection, transactionalId, group.groupId, producer.producerId, producer.producerEpoch, group.generationId, group.memberId, null, [{
            name: topic,
            partitions: offsets.map((o) => ({ partitionIndex: o.partition, committedOffset: BigInt(o.offset), committedLeaderEpoch: partitions?.[o.partition]?.leaderEpoch ?? -1 }))
          }])
        }).then(() => { done(null) }, (e: Error) => { done(e) })
      })
    }, (err) => { if (err !== null && err !== undefined) reject(err); else resolve() })
  })
}

/** how long closing one client may take before the close goes on without it */
const CLOSE_WAIT_MS = 5000

/**
 * Closes a client, bounded: a request on a connection to a broker that is gone waits for the
 * request timeout (30 s), longer than a stop may take. A closing member has cancelled its
 * heartbeats and never rejoins, so one left closing is harmless; its sockets end with the process
 * or the broker.
 */
async function closeWithin (close: () => Promise<void>, what: string): Promise<void> {
  if (!await withDeadline(close(), CLOSE_WAIT_MS, `closing ${what}`)) log.warn({ seconds: CLOSE_WAIT_MS / 1000 }, `closing ${what} did not finish; going on without it`)
}

const consumers = new WeakMap<GroupConsumerPort, PlatformaticGroupConsumer>()
/** The member behind a port and the generation of its last announced assignment (the transaction commits offsets with it). */
function groupConsumerOf (port: GroupConsumerPort): { member: Consumer, announced: { generationId: number, memberId: string } | undefined } {
  const c = consumers.get(port)
  if (c === undefined) throw new Error('sendOffsets needs a group consumer of the same client')
  return { member: c.member, announced: c.announced }
}

/** how long fetching may fail in a row before the consumer gives up (the runner then restarts, README "When the brokers go away") */
const FETCH_FAILURE_LIMIT_MS = 15_000

/**
 * A consumer group member on one topic. The client (a Consumer that joins the group and
 * heartbeats) says when the group rebalances and what this member holds; a second Consumer
 * that never joins fetches, on its own connections. Positions are Ebb's: a partition's starts
 * at the group's committed offset (or the earliest/latest one), moves when the runner resolves
 * a batch, and jumps with a seek. A batch is stale once the group rebalanced or its partition
 * was sought since it was fetched; a fetched result whose fetch offset is no longer the
 * partition's position is dropped unseen.
 */
class PlatformaticGroupConsumer implements GroupConsumerPort {
  readonly groupId: string
  readonly topic: string
  readonly member: Consumer
  private readonly fetcher: Consumer
  /** the member id and generation of the assignment last handed to the runner */
  announced: { generationId: number, memberId: string } | undefined
  private assigned: number[] = []
  private readonly positions = new Map<number, bigint>()
  private readonly seeks = new Map<number, number>()
  private generation = 0
  /** between a rebalance starting and the new assignment */
  private paused = false
  private stopped = false
  private loop: Promise<void> | undefined
  private wake: (() => void) | undefined
  private readonly rebalancing: Array<() => void> = []
  private readonly assignedCbs: Array<(partitions: number[]) => void> = []
  private readonly crashCbs: Array<(restarting: boolean, error: Error) => void> = []

  private readonly brokers: string

  constructor (base: BaseOptions, private readonly opts: { groupId: string, topic: string, fromBeginning: boolean }) {
    this.brokers = base.bootstrapBrokers.map((b) => typeof b === 'string' ? b : `${b.host}:${b.port}`).join(',')
    this.groupId = opts.groupId
    this.topic = opts.topic
    this.member = new Consumer({ ...base, groupId: opts.groupId, autocommit: false, sessionTimeout: 10_000, heartbeatInterval: 1000, rebalanceTimeout: 30_000, isolationLevel: READ_COMMITTED })
    // The fetcher retries little by itself: the loop retries, and an outage must show at once.
    this.fetcher = new Consumer({ ...base, clientId: `${base.clientId}-fetch`, groupId: opts.groupId, autocommit: false, isolationLevel: READ_COMMITTED, retries: 1, retryDelay: 200 })
    consumers.set(this, this)
    this.member.on('consumer:group:rebalance', () => {
      if (this.stopped) return
      this.generation++
      // Nothing is fetched until the new assignment: what would come cannot be processed.
      this.paused = true
      for (const cb of this.rebalancing) cb()
    })
    this.member.on('consumer:group:join', (e) => {
      if (this.stopped) return
      this.generation++
      this.paused = false
      this.announced = { generationId: e.generationId ?? this.member.generationId, memberId: e.memberId }
      this.assigned = [...(e.assignments?.find((a) => a.topic === this.topic)?.partitions ?? [])].sort((a, b) => a - b)
      // Every join starts again from the committed offsets: what was processed and not
      // committed is dropped by the runner (onRebalancing), as at any rebalance.
      this.positions.clear()
      for (const cb of this.rebalancing) cb()
      for (const cb of this.assignedCbs) cb(this.assigned)
      this.wake?.()
    })
    const crash = (err: Error): void => {
      if (this.stopped) return
      for (const cb of this.crashCbs) cb(false, new Error(errorText(err)))
    }
    this.member.on('error', (err: Error) => { crash(err) })
    this.member.on('consumer:heartbeat:stalled', () => { crash(new Error('the consumer group heartbeat stalled')) })
    this.fetcher.on('error', () => {})
  }

  async connect (): Promise<void> {
    try {
      await this.member.metadata({ topics: [this.topic] })
    } catch (err) {
      await Promise.all([this.member.close(true).catch(() => {}), this.fetcher.close(true).catch(() => {})])
      throw kafkaRefusal(err, this.brokers) ?? err
    }
  }

  onRebalancing (cb: () => void): void { this.rebalancing.push(cb) }
  onAssigned (cb: (partitions: number[]) => void): void { this.assignedCbs.push(cb) }
  onCrash (cb: (restarting: boolean, error: Error) => void): void { this.crashCbs.push(cb) }

  async start (eachBatch: (batch: FetchedBatch, control: BatchControl) => Promise<void>): Promise<void> {
    this.member.topics.track(this.topic)
    await this.member.joinGroup({ sessionTimeout: 10_000, heartbeatInterval: 1000, rebalanceTimeout: 30_000 })
    this.loop = this.fetchLoop(eachBatch).catch((err: unknown) => {
      if (this.stopped) return
      for (const cb of this.crashCbs) cb(false, new Error(errorText(err)))
    })
  }

  /** Where each partition without a position starts: the committed offset, else the earliest or latest. */
  private async initPositions (partitions: number[], gen: number): Promise<void> {
    const committed = await this.member.listCommittedOffsets({ topics: [{ topic: this.topic, partitions }] })
    const list = committed.get(this.topic) ?? []
    const missing = partitions.filter((p) => list[p] === undefined || list[p] < 0n)
    let fallback: bigint[] = []
    if (missing.length > 0) {
      const offs = await this.member.listOffsets({ topics: [this.topic], partitions: { [this.topic]: missing }, timestamp: this.opts.fromBeginning ? EARLIEST : LATEST })
      fallback = offs.get(this.topic) ?? []
    }
    // Read before a rebalance that cleared the positions: the next assignment reads them again.
    if (gen !== this.generation) return
    for (const p of partitions) {
      if (this.positions.has(p)) continue // sought meanwhile
      const c = list[p]
      const at = c !== undefined && c >= 0n ? c : fallback[p]
      if (at !== undefined && at >= 0n) this.positions.set(p, at)
    }
  }

  private async fetchLoop (eachBatch: (batch: FetchedBatch, control: BatchControl) => Promise<void>): Promise<void> {
    let failingSince: number | undefined
    let force = false
    while (!this.stopped) {
      const gen = this.generation
      const assigned = this.assigned
      if (assigned.length === 0 || this.paused) {
        await new Promise<void>((resolve) => { this.wake = resolve; setTimeout(resolve, 500) })
        this.wake = undefined
        continue
      }
      let response: FetchResponse
      let requested: Map<number, bigint>
      try {
        const unknown = assigned.filter((p) => !this.positions.has(p))
        if (unknown.length > 0) await this.initPositions(unknown, gen)
        if (gen !== this.generation) continue
        const metadata = await this.fetcher.metadata({ topics: [this.topic], forceUpdate: force })
        const t = metadata.topics.get(this.topic)
        if (t === undefined) throw new Error(`topic ${this.topic} has no metadata`)
        requested = new Map()
        const byNode = new Map<number, Array<{ partition: number, fetchOffset: bigint, partitionMaxBytes: number, currentLeaderEpoch: number, lastFetchedEpoch: number }>>()
        for (const p of assigned) {
          const at = this.positions.get(p)
          if (at === undefined) continue
          requested.set(p, at)
          const node = t.partitions[p]?.leader ?? -1
          const list = byNode.get(node) ?? []
          byNode.set(node, list)
          list.push({ partition: p, fetchOffset: at, partitionMaxBytes: 1 << 20, currentLeaderEpoch: -1, lastFetchedEpoch: -1 })
        }
        if (requested.size === 0) { await sleep(100); continue }
        // One broker holds them all here; with several, one request per leader, one after another.
        const responses: FetchResponse[] = []
        for (const [node, partitions] of byNode) {
          responses.push(await fetchCommitted(this.fetcher, node, { id: t.id, name: this.topic }, partitions, 8 << 20))
        }
        response = { throttleTimeMs: 0, errorCode: 0, sessionId: 0, responses: responses.flatMap((r) => r.responses) }
        force = false
      } catch (err) {
        if (this.stopped) return
        if (await this.resetOutOfRange(err).catch(() => false)) continue
        if (failingSince === undefined) {
          // A consumer restart: the runner drops its uncommitted work and says Kafka is
          // unavailable; once fetching works again, every partition starts over from the
          // committed offsets (a new assignment, below).
          failingSince = Date.now()
          this.generation++
          for (const cb of this.crashCbs) cb(true, new Error(errorText(err)))
        }
        if (Date.now() - failingSince > FETCH_FAILURE_LIMIT_MS) throw err
        force = true
        await sleep(500)
        continue
      }
      if (failingSince !== undefined) {
        failingSince = undefined
        this.positions.clear()
        // The assignment is announced again only if the member still holds it; one that lost its
        // session meanwhile is rejoining, and its join announces what it gets.
        if (this.member.isActive() && this.announced?.generationId === this.member.generationId) {
          for (const cb of this.rebalancing) cb()
          for (const cb of this.assignedCbs) cb(this.assigned)
        } else {
          this.assigned = []
        }
        continue
      }
      /** batches handed over, and how many the runner took (resolved or sought past) */
      let handed = 0
      let taken = 0
      for (const topic of response.responses) {
        for (const part of topic.partitions) {
          if (this.stopped || gen !== this.generation) break
          const p = part.partitionIndex
          const at = requested.get(p)
          if (at === undefined || this.positions.get(p) !== at) continue // sought since the fetch
          const { records, end } = partitionRecords(part, at)
          if (records.length === 0) {
            // Only markers or aborted records: nothing to process, the position moves past them.
            if (end > at) this.positions.set(p, end)
            continue
          }
          const seek = this.seeks.get(p) ?? 0
          const lastOffset = records[records.length - 1].offset
          await eachBatch(
            { topic: this.topic, partition: p, records, lastOffset, highWatermark: part.highWatermark.toString() },
            {
              resolve: (offset) => {
                if (gen === this.generation && (this.seeks.get(p) ?? 0) === seek) this.positions.set(p, BigInt(offset) + 1n)
              },
              heartbeat: async () => {},
              active: () => !this.stopped && gen === this.generation && (this.seeks.get(p) ?? 0) === seek
            }
          )
          handed++
          if (this.positions.get(p) !== at) taken++
        }
      }
      // Nothing taken (partitions still opening, a registry that cannot answer, a runner that
      // failed): the same records would come back at once; a pause instead of a busy loop.
      if (handed > 0 && taken === 0) await sleep(100)
    }
  }

  /**
   * OFFSET_OUT_OF_RANGE below the log's start (retention deleted records past the position while
   * the group was away): the position moves to the earliest or latest offset, as configured. The
   * broker answers -1 for the log's start and end beside this error, so they are asked for. A
   * position past the log's end is not moved: the topic was deleted and created again (or
   * truncated) under this member, and going on from the new start would apply a new topic's
   * records to the old topic's state; the consumer fails, and the restart's restore check says so
   * (EBB_STATE_AHEAD). A position moved meanwhile (a seek) is left as it is.
   */
  private async resetOutOfRange (err: unknown): Promise<boolean> {
    const response = (err as { response?: FetchResponse }).response
    if (response?.responses === undefined) return false
    const outOfRange = response.responses.flatMap((t) => t.partitions.filter((p) => p.errorCode === 1).map((p) => p.partitionIndex))
    if (outOfRange.length === 0) return false
    const before = new Map(outOfRange.map((p) => [p, this.positions.get(p)]))
    const ask = async (timestamp: bigint): Promise<bigint[] | undefined> => (await this.fetcher.listOffsets({ topics: [this.topic], partitions: { [this.topic]: outOfRange }, timestamp, isolationLevel: READ_COMMITTED })).get(this.topic)
    // the log's start judges every position; its end is asked only where the position moves there
    const earliest = await ask(EARLIEST)
    const latest = this.opts.fromBeginning ? undefined : await ask(LATEST)
    let reset = false
    for (const p of outOfRange) {
      const pos = before.get(p)
      const start = earliest?.[p]
      const at = this.opts.fromBeginning ? start : latest?.[p]
      if (pos === undefined || start === undefined || at === undefined || at < 0n || pos >= start || this.positions.get(p) !== pos) continue
      log.warn({ partition: p, from: pos.toString(), to: at.toString() }, 'the fetch position is before the log\'s start (records deleted by retention); it moves to the ' + (this.opts.fromBeginning ? 'earliest' : 'latest') + ' offset')
      this.positions.set(p, at)
      reset = true
    }
    return reset
  }

  seek (_topic: string, partition: number, offset: bigint): void {
    this.seeks.set(partition, (this.seeks.get(partition) ?? 0) + 1)
    this.positions.set(partition, offset)
  }

  /**
   * Stops fetching and leaves the group by closing the member: a closing member asks the
   * coordinator to let it go once, on the connection it has, and closes whether or not the
   * broker answers (a broker that is gone does not hold the stop); it never rejoins.
   */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.wake?.()
    // No batch is handed over once stopped; a request in flight (in an outage, one that rides
    // out the client's retries) is not waited for beyond a second: closing the clients ends it.
    await Promise.race([this.loop?.catch(() => {}), sleep(1000)])
    await closeWithin(async () => { await this.member.close(true) }, 'the Kafka group member')
  }

  async close (): Promise<void> {
    await this.stop()
    await closeWithin(async () => { await this.fetcher.close(true) }, 'the Kafka fetcher')
  }
}
