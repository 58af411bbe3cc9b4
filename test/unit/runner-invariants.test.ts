import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { encodeAvroEvent } from '../../src/events/avro.js'
import type { AdminPort, BatchControl, FetchedBatch, GroupConsumerPort, InputRecord, KafkaClient, OffsetCommit, OutRecord, ProducerPort, SendResult, TopicSpec } from '../../src/kafka/client.js'
import { parseRunConfig } from '../../src/kafka/config.js'
import { KafkaRunner } from '../../src/kafka/runner.js'
import { decodeOutput } from '../../src/kafka/wire.js'
import { loginDays, ringSum } from '../../src/signals/signals.js'
import { COUNT_DAYS, OFF_VIEW } from '../../src/state/user-state.js'
import { at, defaultTopology, tempDir } from '../helpers.js'

/**
 * Regression tests for the runner's exactly-once invariants around ownership changes, on a fake
 * broker that can hold a transaction back and release it at the worst moment (the real broker
 * cannot be made to do that on cue; test/kafka covers the same paths against it, statistically).
 */
const tmp = tempDir()
afterAll(() => { tmp.cleanup() })

class FakeBroker {
  /** committed records per "topic/partition" (a transaction's appear only at its commit) */
  readonly logs = new Map<string, InputRecord[]>()
  readonly committed = new Map<number, bigint>()
  readonly calls: string[] = []
  /** set: the next transaction commit returns at once but lands only at release() */
  hold = false
  /** set: the next transaction commit does not return until release() (a slow commit in flight) */
  blockCommit = false
  private held: Array<() => void> = []
  /**
   * Per topic: the offset of a transaction left open there by a producer that died. A
   * read_committed reader, and the end offset it is given, stop before it (the last stable offset).
   */
  readonly openTransactionAt = new Map<string, number>()
  /** whether a coordinator owns those open transactions (false: they hang, KIP-664) */
  coordinatorOwnsOpenTransactions = true
  /** hanging transactions aborted through the admin port ("topic@startOffset") */
  readonly aborted: string[] = []
  /** called on every committedOffsets() before it answers */
  onCommittedOffsets: () => void = () => {}
  /** set: the next changelog read hangs until its signal aborts (a restore in progress) */
  holdRestore = false
  /** set: sends outside transactions (at-least-once) of outputs, not of changelog records, wait for release() */
  holdSends = false
  /** set: sends outside transactions fail */
  failSends = false
  /** set: transaction commits fail (their records and offsets never land), with this error */
  failCommits = false
  commitError = 'Connection error: connect ECONNREFUSED'
  /** the producers each instance made: "transactional" or "idempotent" */
  readonly producers: string[] = []
  /** the signals of the reads held so far, and whether they were aborted */
  readonly heldRestores: AbortSignal[] = []

  append (topic: string, partition: number, records: OutRecord[]): SendResult {
    const log = this.logs.get(`${topic}/${partition}`) ?? []
    this.logs.set(`${topic}/${partition}`, log)
    const baseOffset = BigInt(log.length)
    for (const r of records) log.push({ offset: String(log.length), key: typeof r.key === 'string' ? Buffer.from(r.key) : r.key, value: r.value })
    return { partition, baseOffset }
  }

  release (): void { const h = this.held; this.held = []; for (const f of h) f() }

  client (instance: string, input: { topic: string, records: InputRecord[] }): KafkaClient & { consumer: FakeConsumer } {
    const consumer = new FakeConsumer(this, instance, input)
    const admin: AdminPort = {
      topics: async () => new Set([...this.logs.keys()].map((k) => k.split('/')[0])),
      partitionCount: async (topic) => topic === input.topic ? 1 : (this.logs.has(`${topic}/0`) ? 1 : 0),
      createTopics: async (specs: TopicSpec[]) => { for (const s of specs) if (!this.logs.has(`${s.topic}/0`)) this.logs.set(`${s.topic}/0`, []) },
      endOffsets: async (topic) => new Map([[0, BigInt(Math.min(this.logs.get(`${topic}/0`)?.length ?? 0, this.openTransactionAt.get(topic) ?? Number.POSITIVE_INFINITY))]]),
      highWatermarks: async (topic) => new Map([[0, BigInt(this.logs.get(`${topic}/0`)?.length ?? 0)]]),
      committedOffsets: async () => { this.onCommittedOffsets(); return new Map([[0, this.committed.get(0) ?? null]]) },
      groupAssignments: async () => [],
      openTransactions: async (topic) => {
        const at = this.openTransactionAt.get(topic)
        return at === undefined ? [] : [{ producerId: 7n, producerEpoch: 3, coordinatorEpoch: 1, startOffset: BigInt(at), transactionalId: null, coordinatorHasIt: this.coordinatorOwnsOpenTransactions }]
      },
      abortTransaction: async (topic, _partition, t) => { this.aborted.push(`${topic}@${t.startOffset}`); this.openTransactionAt.delete(topic) },
      close: async () => {}
    }
    const producer: ProducerPort = {
      send: async (topic, records) => [this.append(topic, records[0]?.partition ?? 0, records)],
      sendBatch: async (pieces) => {
        if (this.holdSends && !pieces.some((p) => p.topic.includes('changelog'))) await new Promise<void>((resolve) => { this.held.push(resolve) })
        if (this.failSends) throw new Error('Connection error: connect ECONNREFUSED')
        this.calls.push(`${instance} send ${pieces.map((p) => p.topic).join(',')}`)
        return pieces.map((p) => ({ topic: p.topic, ...this.append(p.topic, p.records[0]?.partition ?? 0, p.records) }))
      },
      transaction: async () => {
        const staged: Array<{ topic: string, records: OutRecord[] }> = []
        let offsets: OffsetCommit[] = []
        const send = (topic: string, records: OutRecord[]): SendResult => {
          staged.push({ topic, records })
          // The base offset the records will have once committed (nothing else writes meanwhile here).
          return { partition: 0, baseOffset: BigInt(this.logs.get(`${topic}/0`)?.length ?? 0) + BigInt(staged.filter((s) => s.topic === topic).slice(0, -1).reduce((n, s) => n + s.records.length, 0)) }
        }
        return {
          sendBatch: async (pieces) => pieces.map((p) => ({ topic: p.topic, ...send(p.topic, p.records) })),
          sendOffsets: async (_c, o) => { offsets = o },
          commit: async () => {
            if (this.failCommits) throw new Error(this.commitError)
            this.calls.push(`${instance} txn.commit`)
            const land = (): void => {
              for (const s of staged) this.append(s.topic, 0, s.records)
              // the commit marker: one offset per partition written, never returned to a reader
              for (const topic of new Set(staged.map((s) => s.topic))) this.append(topic, 0, [{ key: null, value: null }])
              for (const o of offsets) this.committed.set(o.partition, BigInt(o.offset))
            }
            if (this.hold) { this.hold = false; this.held.push(land); return }
            if (this.blockCommit) {
              this.blockCommit = false
              await new Promise<void>((resolve) => { this.held.push(() => { land(); resolve() }) })
              return
            }
            land()
          },
          abort: async () => {}
        }
      },
      close: async () => {}
    }
    return {
      consumer,
      admin: async () => admin,
      // A transactional producer writes only inside a transaction, as a real client's does.
      producer: async (opts) => {
        const transactional = opts.transactionalId !== undefined
        this.producers.push(`${instance} ${transactional ? 'transactional' : 'idempotent'}`)
        if (!transactional) return producer
        const outside = async (): Promise<never> => { throw new Error('a transactional producer sent outside a transaction') }
        return { ...producer, send: outside, sendBatch: outside }
      },
      groupConsumer: async () => consumer,
      readPartition: async (topic, partition, from, last, apply, signal) => {
        if (this.holdRestore) {
          this.holdRestore = false
          if (signal === undefined) throw new Error('a restore without an abort signal')
          this.heldRestores.push(signal)
          await new Promise((_resolve, reject) => { signal.addEventListener('abort', () => { reject(signal.reason as Error) }, { once: true }) })
        }
        const log = this.logs.get(`${topic}/${partition}`) ?? []
        const lso = this.openTransactionAt.get(topic) ?? Number.POSITIVE_INFINITY
        const records = log.filter((r) => BigInt(r.offset) >= from && BigInt(r.offset) <= last && Number(r.offset) < lso)
        if (records.length > 0) await apply(records)
      },
      partitionOf: () => 0
    }
  }
}

class FakeConsumer implements GroupConsumerPort {
  private eachBatch: ((batch: FetchedBatch, control: BatchControl) => Promise<void>) | undefined
  private assigned: ((p: number[]) => void) | undefined
  private crashed: ((restarting: boolean, error: Error) => void) | undefined
  private rebalancing: (() => void) | undefined
  readonly seeks: bigint[] = []
  position = 0n
  readonly groupId = 'ebb'
  get topic (): string { return this.input.topic }
  constructor (private readonly broker: FakeBroker, private readonly instance: string, private readonly input: { topic: string, records: InputRecord[] }) {}
  onRebalancing (cb: () => void): void { this.rebalancing = cb }

  /** The group rebalances and gives this member the partition again. */
  rebalance (): void {
    this.rebalancing?.()
    this.position = this.broker.committed.get(0) ?? 0n
    this.assigned?.([0])
  }
  onAssigned (cb: (p: number[]) => void): void { this.assigned = cb }
  onCrash (cb: (restarting: boolean, error: Error) => void): void { this.crashed = cb }

  /** What the client port does when fetching failed and works again: every partition from the committed offsets. */
  crashAndRestart (): void {
    this.crashed?.(true, new Error('Connection error: connect ECONNREFUSED'))
    this.position = this.broker.committed.get(0) ?? 0n
    this.assigned?.([0])
  }
  async start (eachBatch: (batch: FetchedBatch, control: BatchControl) => Promise<void>): Promise<void> {
    this.eachBatch = eachBatch
    this.position = this.broker.committed.get(0) ?? 0n // what a member reads when it is assigned the partition
    this.assigned?.([0])
  }

  /** Delivers the records from the fetch position on, as one batch. */
  async fetch (): Promise<void> {
    const records = this.input.records.filter((r) => BigInt(r.offset) >= this.position)
    if (records.length === 0 || this.eachBatch === undefined) return
    const at = this.seeks.length
    await this.eachBatch(
      { topic: this.input.topic, partition: 0, records, lastOffset: records[records.length - 1].offset, highWatermark: String(this.input.records.length) },
      { resolve: (o) => { this.position = BigInt(o) + 1n }, heartbeat: async () => {}, active: () => this.seeks.length === at }
    )
  }

  seek (_t: string, _p: number, offset: bigint): void { this.seeks.push(offset); this.position = offset }
  async stop (): Promise<void> { this.broker.calls.push(`${this.instance} leave`) }
  async close (): Promise<void> {}
}

const INPUT = 'inv.events'
function config (instance: string, extra = ''): string {
  return `${extra}applicationId: inv\ninstanceId: ${instance}\nbrokers: [127.0.0.1:1]\ntopics: { input: ${INPUT}, alerts: inv.alerts, tasks: inv.tasks, outcomes: inv.outcomes, deadLetters: inv.dlq, partitions: 1 }\nstateDir: ${join(tmp.dir, instance)}\ncommitInterval: 1h\nknownSchemaIds: [7]\nhttp: { port: 0 }\n`
}

function views (n: number): InputRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    offset: String(i),
    key: Buffer.from('u1'),
    value: Buffer.concat([Buffer.from([0, 0, 0, 0, 7]), encodeAvroEvent({ eventId: `e${i}`, userId: 'u1', type: i === 0 ? 'LOGIN' : 'VIEW', ts: at('2026-03-02T09:00') + i * 60_000, tz: 'UTC', targetId: null, durationMs: null, amount: null, channel: null, taskId: null })])
  }))
}

let run = 0
async function runner (broker: FakeBroker, name: string, records: InputRecord[]): Promise<{ r: KafkaRunner, consumer: FakeConsumer }> {
  const instance = `${name}${++run}` // a state directory of its own
  const client = broker.client(instance, { topic: INPUT, records })
  const r = new KafkaRunner(parseRunConfig(config(instance), join(tmp.dir, `${instance}.yaml`), {}), defaultTopology(), client)
  await r.start()
  // The assignment's open (restore included) runs in the runner's serial chain: wait for it.
  for (let i = 0; i < 1000 && !r.partitions.has(0); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  if (!r.partitions.has(0)) throw new Error(`${instance}: partition 0 did not open`)
  return { r, consumer: client.consumer }
}

describe('KafkaRunner ownership invariants (exactly-once)', () => {
  it('a stopping instance commits its last work before it leaves the group', async () => {
    const broker = new FakeBroker()
    const records = views(5)
    const { r, consumer } = await runner(broker, 'a', records)
    await consumer.fetch()
    await r.stop()
    expect(broker.calls.map((c) => c.replace(/^a\d+/, 'a'))).toEqual(['a txn.commit', 'a leave'])
    expect(broker.committed.get(0)).toBe(5n)
  })

  it('a last commit refused because a rebalance began as the instance stopped is a clean stop: nothing of it lands, and the next owner redoes the work once', async () => {
    const broker = new FakeBroker()
    const records = views(5)
    const a = await runner(broker, 'a', records)
    await a.consumer.fetch()
    broker.failCommits = true
    broker.commitError = 'Received response with error while executing API TxnOffsetCommit(v4) (Specified group generation id is not valid)'
    await a.r.stop()
    expect(a.r.failure).toBeUndefined() // exit 0: a supervisor must not take it for a crash
    expect(broker.committed.get(0)).toBeUndefined()
    // or refused while the group is between generations
    broker.commitError = 'Received response with error while executing API TxnOffsetCommit(v4) (The group is rebalancing, so a rejoin is needed.)'
    const d = await runner(broker, 'd', records)
    await d.consumer.fetch()
    await d.r.stop()
    expect(d.r.failure).toBeUndefined()
    expect(broker.committed.get(0)).toBeUndefined()
    // The same refusal for another reason (the broker gone) is still a failure.
    broker.commitError = 'Connection error: connect ECONNREFUSED'
    const c = await runner(broker, 'c', records)
    await c.consumer.fetch()
    await c.r.stop()
    expect(c.r.failure?.message).toMatch(/the commit transaction failed .*ECONNREFUSED/)
    broker.failCommits = false
    const b = await runner(broker, 'b', records)
    await b.consumer.fetch()
    await b.r.stop()
    expect(b.r.failure).toBeUndefined()
    expect(broker.committed.get(0)).toBe(5n)
    expect(await reopen(broker, records)).toEqual({ views7: 4, logins: 1 })
  })

  it('a new owner whose restore races the previous owner\'s last transaction restores again and resumes after it, losing nothing', async () => {
    const broker = new FakeBroker()
    const records = views(8)
    const a = await runner(broker, 'a', records.slice(0, 5))
    await a.consumer.fetch()
    broker.hold = true // a's last commit is in flight when b takes the partition over
    await a.r.stop()
    expect(broker.committed.get(0)).toBeUndefined()
    // It lands between b's changelog read and b's read of the committed offsets: the worst moment.
    broker.onCommittedOffsets = () => { broker.release() }
    const b = await runner(broker, 'b', records)
    expect(b.consumer.seeks).toEqual([5n])
    await b.consumer.fetch()
    await b.r.stop()
    expect(broker.committed.get(0)).toBe(8n)
    // b's state holds all eight events: the five a committed and the three b processed.
    expect(await reopen(broker, records)).toEqual({ views7: 7, logins: 1 })
  })
})

describe('KafkaRunner reopening its own store', () => {
  it('opens it while another producer\'s open transaction holds the changelog\'s stable end below the store\'s position: that is not a lost changelog (EBB_CHANGELOG_LOST is for a changelog that ends before the position)', async () => {
    const broker = new FakeBroker()
    const records = views(5)
    const instance = `s${++run}` // the same state directory for both runners
    const start = async (): Promise<{ r: KafkaRunner, client: ReturnType<FakeBroker['client']> }> => {
      const client = broker.client(instance, { topic: INPUT, records })
      const r = new KafkaRunner(parseRunConfig(config(instance), join(tmp.dir, `${instance}.yaml`), {}), defaultTopology(), client)
      await r.start()
      for (let i = 0; i < 300 && !r.partitions.has(0) && r.failure === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 10))
      return { r, client }
    }
    const a = await start()
    await a.client.consumer.fetch()
    await a.r.stop()
    const changelog = 'inv-user-state-changelog'
    const written = broker.logs.get(`${changelog}/0`)?.length ?? 0
    expect(written).toBeGreaterThan(1)
    // a producer that died between its sends and its commit, with records before our last marker
    broker.openTransactionAt.set(changelog, written - 1)
    const b = await start()
    expect(b.r.failure?.message).toBeUndefined()
    expect(b.r.partitions.has(0)).toBe(true)
    await b.r.stop()
  })
})

describe('KafkaRunner restoring behind a changelog tail hidden by a dead producer\'s open transaction', () => {
  it('never opens the partition on a state that misses records: it fails the open (retriably) and opens once the tail is readable', async () => {
    const broker = new FakeBroker()
    const records = views(8)
    const a = await runner(broker, 'a', records.slice(0, 5))
    await a.consumer.fetch()
    await a.r.stop() // offsets 5 committed, with the state's changelog records
    const changelog = 'inv-user-state-changelog'
    // A producer that died left a transaction open at the changelog's end: what b commits after it is hidden.
    broker.openTransactionAt.set(changelog, broker.logs.get(`${changelog}/0`)?.length ?? 0)
    const b = await runner(broker, 'b', records)
    await b.consumer.fetch()
    await b.r.stop()
    expect(broker.committed.get(0)).toBe(8n)
    // c restores on an empty state directory: it can read the state of offset 5 only.
    const instance = `c${++run}`
    const client = broker.client(instance, { topic: INPUT, records })
    const c = new KafkaRunner(parseRunConfig(config(instance, 'restoreConsistencyTimeout: 600ms\n'), join(tmp.dir, `${instance}.yaml`), {}), defaultTopology(), client)
    await c.start()
    await new Promise((resolve) => setTimeout(resolve, 1500))
    expect(c.partitions.has(0)).toBe(false) // not opened at the group's offset 8 on a state of 5
    expect(client.consumer.seeks).toEqual([])
    expect(c.failure).toBeUndefined() // not fatal: tried again
    expect(c.readiness().ready).toBe(false)
    expect(['created', 'restoring']).toContain(c.tasks.get(0)) // a failed restore goes back to created, and is tried again
    broker.openTransactionAt.delete(changelog) // the broker aborts the dead transaction
    // Nothing new arrives on the partition: the runner tries it again by itself.
    for (let i = 0; i < 100 && !c.partitions.has(0); i++) await new Promise((resolve) => setTimeout(resolve, 100))
    expect(c.partitions.has(0)).toBe(true)
    expect(client.consumer.seeks).toEqual([8n])
    expect([c.tasks.get(0), c.readiness().ready]).toEqual(['running', true])
    await c.stop()
    expect(c.tasks.size).toBe(0) // closed
    expect(await reopen(broker, records)).toEqual({ views7: 7, logins: 1 })
  }, 30_000)
})

describe('KafkaRunner restoring behind a hanging transaction (open on the changelog, no coordinator owns it)', () => {
  /** b commits offsets 5..8 behind an open transaction at the changelog's end; c restores on an empty state */
  async function hiddenTail (broker: FakeBroker, records: InputRecord[]): Promise<{ changelog: string, at: number }> {
    const a = await runner(broker, 'a', records.slice(0, 5))
    await a.consumer.fetch()
    await a.r.stop()
    const changelog = 'inv-user-state-changelog'
    const at = broker.logs.get(`${changelog}/0`)?.length ?? 0
    broker.openTransactionAt.set(changelog, at)
    const b = await runner(broker, 'b', records)
    await b.consumer.fetch()
    await b.r.stop()
    return { changelog, at }
  }
  const restoring = (broker: FakeBroker, records: InputRecord[], hanging: string): { c: KafkaRunner, client: ReturnType<FakeBroker['client']> } => {
    const instance = `c${++run}`
    const client = broker.client(instance, { topic: INPUT, records })
    const c = new KafkaRunner(parseRunConfig(config(instance, `restoreConsistencyTimeout: 200ms\nhangingTransactionTimeout: ${hanging}\n`), join(tmp.dir, `${instance}.yaml`), {}), defaultTopology(), client)
    return { c, client }
  }

  it('aborts it once it has hung for hangingTransactionTimeout, then restores the whole tail and resumes at the group\'s offset', async () => {
    const broker = new FakeBroker()
    broker.coordinatorOwnsOpenTransactions = false
    const records = views(8)
    const { changelog, at } = await hiddenTail(broker, records)
    const { c, client } = restoring(broker, records, '600ms')
    const t0 = Date.now()
    await c.start()
    for (let i = 0; i < 100 && !c.partitions.has(0); i++) await new Promise((resolve) => setTimeout(resolve, 100))
    expect(c.partitions.has(0)).toBe(true)
    // not before it had been seen hanging for the timeout: the first look only notes it
    expect(Date.now() - t0).toBeGreaterThanOrEqual(600)
    expect(broker.aborted).toEqual([`${changelog}@${at}`])
    expect([...c.hangingTransactionsAborted]).toEqual([[changelog, 1]])
    expect(client.consumer.seeks).toEqual([8n])
    await c.stop()
    expect(await reopen(broker, records)).toEqual({ views7: 7, logins: 1 })
  }, 30_000)

  it('never aborts an open transaction that a coordinator owns (it ends it itself), nor any with hangingTransactionTimeout 0s', async () => {
    for (const [owned, hanging] of [[true, '300ms'], [false, '0s']] as const) {
      const broker = new FakeBroker()
      broker.coordinatorOwnsOpenTransactions = owned
      const records = views(8)
      await hiddenTail(broker, records)
      const { c } = restoring(broker, records, hanging)
      await c.start()
      await new Promise((resolve) => setTimeout(resolve, 1500))
      expect([owned, hanging, c.partitions.has(0), broker.aborted]).toEqual([owned, hanging, false, []])
      await c.stop()
    }
  }, 30_000)
})

describe('KafkaRunner with pipelinedCommits: commits without stopping the stream', () => {
  it('processes the next batch while a commit is in flight; the two commits hold every record once', async () => {
    const broker = new FakeBroker()
    const records = views(10)
    const instance = `p${++run}`
    const client = broker.client(instance, { topic: INPUT, records: records.slice(0, 5) })
    const r = new KafkaRunner(parseRunConfig(config(instance).replace('commitInterval: 1h', 'commitInterval: 1ms\npipelinedCommits: true'), join(tmp.dir, `${instance}.yaml`), {}), defaultTopology(), client)
    await r.start()
    for (let i = 0; i < 1000 && !r.partitions.has(0); i++) await new Promise((resolve) => setTimeout(resolve, 10))
    // Opening the partition writes state (no input offset), and its commit comes at the next
    // tick: waited for until it has landed (txn.commit called and counted), so that the commit
    // blocked below is the one carrying the five records, whatever the machine's load.
    const txnCommits = (): number => broker.calls.filter((c) => c.endsWith('txn.commit')).length
    for (let i = 0; i < 300 && !(r.commits >= 1 && r.commits === txnCommits()); i++) await new Promise((resolve) => setTimeout(resolve, 10))
    const before = txnCommits()
    expect([before, r.commits, broker.committed.get(0)]).toEqual([1, 1, undefined])
    broker.blockCommit = true
    await new Promise((resolve) => setTimeout(resolve, 5)) // the commit interval passes
    await client.consumer.fetch() // five records; the commit that carries them starts, and hangs
    for (let i = 0; i < 100 && txnCommits() === before; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    expect(txnCommits()).toBe(before + 1)
    ;(client.consumer as unknown as { input: { records: InputRecord[] } }).input.records = records
    const second = client.consumer.fetch() // the next five, while that commit is in flight
    const outcome = await Promise.race([second.then(() => 'processed'), new Promise((resolve) => setTimeout(resolve, 3000, 'waited for the commit'))])
    expect(outcome).toBe('processed')
    expect([client.consumer.position, broker.committed.get(0), r.commits]).toEqual([10n, undefined, before])
    broker.release() // (lands the held commit at once)
    expect(broker.committed.get(0)).toBe(5n) // the blocked commit carried the first five records
    await r.stop()
    expect(broker.committed.get(0)).toBe(10n)
    expect(r.commits).toBe(before + 2)
    expect(await reopen(broker, records)).toEqual({ views7: 9, logins: 1 })
  })
})

describe('KafkaRunner when the group rebalances during a restore', () => {
  it('stops the restore at once (the partition may have moved), then restores again for the new assignment', async () => {
    const broker = new FakeBroker()
    const records = views(6)
    const a = await runner(broker, 'a', records)
    await a.consumer.fetch()
    await a.r.stop()
    // b opens on an empty state directory: its restore hangs on the changelog read
    broker.holdRestore = true
    const instance = `b${++run}`
    const client = broker.client(instance, { topic: INPUT, records })
    const b = new KafkaRunner(parseRunConfig(config(instance), join(tmp.dir, `${instance}.yaml`), {}), defaultTopology(), client)
    await b.start()
    for (let i = 0; i < 100 && broker.heldRestores.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    expect(broker.heldRestores).toHaveLength(1)
    expect(b.tasks.get(0)).toBe('restoring')
    client.consumer.rebalance()
    // Not left reading until its own timeouts: aborted by the rebalance, and the drop and the new
    // assignment's restore (not held) follow in the serial chain.
    expect(broker.heldRestores[0].aborted).toBe(true)
    for (let i = 0; i < 200 && !b.partitions.has(0); i++) await new Promise((resolve) => setTimeout(resolve, 10))
    expect([b.tasks.get(0), b.failure]).toEqual(['running', undefined])
    expect(client.consumer.seeks).toEqual([6n])
    await b.stop()
    expect(await reopen(broker, records)).toEqual({ views7: 5, logins: 1 })
  })
})

describe('KafkaRunner when the client\'s consumer restarts by itself', () => {
  it('drops the work since the last commit, so the records fetched again are applied once', async () => {
    const broker = new FakeBroker()
    const records = views(20) // more than the 8 recent eventIds a user keeps: a repeat would not be caught as duplicate
    const a = await runner(broker, 'a', records.slice(0, 12))
    await a.consumer.fetch() // 12 records applied, not committed (commitInterval 1h)
    a.consumer.crashAndRestart()
    for (let i = 0; i < 1000 && !a.r.partitions.has(0); i++) await new Promise((resolve) => setTimeout(resolve, 10))
    expect(a.r.partitions.has(0)).toBe(true) // reopened from its store, after the drop
    ;(a.consumer as unknown as { input: { records: InputRecord[] } }).input.records = records
    await a.consumer.fetch() // all 20, from the committed offset (none yet)
    await a.r.stop()
    expect(broker.committed.get(0)).toBe(20n)
    expect(await reopen(broker, records)).toEqual({ views7: 19, logins: 1 })
    expect(broker.logs.get('inv.dlq/0') ?? []).toEqual([])
  })
})

/** A third instance restores the changelog from scratch and reads user u1's counts. */
async function reopen (broker: FakeBroker, records: InputRecord[]): Promise<{ views7: number, logins: number }> {
  const c = await runner(broker, 'c', records)
  const st = c.r.partitions.get(0)
  if (st === undefined) throw new Error('partition 0 not open')
  const s = st.task.cache.getOrLoadSync('u1')
  if (s === undefined) throw new Error('u1 has no state')
  const out = { views7: ringSum(s, OFF_VIEW, COUNT_DAYS, s.headDay, 0, 6), logins: loginDays(s, s.headDay, 7) }
  await c.r.stop()
  return out
}

describe('KafkaRunner at-least-once: outputs leave as they are made', () => {
  /** three views of u1, then a record that is not Avro: its dead letter is the output */
  const records = (): InputRecord[] => [...views(3), { offset: '3', key: Buffer.from('u2'), value: Buffer.from('not an event') }]
  const start = async (broker = new FakeBroker()): Promise<{ r: KafkaRunner, broker: FakeBroker, consumer: FakeConsumer }> => {
    const instance = `l${++run}`
    const client = broker.client(instance, { topic: INPUT, records: records() })
    const r = new KafkaRunner(parseRunConfig(config(instance, 'processingGuarantee: at_least_once\n'), join(tmp.dir, `${instance}.yaml`), {}), defaultTopology(), client)
    await r.start()
    for (let i = 0; i < 1000 && !r.partitions.has(0); i++) await new Promise((resolve) => setTimeout(resolve, 10))
    return { r, broker, consumer: client.consumer }
  }
  const sent = (broker: FakeBroker): number => broker.logs.get('inv.dlq/0')?.length ?? 0
  const calls = (broker: FakeBroker): string[] => broker.calls.map((c) => c.replace(/^l\d+ /, '')).filter((c) => !c.includes('changelog'))

  it('sends a batch\'s outputs without waiting for the commit (an hour away), and commits the offsets only after they are acknowledged', async () => {
    const { r, broker, consumer } = await start()
    broker.holdSends = true
    await consumer.fetch()
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect([sent(broker), r.commits]).toEqual([0, 0]) // the send is in flight, held by the broker
    const stopping = r.stop()
    await new Promise((resolve) => setTimeout(resolve, 50))
    // The last commit's changelog is not held: only its wait for the outputs keeps the offsets back.
    expect(broker.committed.get(0)).toBeUndefined()
    broker.holdSends = false
    broker.release()
    await stopping
    expect(sent(broker)).toBe(1)
    expect(broker.committed.get(0)).toBe(4n)
    expect(calls(broker)).toEqual(['send inv.dlq', 'txn.commit', 'leave'])
    expect(r.failure).toBeUndefined()
    // the commits through a transactional producer, the outputs through an idempotent one
    expect(broker.producers.map((p) => p.replace(/^l\d+ /, ''))).toEqual(['transactional', 'idempotent'])
  })

  it('sends before the commit, not at it', async () => {
    const { r, broker, consumer } = await start()
    await consumer.fetch()
    for (let i = 0; i < 100 && sent(broker) === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    expect([sent(broker), r.commits, broker.committed.get(0)]).toEqual([1, 0, undefined])
    await r.stop()
    expect([sent(broker), r.commits, broker.committed.get(0)]).toEqual([1, 1, 4n])
  })

  it('a consumer restart drops the outputs of the dropped work that wait behind the send in flight; the redone work sends them once', async () => {
    const { r, broker, consumer } = await start()
    const all = [...records(), { offset: '4', key: Buffer.from('u3'), value: Buffer.from('not an event either') }]
    const input = (consumer as unknown as { input: { records: InputRecord[] } }).input
    broker.holdSends = true
    await consumer.fetch() // offsets 0–3: the first dead letter's send is held in flight
    input.records = all
    await consumer.fetch() // offset 4: its dead letter waits behind it
    consumer.crashAndRestart() // the work since the last commit (none) is dropped
    for (let i = 0; i < 1000 && !r.partitions.has(0); i++) await new Promise((resolve) => setTimeout(resolve, 10))
    broker.holdSends = false
    broker.release()
    await consumer.fetch() // everything again, from the committed offsets (none)
    await r.stop()
    const offsets = (broker.logs.get('inv.dlq/0') ?? []).map((x) => (decodeOutput('deadLetter', x.value as Buffer) as { source: { offset: string } }).source.offset)
    // the one in flight went, and again with the redone work; the one waiting went once
    expect([offsets, broker.committed.get(0)]).toEqual([['3', '3', '4'], 5n])
    expect(r.failure).toBeUndefined()
  })

  it('a commit that fails leaves neither its changelog records nor its offsets (one transaction), and the redone work applies each record once', async () => {
    const { r, broker, consumer } = await start()
    await consumer.fetch()
    for (let i = 0; i < 100 && sent(broker) === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    const changelog = (): number => broker.logs.get('inv-user-state-changelog/0')?.length ?? 0
    broker.failCommits = true
    await r.stop() // its last commit fails
    expect(r.failure?.message).toMatch(/the commit transaction failed .*ECONNREFUSED/)
    // Sent outside the transaction, the changelog would be here without the offsets: a state
    // ahead of the input offset, with the input replayed on top of it.
    expect([sent(broker), changelog(), broker.committed.get(0)]).toEqual([1, 0, undefined])
    broker.failCommits = false
    const b = await start(broker) // redoes everything from offset 0, on an empty state
    await b.consumer.fetch()
    await b.r.stop()
    expect(b.r.failure).toBeUndefined()
    // the dead letter repeated (at-least-once), the offsets and the state once
    expect([sent(broker), broker.committed.get(0), changelog() > 0]).toEqual([2, 4n, true])
    expect(await reopen(broker, records())).toEqual({ views7: 2, logins: 1 }) // (the first record is a LOGIN)
  })

  it('a send that fails fails the runner, and the offsets of its records are not committed', async () => {
    const { r, broker, consumer } = await start()
    broker.failSends = true
    await consumer.fetch()
    for (let i = 0; i < 100 && r.failure === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    expect(r.failure?.message).toMatch(/sending outputs failed .*ECONNREFUSED/)
    await r.stop()
    expect([sent(broker), broker.committed.get(0)]).toEqual([0, undefined])
  })
})
