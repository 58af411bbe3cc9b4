import { readFileSync, renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { EbbError, Errors, isEbbError } from '../errors.js'
import { log } from '../log.js'
import type { EbbMetrics } from '../metrics/metrics.js'
import type { Topology } from '../rules/topology.js'
import { type EngineObserver, PartitionTask } from '../runtime/partition-task.js'
import { RecentRecords } from '../io/recent.js'
import { RocksStore } from '../state/rocks-store.js'
import type { AdminPort, BatchControl, FetchedBatch, GroupConsumerPort, KafkaClient, ProducerPort, TopicSpec } from './client.js'
import { changelogTopic, OUTPUT_TOPICS, type RunConfig } from './config.js'
import { PlatformaticClient } from './platformatic-client.js'
import { ChangelogReader, META_CHANGELOG, META_INPUT } from './changelog-reader.js'
import { errorText, kafkaRefusal } from './client-errors.js'
import { HangingTransactionWatch, OutputWatch } from './hanging-watch.js'
import { type CommitContent, sendOutputs, writeCommit } from './commit.js'
import { PartitionOwners } from './owners.js'
import { SchemaRegistry } from './schema-registry.js'
import { AVRO_OUTPUTS, ChangelogBatch, KafkaBatch, KafkaSink, OUTPUT_KIND_OF, OUTPUT_SCHEMA_FILES, type OutputEncodings } from './wire.js'
import { schemaPath } from '../paths.js'
import { makeDirectory } from '../io/make-directory.js'

/** how often an assigned partition that failed to open is tried again without a record arriving */
const OPEN_RETRY_MS = 5000
/** how long a partition waits before its batch asks an unavailable schema registry again */
const REGISTRY_RETRY_MS = 1000
/** outputs plus dirty states held before a commit is forced, whatever the interval */
const MAX_BUFFERED = 100_000
/** how often the input's partition count is compared with the state's (partitions added to a running input) */
const PARTITION_CHECK_MS = 10_000
/** records processed in one synchronous run while a commit is in flight (about 10 ms of work) */
const PROCESS_SLICE = 2000
/**
 * states a pipelined commit encodes between two turns of the event loop (~4 µs each): an event
 * that arrives meanwhile waits for one chunk at each step of its way (fetch, process, send), so
 * chunks stay around 2 ms (bench/README.md, "e2e": 2,000 gave p99 160–270 ms at 50% load, 500
 * 51–57 ms, with local writes of 1,000 and requests of 128 KB)
 */
const DEFERRED_CHUNK = 500

/**
 * An assigned input partition's task, as in Kafka Streams' task lifecycle: `created` when the
 * group assigns it, `restoring` while its store catches up with the changelog (and a failed
 * restore goes back to `created`, to be tried again), `running` once it processes records;
 * `closed` when revoked, dropped at a rebalance, or stopped (then it leaves the table).
 */
export type TaskState = 'created' | 'restoring' | 'running' | 'closed'
const NEXT: Readonly<Record<TaskState, readonly TaskState[]>> = { created: ['restoring', 'closed'], restoring: ['running', 'created', 'closed'], running: ['closed'], closed: [] }

const noOutputs = (): CommitContent['outputs'] => ({ alerts: [], tasks: [], outcomes: [], deadLetters: [] })
const outputCount = (o: CommitContent['outputs']): number => o.alerts.length + o.tasks.length + o.outcomes.length + o.deadLetters.length

/**
 * KIP-447: the group has moved on from the generation a commit was made in, and refused its
 * offsets (the broker's words for it vary with the request and the version).
 */
const GROUP_MOVED_ON = /not aware of this member|UNKNOWN_MEMBER_ID|ILLEGAL_GENERATION|generation id is not (current|valid)/i
/** The group is between generations: offsets are refused until its members rejoin. */
const GROUP_REBALANCING = /REBALANCE_IN_PROGRESS|group is rebalancing/i

/** What a failed commit's error text means, in words, appended to its message ('' when nothing more is known). */
function commitFailureHint (text: string, instanceId: string): string {
  // Fenced: a producer of the same transactional id started after this one. Either this
  // process was replaced, or two running instances share an instanceId and take turns
  // fencing each other; the second is a configuration mistake to say in words.
  if (/fences the current one|PRODUCER_FENCED/i.test(text)) return `; another producer with the transactional id ${instanceId} started after this one: this process was replaced, or two running instances share instanceId ${instanceId} (give each its own EBB_INSTANCE_ID, or set none and each makes one)`
  // KIP-447: the group moved on without this member (it did not answer for the session
  // timeout: a pause, a frozen process), so its offsets are refused and the new owners redo the work.
  if (GROUP_MOVED_ON.test(text)) return '; the group moved this instance\'s partitions on while it did not answer (a pause longer than the session timeout), and refused its offsets'
  // The client's own name for the topic may be another of the request's (it matches the
  // broker's answer to the request by position): ensureTopics names the missing ones at the restart.
  // (UNKNOWN_TOPIC_OR_PARTITION is also what a restarting broker or a moving leader answers for a topic that exists.)
  if (/Unknown topic|UNKNOWN_TOPIC_OR_PARTITION|does not host this topic-partition/i.test(text)) return '; the broker does not know a topic this commit writes (deleted while this instance ran? or a broker still loading it): the restart creates an output topic that is missing (topics.createIfAbsent) or stops, naming it'
  return ''
}

/**
 * The input's partition count is not the state's (partitions were added to the input topic). A
 * producer puts a user's events in murmur2(userId) mod the count, so with another count most users'
 * new events go to another partition than the one holding their state: processing on would split
 * every such user in two. Kafka cannot take partitions away, so the way on is to start over.
 */
export function partitionsChanged (input: string, inputPartitions: number, changelog: string, statePartitions: number): string {
  return `${input} has ${inputPartitions} partitions, but the state (changelog ${changelog}) was built for ${statePartitions}: users' events are keyed to other partitions than their state now. Start the application over on the new count with \`ebb reset --config F\` (it rebuilds the state from the input's start, so the input must still hold the history), or go back to an input topic of ${statePartitions} partitions`
}

/**
 * A partition's local store, which in Kafka mode is a copy of its changelog: one that RocksDB
 * finds corrupt (a torn write, a disk error) is moved aside to `<dir>.corrupt` (the one before it
 * replaced) and a new one restored from the changelog, as Kafka Streams wipes a corrupted task's
 * state, instead of the partition staying closed until retryTimeout ends the run.
 */
async function openStore (dir: string, partition: number): Promise<RocksStore> {
  try {
    return await RocksStore.open(dir)
  } catch (err) {
    if (!/Corruption/.test((err as Error).message)) throw err
    const aside = `${dir}.corrupt`
    rmSync(aside, { recursive: true, force: true })
    renameSync(dir, aside)
    log.warn({ partition, movedTo: aside, err: (err as Error).message }, 'the local store is corrupt: moved aside, and restored from the changelog')
    return await RocksStore.open(dir)
  }
}

/** A partition's part of a commit: its changelog batch (local store + changelog records), outputs and input offset. */
interface PreparedPartition { st: AssignedPartition, b: ChangelogBatch, out: ReturnType<KafkaSink['drain']>, offset: string | null, deferred: number }

/** One running input partition: its task, store and output buffer. */
export interface AssignedPartition {
  readonly partition: number
  readonly task: PartitionTask
  readonly store: RocksStore
  readonly sink: KafkaSink
  /** the last input offset processed and not yet committed, or null */
  pendingOffset: string | null
  /** wall clock of the last record (idle-partition detection) */
  lastRecordAt: number
  /** records between the last one processed and the end of the partition, at the last fetch */
  lag: number
}

/**
 * Production mode (README, "Production mode on Kafka"): a consumer group member that runs one PartitionTask per
 * assigned input partition, each with its own RocksDB directory and its own partition of the
 * compacted changelog topic. Every commit interval, one Kafka transaction carries the outputs
 * (alerts, tasks, outcomes, dead letters), the changelog records of the state changes, and the
 * consumer offsets; only once it committed is the local store written, with the changelog
 * position it now matches. With `pipelinedCommits`, the partitions go on processing while a
 * commit is in flight (what they change meanwhile belongs to the next one; commitIfDue). A crash at any point therefore resumes from a consistent place:
 * uncommitted work is redone from the committed offsets on state that never saw it, and a
 * local store behind the changelog catches up from it when its partition is opened.
 */
export class KafkaRunner {
  readonly partitions = new Map<number, AssignedPartition>()
  private readonly client: KafkaClient
  private admin: AdminPort | undefined
  private consumer: GroupConsumerPort | undefined
  /** the transactional producer every commit goes through (exactly-once: the outputs too) */
  private producer: ProducerPort | undefined
  /** at-least-once: an idempotent producer outside transactions, for the outputs sent as they are made */
  private outputProducer: ProducerPort | undefined
  private assigned: number[] = []
  /** the state of every assigned partition's task (running ones are also in `partitions`) */
  readonly tasks = new Map<number, TaskState>()
  private readonly reader: ChangelogReader
  /** aborts when the runner stops: a restore in progress gives up at once (see ChangelogReader) */
  private readonly closing = new AbortController()
  /**
   * aborts when the assignment it was made for ends (the group starts rebalancing): a restore in
   * progress stops, instead of reading on for a partition that may have moved while the
   * rebalance's drop waits behind it in the serial chain; a new one comes with the next assignment
   */
  private assignment = new AbortController()
  private rebalancing = false
  private lastCommit = Date.now()
  private commitChain: Promise<void> = Promise.resolve()
  private ticker: NodeJS.Timeout | undefined
  private outputWatchTimer: NodeJS.Timeout | undefined
  private partitionCheckTimer: NodeJS.Timeout | undefined
  private readonly hanging: HangingTransactionWatch
  private readonly outputWatch: OutputWatch
  private stopping = false
  private fatal: Error | undefined
  rebalances = 0
  /** transactions (or at-least-once commits) that landed */
  commits = 0
  /** times the client restarted its group consumer by itself after a failure (a broker outage) */
  consumerRestarts = 0
  /** since when the consumer has been failing and restarting without rejoining the group; undefined: it is fine */
  unavailableSince: number | undefined
  /** the consumer's last failure */
  lastCrash: string | undefined
  /** the last error the client retried by itself (what a start that takes long waits on; errorText says it in words) */
  lastRetried: Error | undefined
  /**
   * Resolves with what the brokers refuse for good (credentials, an ACL, a TLS handshake they
   * close is not one: that is retried) as soon as the client first retries it, rather than after
   * its retries run out: `ebb run` ends a start with it at once.
   */
  readonly refused: Promise<EbbError>
  private refuse: (err: EbbError) => void = () => {}

  /** Whether this instance is assigned `partition` now. */
  holds (partition: number): boolean { return this.assigned.includes(partition) }

  /** Per assigned partition: records behind the end of the input (at the last fetch). */
  consumerLag (): Map<number, number> {
    return new Map([...this.partitions.values()].map((p) => [p.partition, p.lag]))
  }
  /** changelog records restored, and still to restore, per partition */
  get restore (): Map<number, { restored: number, remaining: number }> { return this.reader.progress }
  /** hanging transactions this runner aborted, by topic (hanging-watch.ts) */
  get hangingTransactionsAborted (): ReadonlyMap<string, number> { return this.hanging.aborted }

  /** Moves a partition's task to `to`; a move the lifecycle does not allow is a bug, and says so. */
  private transition (partition: number, to: TaskState): void {
    const from = this.tasks.get(partition) ?? 'closed'
    if (from === to) return
    if (!(from === 'closed' && to === 'created') && !NEXT[from].includes(to)) throw new Error(`partition ${partition}: task state ${from} → ${to} is not allowed`)
    if (to === 'closed') this.tasks.delete(partition)
    else this.tasks.set(partition, to)
  }
  private readonly knownSchemaIds: Set<number>
  private readonly registry: SchemaRegistry | undefined
  private observer: EngineObserver | undefined
  inputPartitions = 0

  constructor (readonly config: RunConfig, readonly topology: Topology, client?: KafkaClient) {
    this.refused = new Promise((resolve) => { this.refuse = resolve })
    this.client = client ?? new PlatformaticClient(config, config.instanceId, (err) => {
      this.lastRetried = err
      const refused = kafkaRefusal(err, config.brokers.join(','))
      if (refused !== undefined) this.refuse(refused)
    })
    this.knownSchemaIds = new Set(config.knownSchemaIds)
    this.sendsEarly = config.processingGuarantee === 'at_least_once'
    this.registry = config.schemaRegistryUrl === null ? undefined : new SchemaRegistry(config.schemaRegistryUrl, config.schemaRegistryUserInfo)
    this.hanging = new HangingTransactionWatch(() => this.admin as AdminPort, config.hangingTransactionTimeoutMs)
    this.reader = new ChangelogReader(this.client, () => this.admin as AdminPort, config, this.hanging)
    this.outputWatch = new OutputWatch(() => this.admin as AdminPort, this.hanging, OUTPUT_TOPICS.map((t) => config.topics[t]))
    this.owners = new PartitionOwners(this.client, () => this.admin, config.applicationId, config.topics.input)
  }

  attachMetrics (m: EbbMetrics): void { this.observer = m.observer }

  /** set by `ebb run` while it retries to reach the brokers: why this instance is not ready */
  waiting: string | undefined

  readiness (): { ready: boolean, reason: string } {
    if (this.fatal !== undefined) return { ready: false, reason: `failed: ${this.fatal.message}` }
    if (this.waiting !== undefined) return { ready: false, reason: this.waiting }
    if (this.registry?.unavailableSince !== undefined) return { ready: false, reason: `the schema registry is unavailable since ${new Date(this.registry.unavailableSince).toISOString()} (${this.registry.lastError ?? 'no answer'}): records that need it wait` }
    if (this.unavailableSince !== undefined) return { ready: false, reason: `Kafka is unavailable since ${new Date(this.unavailableSince).toISOString()}: the consumer restarts (${this.lastCrash ?? 'failed'})` }
    if (this.rebalancing) return { ready: false, reason: 'the group is rebalancing' }
    if (this.assigned.length === 0) return { ready: false, reason: 'no partitions assigned' }
    // (with why the last attempt to open one failed, when one did: a restore behind the group's offset, a stalled read)
    const failed = this.lastOpenFailure !== undefined && this.holds(this.lastOpenFailure.partition) && this.tasks.get(this.lastOpenFailure.partition) !== 'running' ? `; the last attempt failed: ${this.lastOpenFailure.message}` : ''
    const restoring = this.assigned.filter((p) => this.tasks.get(p) === 'restoring')
    if (restoring.length > 0) return { ready: false, reason: `restoring state from the changelog: partition(s) ${restoring.join(', ')}${failed}` }
    const opening = this.assigned.filter((p) => this.tasks.get(p) !== 'running')
    if (opening.length > 0) return { ready: false, reason: `opening partition(s) ${opening.join(', ')}${failed}` }
    return { ready: true, reason: `${this.assigned.length} partition(s) assigned` }
  }

  /** The last committed alerts and tasks of this instance (GET /alerts, a user's recent alerts). */
  readonly recent = new RecentRecords(10_000)
  /** Input partitions' owners, for the interactive query. */
  readonly owners: PartitionOwners

  /** Creates the topics if asked, joins the group and starts consuming. `apiUrl` is advertised to the group. */
  async start (apiUrl?: string): Promise<void> {
    const c = this.config
    makeDirectory(c.stateDir)
    this.admin = await this.client.admin()
    await this.ensureTopics(this.admin)
    this.encodings = await this.outputEncodings()
    const eos = c.processingGuarantee === 'exactly_once'
    const onRequest = (api: string, seconds: number): void => { this.observer?.kafkaRequestSeconds?.(api, seconds) }
    // Both guarantees commit in a transaction: the changelog records and the input offsets land
    // together or not at all. At-least-once sends its outputs outside it, as they are made, with
    // a second, idempotent producer (a transactional one can write only inside a transaction).
    this.producer = await this.client.producer({ transactionalId: c.instanceId, onRequest })
    if (!eos) this.outputProducer = await this.client.producer({ onRequest })
    // The client id names this member's API in the group description (see owners.ts).
    this.consumer = await this.client.groupConsumer({ groupId: c.applicationId, topic: c.topics.input, clientId: apiUrl === undefined ? undefined : `${c.instanceId}@${apiUrl}`, fromBeginning: c.autoOffsetReset === 'earliest' })
    this.consumer.onRebalancing(() => { this.onRebalancing() })
    this.consumer.onAssigned((partitions) => { this.onAssignment(partitions) })
    // A consumer that restarts by itself fetches from the committed offsets again: the work done
    // since the last commit must go, exactly as at a rebalance, or it would be applied twice.
    this.consumer.onCrash((restarting, err) => {
      if (this.stopping) return
      log.warn({ restarting, err: err.message }, 'the Kafka consumer failed')
      this.lastCrash = err.message
      const refused = kafkaRefusal(err, this.config.brokers.join(','))
      if (refused !== undefined) { this.fail(refused); return }
      if (restarting) {
        // The client restarts it by itself; how long that goes on is bounded by `ebb run` (retryTimeout).
        this.consumerRestarts++
        this.unavailableSince ??= Date.now()
        this.onRebalancing()
      }
      else this.fail(new EbbError(Errors.KAFKA_CONSUMER_FAILED, err.message))
    })
    await this.consumer.start(async (batch, control) => { await this.onBatch(batch, control) })
    // Time-based commits and idle partitions are driven even when no batch arrives.
    this.ticker = setInterval(() => {
      this.schedule(async () => { await this.commitIfDue(false) })
      this.retryUnopened()
    }, Math.max(100, Math.min(c.commitIntervalMs, 1000)))
    // Partitions added to the input while this runs: the client's group keeps its old assignment
    // (the new partitions are not read, their lag shows nowhere) until a rebalance hands one out
    // with no changelog partition behind it. Said at once instead, and the run ends (exit 2).
    this.partitionCheckTimer = setInterval(() => { void this.checkPartitionCount() }, PARTITION_CHECK_MS)
    this.partitionCheckTimer.unref()
    // Outputs held back by a hanging transaction (exactly-once writes them in transactions): one
    // instance watches them, the one that holds input partition 0. Off the serial chain: it only
    // reads offsets and, rarely, writes an abort marker.
    if (eos && c.hangingTransactionTimeoutMs > 0) {
      this.outputWatchTimer = setInterval(() => {
        if (this.holds(0) && !this.stopping) void this.outputWatch.check(this.closing.signal)
      }, Math.min(30_000, Math.max(1000, c.hangingTransactionTimeoutMs / 2)))
      this.outputWatchTimer.unref()
    }
    log.info({ applicationId: c.applicationId, instanceId: c.instanceId, input: c.topics.input, guarantee: c.processingGuarantee }, 'ebb run started')
  }

  private encodings: OutputEncodings = AVRO_OUTPUTS

  /**
   * Each output topic's format; with `confluent`, its Avro schema registered under
   * `<topic>-value` (Confluent's TopicNameStrategy), so that any Confluent deserializer, console
   * consumer or Kafka UI can read it through the registry.
   */
  private async outputEncodings (): Promise<OutputEncodings> {
    const c = this.config
    const out = { ...AVRO_OUTPUTS }
    for (const key of OUTPUT_TOPICS) {
      const kind = OUTPUT_KIND_OF[key]
      const format = c.outputFormats[key]
      if (format !== 'confluent') { out[kind] = { format }; continue }
      const schema = JSON.stringify(JSON.parse(readFileSync(schemaPath(OUTPUT_SCHEMA_FILES[kind]), 'utf8')))
      const id = await (this.registry as SchemaRegistry).register(`${c.topics[key]}-value`, schema)
      out[kind] = { format, schemaId: id }
    }
    return out
  }

  /** a partition count of the input other than the state's, seen at the last check (acted on when the next one agrees) */
  private otherPartitionCount: number | undefined

  private async checkPartitionCount (): Promise<void> {
    if (this.stopping || this.fatal !== undefined || this.admin === undefined) return
    const c = this.config
    const n = await this.admin.partitionCount(c.topics.input).catch(() => 0) // (unknown: the consumer says why)
    const changed = n > 0 && n !== this.inputPartitions
    // Two checks in a row, so that one odd metadata answer (a broker restarting) cannot end the run.
    if (changed && n === this.otherPartitionCount && !this.stopping) this.fail(new EbbError(Errors.CONFIG_INVALID, 'topics', partitionsChanged(c.topics.input, n, changelogTopic(c), this.inputPartitions)))
    this.otherPartitionCount = changed ? n : undefined
  }

  private async ensureTopics (admin: AdminPort): Promise<void> {
    const c = this.config
    const existing = await admin.topics()
    let inputPartitions = await admin.partitionCount(c.topics.input)
    const want: TopicSpec[] = []
    if (inputPartitions === 0) {
      if (!c.topics.createIfAbsent) throw new EbbError(Errors.CONFIG_INVALID, 'topics.input', `topic ${c.topics.input} does not exist and topics.createIfAbsent is false`)
      inputPartitions = c.topics.partitions
      want.push({ topic: c.topics.input, partitions: inputPartitions, replicationFactor: c.topics.replicationFactor })
    }
    this.inputPartitions = inputPartitions
    const outputs = [c.topics.alerts, c.topics.tasks, c.topics.outcomes, c.topics.deadLetters]
    const missing = outputs.filter((t) => !existing.has(t))
    // Said now: otherwise every commit fails on the first output it writes, retried as an outage.
    if (missing.length > 0 && !c.topics.createIfAbsent) throw new EbbError(Errors.CONFIG_INVALID, 'topics', `the output topic(s) ${missing.join(', ')} do not exist and topics.createIfAbsent is false: create them, or set createIfAbsent: true`)
    for (const t of missing) want.push({ topic: t, partitions: c.topics.partitions, replicationFactor: c.topics.replicationFactor })
    const cl = changelogTopic(c)
    if (!existing.has(cl)) {
      // State is partitioned like the input: changelog partition p holds input partition p's store.
      want.push({ topic: cl, partitions: inputPartitions, replicationFactor: c.topics.replicationFactor, compact: true })
    } else {
      const n = await admin.partitionCount(cl)
      if (n !== inputPartitions) throw new EbbError(Errors.CONFIG_INVALID, 'topics', partitionsChanged(c.topics.input, inputPartitions, cl, n))
    }
    if (want.length > 0) {
      await admin.createTopics(want)
      log.info({ topics: want.map((t) => t.topic) }, 'created topics')
      // The application has run before (its changelog is there), so an output topic that was not
      // is newly named in the configuration, or was deleted (by hand, by a tool), most often while
      // an instance ran: its commits failed on it and this restart made it again. Said, because
      // its consumers lost what it held.
      if (missing.length > 0 && existing.has(cl)) log.warn({ topics: missing }, 'output topic(s) missing though the application ran before (deleted, or newly named in the configuration?): created, empty; what follows the last commit is written to them')
    }
  }

  /**
   * The group rebalances: no commit until the new assignment, and every partition's uncommitted
   * work is dropped (its store holds only committed state; the cache and buffered outputs go).
   * Committing here instead would race the rejoin (the client does not wait for this handler, and
   * the new owner could read the offsets before the transaction lands); dropping is always safe:
   * the next owner, this instance or another, redoes at most one commit interval from the
   * committed offsets, and the transaction made the first attempt invisible.
   */
  private onRebalancing (): void {
    if (this.stopping) return
    this.rebalancing = true
    this.assignment.abort(new Error('the group is rebalancing'))
    this.schedule(async () => { await this.dropAll() })
  }

  private async dropAll (): Promise<void> {
    // A commit in flight lands (or fails) before the stores close under its local writes.
    await this.settle()
    const parts = [...this.partitions.values()]
    this.partitions.clear()
    for (const p of [...this.tasks.keys()]) this.transition(p, 'closed')
    // At-least-once: outputs of the dropped work not sent yet are dropped with it (the next owner
    // makes them again); a send already in flight cannot be called back, a repeat at-least-once allows.
    this.earlyQueued -= outputCount(this.early)
    this.early = noOutputs()
    for (const st of parts) {
      st.sink.discard()
      await st.store.close().catch((err: unknown) => { log.error({ err, partition: st.partition }, 'closing a partition store failed') })
    }
  }

  /** A new assignment: partitions no longer ours are dropped without a commit (their new owner redoes them). */
  private onAssignment (partitions: number[]): void {
    // A stopping runner takes nothing new: its stores are closing, and a new runner may open them.
    if (this.stopping) return
    this.unavailableSince = undefined
    this.rebalances++
    if (this.assignment.signal.aborted) this.assignment = new AbortController()
    this.assigned = [...partitions].sort((a, b) => a - b)
    // Revoked partitions close in the serial chain: a store must never close under a batch,
    // a commit or a restore that is still using it (RocksDB would abort the process).
    this.schedule(async () => {
      // Commits resume only here, after the drop scheduled at the rebalance: a commit queued
      // before it must not carry the previous assignment's work (the client may announce the
      // rebalance and the new assignment at once).
      this.rebalancing = false
      await this.settle() // a revoked partition's store must not close under a commit's local write
      for (const [p, st] of this.partitions) {
        if (this.assigned.includes(p)) continue
        this.partitions.delete(p)
        this.transition(p, 'closed')
        st.sink.discard()
        await st.store.close().catch((err: unknown) => { log.error({ err, partition: p }, 'closing a revoked partition store failed') })
      }
    })
    log.info({ partitions: this.assigned }, 'partitions assigned')
    // Open (and restore) every assigned partition now, not at its next record: a quiet
    // partition's timers must still fire, and its users must answer the API.
    // The tasks are created in the serial chain too, after a drop scheduled before this assignment.
    const assigned = this.assigned
    this.schedule(async () => {
      for (const p of assigned) if (this.assigned.includes(p) && !this.tasks.has(p)) this.transition(p, 'created')
      for (const p of assigned) if (this.assigned.includes(p) && !this.rebalancing) await this.tryOpen(p)
    })
  }

  /**
   * Runs `f` after everything scheduled before it: batches, commits and ticks never interleave
   * (a commit must not drain state in the middle of a batch). A failure is fatal for the runner.
   */
  private async serial (f: () => Promise<void>): Promise<void> {
    const run = this.commitChain.then(f)
    this.commitChain = run.catch((err: unknown) => { this.fail(err as Error) })
    await run
  }

  private schedule (f: () => Promise<void>): void { void this.serial(f).catch(() => {}) }

  private async onBatch (batch: FetchedBatch, control: BatchControl): Promise<void> {
    if (this.fatal !== undefined || this.stopping || !control.active()) return
    let waitForRegistry = false
    await this.serial(async () => {
      if (this.stopping || this.rebalancing || !this.assigned.includes(batch.partition) || !control.active()) return
      // Not resolved: the client fetches the batch again, once the partition opens.
      const st = await this.tryOpen(batch.partition)
      if (st === undefined || !control.active()) return // stale: opening moved the fetch position
      if (batch.records.length > 0) {
        if (this.registry !== undefined && !(await this.registry.prefetch(KafkaBatch.schemaIds(batch.records, this.knownSchemaIds)))) {
          // The registry cannot answer: the records are valid until proven otherwise, so the
          // batch is left unresolved (fetched again after a pause), never dead-lettered, for
          // retryTimeout; the other partitions go on meanwhile.
          const since = this.registry.unavailableSince ?? Date.now()
          if (Date.now() - since >= this.config.retryTimeoutMs) throw new EbbError(Errors.SCHEMA_REGISTRY_UNAVAILABLE, Math.round(this.config.retryTimeoutMs / 1000), this.registry.lastError ?? 'no answer')
          waitForRegistry = true
          await this.commitIfDue(false)
          return
        }
        const recs = batch.records
        for (let i = 0; i < recs.length; i += PROCESS_SLICE) {
          await st.task.process(new KafkaBatch(recs.length <= PROCESS_SLICE ? recs : recs.slice(i, i + PROCESS_SLICE), batch.topic, batch.partition, this.knownSchemaIds, this.registry))
          // At-least-once, a slice's outputs leave now, not after the whole batch (a fetch brings
          // up to 1 MB a partition, ~100 ms of work).
          if (this.sendsEarly) this.sendEarly(st)
          // The responses of a commit in flight, or of outputs sent early, wait behind a batch's
          // synchronous work: between slices they are handled.
          if ((this.committing || this.earlySending !== undefined) && i + PROCESS_SLICE < recs.length) await new Promise((resolve) => setImmediate(resolve))
        }
        st.pendingOffset = batch.lastOffset
        st.lastRecordAt = Date.now()
        st.lag = Math.max(0, Number(BigInt(batch.highWatermark) - BigInt(batch.lastOffset) - 1n))
        // The fetch position moves on; the group's committed offset moves only with the transaction.
        control.resolve(batch.lastOffset)
      }
      await this.commitIfDue(false)
    })
    if (waitForRegistry) await new Promise((resolve) => setTimeout(resolve, REGISTRY_RETRY_MS))
    await control.heartbeat()
  }

  private lastOpenRetry = 0
  /** why the last failed open failed (readiness says it while the partition stays closed) */
  private lastOpenFailure: { partition: number, message: string } | undefined

  /**
   * An assigned partition whose open failed (a restore cut short, a state behind the committed
   * offset) is tried again every few seconds, not only when a record arrives: a quiet partition
   * must still open, so that its timers fire and its users answer the API.
   */
  private retryUnopened (): void {
    if (this.rebalancing || this.stopping || this.fatal !== undefined || Date.now() - this.lastOpenRetry < OPEN_RETRY_MS) return
    const missing = this.assigned.filter((p) => !this.partitions.has(p))
    if (missing.length === 0) return
    this.lastOpenRetry = Date.now()
    this.schedule(async () => { for (const p of missing) if (this.assigned.includes(p) && !this.rebalancing) await this.tryOpen(p) })
  }

  /** Opens a partition's task, restoring its store from the changelog first when it is behind. */
  private async open (partition: number): Promise<AssignedPartition> {
    const have = this.partitions.get(partition)
    if (have !== undefined) return have
    const dir = join(this.config.stateDir, `${this.config.topics.input}-${partition}`)
    const store = await openStore(dir, partition)
    try {
      this.transition(partition, 'restoring')
      const resumeAt = await this.reader.restoreConsistent(partition, store, AbortSignal.any([this.closing.signal, this.assignment.signal]))
      const sink = new KafkaSink(this.encodings)
      const task = await PartitionTask.open({ topology: this.topology, store, sink, cacheCapacity: this.config.cacheSize, observer: this.observer })
      const st: AssignedPartition = { partition, task, store, sink, pendingOffset: null, lastRecordAt: Date.now(), lag: 0 }
      this.partitions.set(partition, st)
      this.transition(partition, 'running')
      if (this.lastOpenFailure?.partition === partition) this.lastOpenFailure = undefined
      // Fetch exactly after what the state has seen (a batch fetched before this is stale).
      if (resumeAt !== null) (this.consumer as GroupConsumerPort).seek(this.config.topics.input, partition, resumeAt)
      return st
    } catch (err) {
      // A restore cut short (a rebalance, a broker hiccup) must not leave the store locked.
      await store.close().catch(() => {})
      if (this.tasks.get(partition) === 'restoring') this.transition(partition, 'created')
      throw err
    }
  }

  /**
   * Opens a partition, or says why not: a failed open (the restore's Kafka reads during a
   * rebalance) is not fatal; the partition is tried again at its next batch or assignment.
   */
  private async tryOpen (partition: number): Promise<AssignedPartition | undefined> {
    if (this.stopping) return undefined
    try {
      return await this.open(partition)
    } catch (err) {
      // Not retried: a corrupt state, one that belongs to input the group no longer has, or a changelog replaced under it.
      const code = (err as EbbError).code
      if (code === Errors.STATE_CORRUPT.code || code === Errors.STATE_AHEAD.code || code === Errors.CHANGELOG_LOST.code) throw err
      if (this.assignment.signal.aborted || this.closing.signal.aborted) log.info({ partition }, 'opening the partition stopped: the group rebalances or the runner stops')
      else {
        log.warn({ partition, err: (err as Error).message }, 'opening the partition failed; it is retried')
        this.lastOpenFailure = { partition, message: (err as Error).message }
      }
      return undefined
    }
  }

  /**
   * Commits when the interval passed (or `force`): idle partitions first follow the others'
   * stream time, so their timers fire; then the commit is prepared (every partition's dirty
   * state, timers and outputs drained, its input offset taken) and sent on its way — one
   * transaction, then the local stores. With `pipelinedCommits` the partitions go on processing
   * meanwhile: the commit does not stop the stream (by default they wait for it). One commit is in flight at most: a commit due while one is in flight
   * waits for it only when `force`d or when the buffers are full (MAX_BUFFERED), else it starts
   * as soon as the one in flight lands. The in-memory completion of a landed commit (eviction,
   * the recent view) runs in the serial chain, never in the middle of a batch.
   */
  private async commitIfDue (force: boolean): Promise<void> {
    if (this.fatal !== undefined || this.producer === undefined || this.rebalancing) return
    await this.applyLanded()
    const now = Date.now()
    // Bounded memory: outputs wait in the sinks until the commit, so a large backlog commits early.
    let buffered = 0
    for (const st of this.partitions.values()) buffered += st.sink.size + st.task.cache.dirtyCount
    buffered += outputCount(this.early)
    const full = buffered >= MAX_BUFFERED
    if (!force && now - this.lastCommit < this.config.commitIntervalMs && !full) return
    if (this.committing) {
      if (!force && !full) return // started again when the one in flight lands
      await this.settle()
      if (this.fatal !== undefined || this.rebalancing) return
    }
    this.lastCommit = now
    this.advanceIdlePartitions(now)
    const parts = [...this.partitions.values()]
    // Pipelined, the dirty states are encoded by the commit in flight, a chunk at a time, while
    // the partitions go on (encodeDeferred); forced (a close, a rebalance), all of them now.
    const defer = this.config.pipelinedCommits && !force
    const prepared: PreparedPartition[] = parts.map((st) => {
      const b = new ChangelogBatch(st.store.batch(), defer ? () => st.store.batch() : undefined)
      const deferred = st.task.prepareCommit(b, defer ? b.states : undefined)
      // At-least-once: what is left goes the early way too, so outputs leave in the order they were made.
      if (this.sendsEarly) this.sendEarly(st)
      if (st.pendingOffset !== null) {
        const next = Buffer.alloc(8)
        next.writeBigUInt64BE(BigInt(st.pendingOffset) + 1n)
        b.put(META_INPUT, next)
      }
      return { st, b, out: st.sink.drain(), offset: st.pendingOffset, deferred }
    })
    // (at-least-once, the outputs left already; their records for the recent view still say there was work)
    const hasWork = prepared.some((x) => x.offset !== null || x.deferred > 0 || x.b.records.length > 1 || outputCount(x.out) + x.out.alertRecords.length + x.out.taskRecords.length > 0)
    if (!hasWork) { for (const x of prepared) x.b.discard(); return }
    // From here the partitions go on: what changes now belongs to the next commit.
    for (const x of prepared) { x.st.pendingOffset = null; x.st.task.prepared() }
    this.committing = true
    this.inflight = this.land(prepared, this.earlyQueued)
    // Without pipelinedCommits the partitions wait for the commit, as Kafka Streams' do.
    if (force || !this.config.pipelinedCommits) await this.settle()
  }

  /** Waits for the commit in flight (if any), then completes it in memory (in the serial chain). */
  private async settle (): Promise<void> {
    await this.inflight
    await this.applyLanded()
  }

  /** whether a commit is in flight (its transaction or its local writes) */
  private committing = false
  /** the commit in flight; never rejects (a failure fails the runner) */
  private inflight: Promise<void> = Promise.resolve()
  /** a commit that landed, waiting for its in-memory completion in the serial chain */
  private landed: PreparedPartition[] | undefined

  /** at-least-once: outputs are sent as they are made (sendEarly), not with the commit */
  private readonly sendsEarly: boolean
  /** at-least-once: outputs waiting for the send in flight (sendEarly) */
  private early: CommitContent['outputs'] = noOutputs()
  /** at-least-once: the pump that sends them, while there are any; undefined when idle */
  private earlySending: Promise<void> | undefined
  /** at-least-once: outputs handed to sendEarly so far, and those of them the brokers acknowledged */
  private earlyQueued = 0
  private earlyAcked = 0
  /** at-least-once: commits waiting for the outputs made before them (earlySent) */
  private earlyWaiters: Array<{ upTo: number, resolve: () => void }> = []

  /**
   * At-least-once: a processed batch's outputs are sent now, not at the commit, so a dispatch
   * consumer sees a task within a send's round trip of its event (README, "Choosing
   * commitInterval"). One send in flight at most; outputs made meanwhile go together in the next
   * one (per-key order holds: outputs are sent in the order they were made). The commit that
   * carries their input offsets waits for them first (land): a crash before it repeats them,
   * which at-least-once allows (their ids are deterministic).
   */
  private sendEarly (st: AssignedPartition): void {
    const m = st.sink.drainMessages()
    const n = outputCount(m)
    if (n === 0) return
    const q = this.early
    for (const r of m.alerts) q.alerts.push(r)
    for (const r of m.tasks) q.tasks.push(r)
    for (const r of m.outcomes) q.outcomes.push(r)
    for (const r of m.deadLetters) q.deadLetters.push(r)
    this.earlyQueued += n
    this.earlySending ??= this.pumpEarly()
  }

  private async pumpEarly (): Promise<void> {
    try {
      while (outputCount(this.early) > 0) {
        const q = this.early
        this.early = noOutputs()
        await sendOutputs(q, { config: this.config, producer: this.outputProducer as ProducerPort })
        this.earlyAcked += outputCount(q)
        this.earlyWaiters = this.earlyWaiters.filter((w) => { if (w.upTo > this.earlyAcked) return true; w.resolve(); return false })
      }
    } catch (err) {
      this.fail(kafkaRefusal(err, this.config.brokers.join(',')) ?? new EbbError(Errors.SINK_WRITE, `sending outputs failed (${errorText(err)}); the work since the last commit is redone from the committed offsets`))
    } finally {
      this.earlySending = undefined
      // After a failure nothing more is acknowledged: the waiting commits go on to see it (land).
      for (const w of this.earlyWaiters) w.resolve()
      this.earlyWaiters = []
    }
  }

  /**
   * Resolves when the outputs handed to sendEarly up to now have been acknowledged, or the
   * sending failed (then the runner has failed); outputs made after this call are not waited for
   * (with pipelinedCommits the partitions go on making them).
   */
  private async earlySent (upTo: number): Promise<void> {
    if (this.earlyAcked >= upTo || this.earlySending === undefined) return
    await new Promise<void>((resolve) => { this.earlyWaiters.push({ upTo, resolve }) })
  }

  /** The commit's I/O: one transaction, then each partition's local store with the changelog position it now matches. */
  private async land (prepared: PreparedPartition[], earlyUpTo: number): Promise<void> {
    const c = this.config
    const t0 = performance.now()
    try {
      let changelogEnd: Map<number, bigint>
      try {
        // A pipelined commit's states, encoded a chunk at a time: the partitions process between
        // chunks (a state they change before its turn is encoded first: StateCache.deferDirty).
        for (const x of prepared) {
          if (x.deferred === 0) continue
          while (!x.st.task.encodeDeferred(DEFERRED_CHUNK)) await new Promise((resolve) => setImmediate(resolve))
        }
        if (this.sendsEarly) {
          // The input offsets are committed only after the outputs their records made.
          await this.earlySent(earlyUpTo)
          if (this.fatal !== undefined) throw this.fatal
        }
        changelogEnd = await writeCommit({
          outputs: {
            alerts: prepared.flatMap((x) => x.out.alerts),
            tasks: prepared.flatMap((x) => x.out.tasks),
            outcomes: prepared.flatMap((x) => x.out.outcomes),
            deadLetters: prepared.flatMap((x) => x.out.deadLetters)
          },
          changelogs: prepared.map((x) => ({ partition: x.st.partition, records: x.b.records })),
          offsets: prepared.filter((x) => x.offset !== null).map((x) => ({ partition: x.st.partition, offset: (BigInt(x.offset as string) + 1n).toString() }))
        }, { config: c, producer: this.producer as ProducerPort, consumer: this.consumer as GroupConsumerPort, observer: this.observer })
      } catch (err) {
        for (const x of prepared) x.b.discard()
        // A refusal (credentials, an ACL, a topic's settings) is not an outage: said at once, not retried for retryTimeout.
        const text = errorText(err)
        const hint = commitFailureHint(text, c.instanceId)
        throw kafkaRefusal(err, c.brokers.join(',')) ?? new EbbError(Errors.SINK_WRITE, `the commit transaction failed (${text}${hint}); the work since the last commit is dropped and redone from the committed offsets`)
      }
      // Durable in Kafka: now the local stores, each with the changelog position it matches.
      for (const x of prepared) {
        const end = changelogEnd.get(x.st.partition)
        if (end !== undefined) {
          // The next changelog offset after ours: past the transaction's commit marker.
          const pos = Buffer.alloc(8)
          pos.writeBigUInt64BE(end + 1n)
          x.b.putLocal(META_CHANGELOG, pos)
        }
        await x.b.write()
      }
      this.observer?.commitSeconds((performance.now() - t0) / 1000)
      this.commits++
      this.landed = prepared
      // The next commit may be due already: it starts now rather than at the next batch or tick.
      this.schedule(async () => { await this.commitIfDue(false) })
    } catch (err) {
      // The tasks went on from state this commit was to make durable: the runner is dropped, and
      // a new one resumes from the committed offsets and the stores (`ebb run`).
      this.fail(err as Error)
    } finally {
      this.committing = false
    }
  }

  /** A landed commit, in memory: each partition's task moves on (eviction), the recent view gets its alerts and tasks. */
  private async applyLanded (): Promise<void> {
    const prepared = this.landed
    this.landed = undefined
    if (prepared === undefined) return
    for (const x of prepared) {
      // Only committed alerts and tasks reach the API's recent view: an aborted one never existed.
      for (const a of x.out.alertRecords) this.recent.alerts.push(a)
      for (const t of x.out.taskRecords) this.recent.tasks.push(t)
      for (const u of x.out.erasedUsers) this.recent.forget(u)
      // A partition dropped meanwhile (a rebalance) is not this task any more.
      if (this.partitions.get(x.st.partition) !== x.st) continue
      x.st.task.written()
      // An ERASE leaves no file holding the user: the store rewrites itself (O(store); rare).
      await x.st.task.purgeErased()
    }
  }

  /**
   * A partition that received nothing for idlePartitionTimeout follows the largest watermark of
   * this instance's partitions (docs/time.md), so its users' local-midnight timers still fire.
   */
  private advanceIdlePartitions (now: number): void {
    let wm = Number.NEGATIVE_INFINITY
    for (const st of this.partitions.values()) if (st.task.watermark > wm) wm = st.task.watermark
    if (!Number.isFinite(wm)) return
    for (const st of this.partitions.values()) {
      if (now - st.lastRecordAt >= this.config.idlePartitionTimeoutMs && st.task.watermark < wm) st.task.advanceTo(wm)
    }
  }

  private fail (err: Error): void {
    if (this.fatal !== undefined) return
    // Stopping, the last commit may meet a rebalance that began meanwhile (another instance joined
    // or left as this one was told to stop; onRebalancing drops nothing once stopping), which
    // refuses its offsets. Nothing is lost, as at any rebalance: the transaction is aborted, the
    // stores keep the last commit, and the partitions' next owners redo the rest from the
    // committed offsets. The stop stays a clean one (exit 0): a supervisor must not take it for a crash.
    if (this.stopping && isEbbError(err) && err.code === Errors.SINK_WRITE.code && (GROUP_MOVED_ON.test(err.message) || GROUP_REBALANCING.test(err.message))) {
      log.warn({ err: err.message }, 'the last commit met a rebalance and was refused; the partitions\' next owners redo the work since the commit before it')
      return
    }
    this.fatal = err
    log.error({ err: { message: err.message, code: (err as EbbError).code } }, 'ebb run failed')
  }

  /** Resolves when the runner failed (for the CLI to exit 1). */
  get failure (): Error | undefined { return this.fatal }

  /**
   * Graceful stop: finish the batch in flight, commit, then leave the group, then close the
   * stores. The commit comes before leaving: once this member leaves, its partitions' new owners
   * read the committed offsets and the changelog, and a commit landing after that would be
   * redone by them or lost to their state.
   */
  async stop (): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    // A restore in progress stops now (during an outage it would wait out its own timeouts).
    this.closing.abort(new Error('the runner is closing'))
    if (this.ticker !== undefined) clearInterval(this.ticker)
    if (this.outputWatchTimer !== undefined) clearInterval(this.outputWatchTimer)
    if (this.partitionCheckTimer !== undefined) clearInterval(this.partitionCheckTimer)
    // Batches that arrive from now on are left unprocessed (onBatch); the last commit runs after
    // the batch in flight, in the serial chain.
    if (this.fatal === undefined) await this.serial(async () => { await this.commitIfDue(true) }).catch((err: unknown) => { this.fail(err as Error) })
    // Every part is closed whatever another one threw: a store left open would stay locked for
    // the next runner, a consumer left running would stay in the group. What failed is recorded.
    const step = async (what: string, f: () => Promise<void> | undefined): Promise<void> => {
      this.closingStep = what
      const t0 = Date.now()
      try { await f() } catch (err) { this.closeFailures.push(`${what}: ${(err as Error).message}`); log.error({ err: (err as Error).message }, `closing the runner: ${what} failed`) }
      // What holds a stop up (a broker gone mid-close) is named in the log.
      if (Date.now() - t0 > 2000) log.warn({ seconds: (Date.now() - t0) / 1000 }, `closing the runner: ${what} took long`)
    }
    await step('stopping the consumer', () => this.consumer?.stop())
    await step('the last batch', async () => { await this.commitChain })
    // (a failed runner skipped the last commit, but one may still be in flight)
    await step('the commit in flight', async () => { await this.inflight })
    // At-least-once: outputs still on their way (a last commit that was skipped did not wait for them).
    await step('the outputs in flight', async () => { while (this.earlySending !== undefined) await this.earlySending })
    for (const st of this.partitions.values()) await step(`closing the store of partition ${st.partition}`, () => st.store.close())
    this.partitions.clear()
    for (const p of [...this.tasks.keys()]) this.transition(p, 'closed')
    await step('closing the consumer', () => this.consumer?.close())
    await step('closing the producer', () => this.producer?.close())
    await step('closing the output producer', () => this.outputProducer?.close())
    await step('closing the admin client', () => this.admin?.close())
  }

  /** the step a stop is at (named when a stop does not finish in time) */
  closingStep: string | undefined

  /** What failed while stopping (empty: everything closed). */
  readonly closeFailures: string[] = []
}
