import { type Admin, type API, type Base, type Broker, type Connection, createAPI, describeProducersV0, describeTransactionsV0, FindCoordinatorKeyTypes, kGetApi, kGetConnection, listTransactionsV0, type Reader, Writer } from '@platformatic/kafka'
import type { OpenTransaction } from './client.js'

/**
 * Hanging transactions (KIP-664): a transaction that is open on a partition while its
 * coordinator has no open transaction of that producer including the partition. No commit or
 * abort marker will ever come for it, so the partition's last stable offset stays at its first
 * record for good, and a read_committed reader (a restore of Ebb's changelog) sees nothing past
 * it. Kafka's own answer is an operator's `kafka-transactions.sh find-hanging` then `abort`; this
 * module does the same two steps with the same requests (DescribeProducers on the partition's
 * leader, ListTransactions and DescribeTransactions on the coordinators, WriteTxnMarkers to abort)
 * behind the admin port, for hanging-watch.ts: it decides when (a changelog partition whose
 * restore is stuck, an output partition whose last stable offset does not move) and after how
 * long a transaction counts as hanging.
 */

/*
  WriteTxnMarkers Request (Version: 1) => [markers] TAG_BUFFER
    markers => producer_id producer_epoch transaction_result [topics] coordinator_epoch TAG_BUFFER
      producer_id => INT64
      producer_epoch => INT16
      transaction_result => BOOLEAN
      topics => name [partition_indexes] TAG_BUFFER
        name => COMPACT_STRING
        partition_indexes => INT32
      coordinator_epoch => INT32
  WriteTxnMarkers Response (Version: 1) => [markers] TAG_BUFFER
    markers => producer_id [topics] TAG_BUFFER
      producer_id => INT64
      topics => name [partitions] TAG_BUFFER
        name => COMPACT_STRING
        partitions => partition_index error_code TAG_BUFFER
  (Kafka's protocol guide; the client library has no WriteTxnMarkers, the admin's abortTransaction.)
*/
interface Marker { producerId: bigint, producerEpoch: number, commit: boolean, topic: string, partition: number, coordinatorEpoch: number }
const writeTxnMarkersV1 = createAPI(27, 1, (markers: Marker[]) => Writer.create()
  .appendArray(markers, (w, m) => {
    w.appendInt64(m.producerId).appendInt16(m.producerEpoch).appendBoolean(m.commit)
      .appendArray([m.topic], (w, t) => { w.appendString(t).appendArray([m.partition], (w, p) => w.appendInt32(p), true, false) })
      .appendInt32(m.coordinatorEpoch)
  })
  .appendTaggedFields(), (_correlationId: number, _apiKey: number, _apiVersion: number, reader: Reader) => {
  const errors: number[] = []
  reader.readArray((r) => {
    r.readInt64()
    r.readArray((r) => {
      r.readString()
      r.readArray((r) => { r.readInt32(); errors.push(r.readInt16()) })
    })
  })
  reader.readTaggedFields()
  return { errors }
})

/** Kafka error codes a marker write may answer (the others are reported by number) */
const MARKER_ERRORS: Record<number, string> = {
  3: 'UNKNOWN_TOPIC_OR_PARTITION',
  6: 'NOT_LEADER_OR_FOLLOWER',
  31: 'CLUSTER_AUTHORIZATION_FAILED (the principal needs the ClusterAction permission, as for kafka-transactions.sh abort)',
  47: 'INVALID_PRODUCER_EPOCH',
  52: 'TRANSACTION_COORDINATOR_FENCED'
}

const TRANSACTION_STATE = '__transaction_state'
/** what the Metadata answer says that is read here */
interface MetadataAnswer { brokers: Array<{ nodeId: number, host: string, port: number }>, topics: Array<{ name: string | null, partitions: Array<{ leaderId: number }> }> }

/** states in which the coordinator still owns the transaction and ends it itself (by commit, abort or timeout) */
const COORDINATOR_OPEN = new Set(['Ongoing', 'PrepareCommit', 'PrepareAbort', 'PrepareEpochFence'])

/** A connection of the client's pool to `broker` (any client: admin, producer, consumer). */
export async function connectionTo (client: Base, broker: Broker): Promise<Connection> {
  return await new Promise((resolve, reject) => {
    client[kGetConnection](broker, (err, conn) => { if (err !== null && err !== undefined) reject(err); else if (conn === undefined) reject(new Error(`no connection to ${broker.host}:${broker.port}`)); else resolve(conn) })
  })
}

/** The client's implementation of a Kafka API, at the version it agreed with the brokers. */
export async function apiOf<Args extends unknown[], Response> (client: Base, name: string): Promise<API<Args, Response>> {
  return await new Promise((resolve, reject) => {
    client[kGetApi]<Args, Response>(name, (err, api) => { if (err !== null && err !== undefined) reject(err); else if (api === undefined) reject(new Error(`no ${name} API`)); else resolve(api) })
  })
}

/** The broker that leads `topic`'s `partition` now (fresh metadata). */
export async function partitionLeader (admin: Admin, topic: string, partition: number): Promise<Broker> {
  const meta = await admin.metadata({ topics: [topic], forceUpdate: true })
  const leaderId = meta.topics.get(topic)?.partitions[partition]?.leader
  const leader = leaderId === undefined ? undefined : meta.brokers.get(leaderId)
  if (leader === undefined) throw new Error(`${topic}-${partition} has no leader`)
  return leader
}

/**
 * The transactions open on `topic`'s `partition` (DescribeProducers on its leader), each with
 * what the coordinators say about it (ListTransactions on every broker, then DescribeTransactions
 * on the transactional id's coordinator).
 */
export async function openTransactions (admin: Admin, topic: string, partition: number): Promise<OpenTransaction[]> {
  const leader = await partitionLeader(admin, topic, partition)
  const described = await describeProducersV0.api.async(await connectionTo(admin, leader), [{ name: topic, partitionIndexes: [partition] }])
  const open = (described.topics[0]?.partitions[0]?.activeProducers ?? []).filter((p) => p.currentTxnStartOffset >= 0n)
  if (open.length === 0) return []
  // Which transactional id each producer has: every broker lists the transactions it coordinates.
  // Only when every coordinator is up: a producer missing from the lists because its coordinator
  // is down or moving (a __transaction_state partition without a live leader) is not hanging, and
  // aborting its transaction could abort one whose commit is decided but not yet written.
  // (the client's metadata leaves internal topics out: asked with its Metadata request directly)
  const metadataApi = await apiOf<[string[], boolean, boolean], MetadataAnswer>(admin, 'Metadata')
  // A coordinators' partition without a leader (its broker down) is an error in the answer,
  // which the client throws: the same case as a leader that is not live.
  const coordinators = await metadataApi.async(await connectionTo(admin, leader), [TRANSACTION_STATE], false, false).catch((err: Error & { errors?: Error[] }) => {
    const detail = [err.message, ...(err.errors ?? []).map((e) => e.message)].join('; ')
    throw new Error(`not every transaction coordinator is available (the metadata of ${TRANSACTION_STATE} answered an error: ${detail}): nothing is judged`)
  })
  const live = new Set(coordinators.brokers.map((b) => b.nodeId))
  const state = coordinators.topics.find((t) => t.name === TRANSACTION_STATE)
  if (state === undefined || state.partitions.length === 0 || state.partitions.some((p) => p.leaderId < 0 || !live.has(p.leaderId))) {
    throw new Error(`not every transaction coordinator is available (${TRANSACTION_STATE} has a partition without a live leader): nothing is judged`)
  }
  const ids = new Map<bigint, string>()
  for (const broker of coordinators.brokers) {
    // (the client throws on an error code: a coordinator still loading its transactions after a
    // restart cannot say, and nothing is judged this time)
    const listed = await listTransactionsV0.api.async(await connectionTo(admin, broker), [], open.map((p) => p.producerId), -1n, null)
    for (const t of listed.transactionStates) ids.set(t.producerId, t.transactionalId)
  }
  const out: OpenTransaction[] = []
  for (const p of open) {
    const transactionalId = ids.get(p.producerId) ?? null
    let coordinatorHasIt = false
    if (transactionalId !== null) {
      const [coordinator] = await admin.findCoordinator({ keyType: FindCoordinatorKeyTypes.TRANSACTION, keys: [transactionalId] })
      if (coordinator === undefined) throw new Error(`no coordinator found for transactional id ${transactionalId}`)
      const d = await describeTransactionsV0.api.async(await connectionTo(admin, { host: coordinator.host, port: coordinator.port }), [transactionalId])
      // (an error code throws in the client: not judged this time)
      const s = d.transactionStates[0]
      if (s === undefined) throw new Error(`DescribeTransactions for ${transactionalId} answered nothing`)
      coordinatorHasIt = s.producerId === p.producerId && COORDINATOR_OPEN.has(s.transactionState) &&
        s.topics.some((t) => t.topic === topic && t.partitions.includes(partition))
    }
    out.push({ producerId: p.producerId, producerEpoch: p.producerEpoch, coordinatorEpoch: p.coordinatorEpoch, startOffset: p.currentTxnStartOffset, transactionalId, coordinatorHasIt })
  }
  return out
}

/**
 * Aborts one hanging transaction on the partition: an abort marker written by its leader
 * (WriteTxnMarkers, as `kafka-transactions.sh abort` does). Throws with Kafka's error name when
 * the leader refuses (an authorization failure says which permission is missing).
 */
export async function abortTransaction (admin: Admin, topic: string, partition: number, t: OpenTransaction): Promise<void> {
  const leader = await partitionLeader(admin, topic, partition)
  const res = await writeTxnMarkersV1.async(await connectionTo(admin, leader), [{
    producerId: t.producerId,
    producerEpoch: t.producerEpoch,
    commit: false,
    topic,
    partition,
    // as Kafka's admin does: the partition's last coordinator epoch for the producer, 0 when it has none
    coordinatorEpoch: Math.max(t.coordinatorEpoch, 0)
  }])
  const code = res.errors.find((e) => e !== 0)
  if (code !== undefined) throw new Error(`the abort marker was refused: ${MARKER_ERRORS[code] ?? `Kafka error ${code}`}`)
}
