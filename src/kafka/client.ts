/**
 * All of Ebb's Kafka I/O, as a few small ports. The runner, the simulator's producer, `ebb tail`,
 * `ebb reset` and the owner lookup use only these; `platformatic-client.ts` implements them with
 * @platformatic/kafka (it replaced kafkajs, unmaintained since 2023: docs/kafka.md), so
 * that another client is one more file, not a change to the runner. The unit tests' FakeBroker
 * implements them too.
 */
/** `timestamp`: the record's timestamp in ms, as a decimal string */
export interface InputRecord { offset: string, key: Buffer | null, value: Buffer | null, timestamp?: string }

export interface FetchedBatch {
  readonly topic: string
  readonly partition: number
  readonly records: InputRecord[]
  /** offset of the last record in the batch */
  readonly lastOffset: string
  /** the partition's end offset when the batch was fetched */
  readonly highWatermark: string
}

export interface BatchControl {
  /** the consumer's fetch position moves past `offset` (the group's committed offset does not) */
  resolve (offset: string): void
  heartbeat (): Promise<void>
  /** false once the batch is stale (a rebalance) or the consumer stops */
  active (): boolean
}

/** `timestamp`: CreateTime in ms (default: now) */
export interface OutRecord { key: Buffer | string | null, value: Buffer | null, partition?: number, timestamp?: number }
/** Where a send landed: per partition, the offset of its first record. */
export interface SendResult { partition: number, baseOffset: bigint }
/** Records for several topics sent in one request per broker; at most one piece per topic. */
export interface SendPiece { topic: string, records: OutRecord[] }
export interface BatchSendResult extends SendResult { topic: string }
export interface OffsetCommit { partition: number, offset: string }

/** `compact`: cleanup.policy=compact (a changelog); `configs`: any other topic configuration (bench: message.timestamp.type) */
export interface TopicSpec { topic: string, partitions: number, replicationFactor: number, compact?: boolean, configs?: Record<string, string> }

export interface AdminPort {
  topics (): Promise<Set<string>>
  /** 0 when the topic does not exist */
  partitionCount (topic: string): Promise<number>
  createTopics (specs: TopicSpec[]): Promise<void>
  /** per partition, the end offset a read_committed reader sees (the last stable offset) */
  endOffsets (topic: string): Promise<Map<number, bigint>>
  /** per partition, the high watermark (the end, open transactions' records included) */
  highWatermarks (topic: string): Promise<Map<number, bigint>>
  /** per partition of `topic`, the group's committed offset (null: none committed) */
  committedOffsets (groupId: string, topic: string): Promise<Map<number, bigint | null>>
  /** the group's members: client id and the partitions of `topic` each holds */
  groupAssignments (groupId: string, topic: string): Promise<Array<{ clientId: string, partitions: number[] }>>
  /** how many members the group has now (0: no instance runs) */
  groupMemberCount (groupId: string): Promise<number>
  /** per partition, the first offset still stored (the log start) */
  startOffsets (topic: string): Promise<Map<number, bigint>>
  /** per partition, the first offset whose record time is at or after `ts` (the end when none is) */
  offsetsForTime (topic: string, ts: number): Promise<Map<number, bigint>>
  /** commits these offsets for the group (which must have no member) */
  setGroupOffsets (groupId: string, topic: string, offsets: Map<number, bigint>): Promise<void>
  deleteTopics (topics: string[]): Promise<void>
  /** the transactions open on a partition, each with whether a coordinator owns it (hanging-transactions.ts) */
  openTransactions (topic: string, partition: number): Promise<OpenTransaction[]>
  /** aborts a hanging transaction on a partition (WriteTxnMarkers, as kafka-transactions.sh abort) */
  abortTransaction (topic: string, partition: number, t: OpenTransaction): Promise<void>
  close (): Promise<void>
}

/** a transaction open on a partition (DescribeProducers), and whether a coordinator owns it */
export interface OpenTransaction {
  producerId: bigint
  producerEpoch: number
  /** the coordinator epoch of the partition's last marker from this producer (-1: none) */
  coordinatorEpoch: number
  /** its first offset on the partition: the last stable offset cannot pass it */
  startOffset: bigint
  /** the producer's transactional id as the coordinators list it (null: no coordinator knows the producer) */
  transactionalId: string | null
  /** a coordinator has an open transaction of this producer that includes the partition: it ends it itself (false: hanging) */
  coordinatorHasIt: boolean
}

export interface TransactionPort {
  sendBatch (pieces: SendPiece[]): Promise<BatchSendResult[]>
  /**
   * commits the group's input offsets inside the transaction, for `consumer`'s group and topic
   * (with @platformatic/kafka, fenced by the member's generation: KIP-447)
   */
  sendOffsets (consumer: GroupConsumerPort, offsets: OffsetCommit[]): Promise<void>
  commit (): Promise<void>
  abort (): Promise<void>
}

export interface ProducerPort {
  /** acks=all, idempotent; outside any transaction */
  send (topic: string, records: OutRecord[]): Promise<SendResult[]>
  sendBatch (pieces: SendPiece[]): Promise<BatchSendResult[]>
  /** needs the producer to have been created with a transactional id */
  transaction (): Promise<TransactionPort>
  close (): Promise<void>
}

export interface GroupConsumerPort {
  readonly groupId: string
  /** the subscribed topic */
  readonly topic: string
  /** the group starts rebalancing: this member's partitions are about to be revoked */
  onRebalancing (cb: () => void): void
  /** the partitions of the subscribed topic this member holds after a rebalance */
  onAssigned (cb: (partitions: number[]) => void): void
  /**
   * The client's consumer failed (a broker outage outlasting its retries). `restarting`: it
   * restarts by itself and rejoins, fetching from the group's committed offsets, not from where
   * it was; otherwise it has stopped for good.
   */
  onCrash (cb: (restarting: boolean, error: Error) => void): void
  /** consumes (read_committed), one batch at a time; resolves once consuming has started */
  start (eachBatch: (batch: FetchedBatch, control: BatchControl) => Promise<void>): Promise<void>
  /** moves the fetch position of an assigned partition (the next batch starts at `offset`) */
  seek (topic: string, partition: number, offset: bigint): void
  /** stops fetching after the batch in flight and leaves the group (its partitions move on) */
  stop (): Promise<void>
  close (): Promise<void>
}

export interface KafkaClient {
  admin (): Promise<AdminPort>
  /** `onRequest`: each transaction step's duration (named by its Kafka API, seconds), for the metrics. */
  producer (opts: { transactionalId?: string, onRequest?: (api: string, seconds: number) => void }): Promise<ProducerPort>
  /**
   * a consumer group member on one topic; `clientId` is what the group description shows;
   * `fromBeginning`: where a partition without a committed offset starts (false: at its end)
   */
  groupConsumer (opts: { groupId: string, topic: string, clientId?: string, fromBeginning: boolean }): Promise<GroupConsumerPort>
  /**
   * Reads committed records of one partition from `from` through `last` (the offset of the last
   * record to expect), calling `apply` per fetched chunk; fails (EBB_RESTORE_STALLED, retriable)
   * when nothing arrives for a while instead of returning with records missing. `signal`: the
   * read stops at once when it aborts (the owner is closing), with no `apply` after that, and
   * rejects; an `apply` in progress completes first.
   */
  readPartition (topic: string, partition: number, from: bigint, last: bigint, apply: (records: InputRecord[]) => Promise<void>, signal?: AbortSignal): Promise<void>
  /** the partition a producer's default partitioner puts `key` in (murmur2, Java-compatible) */
  partitionOf (topic: string, key: string, partitions: number): number
}
