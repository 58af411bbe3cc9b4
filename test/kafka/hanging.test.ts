import { type ChildProcess, spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Admin } from '@platformatic/kafka'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeAvroEvent } from '../../src/events/avro.js'
import { CHANGELOG_SUFFIX } from '../../src/kafka/config.js'
import { abortTransaction, openTransactions } from '../../src/kafka/hanging-transactions.js'
import { projectRoot } from '../../src/paths.js'
import { kafkaScript } from '../../bench/kafka-env.js'
import { tempDir } from '../helpers.js'
import { committedCount, ghostTransaction, partitionEnds, produce, testClient, until } from './broker.js'

/**
 * A hanging transaction (KIP-664) on the state changelog and on an output, on a real broker: open
 * on the partition while no coordinator owns it, so it would hide what follows from every restore
 * (or every read_committed consumer of the output) for good. A chaos run met one after two broker kills. Made here the way it arises: a
 * transactional batch appended without the coordinator knowing (the broker of this test turns
 * off KIP-890's partition verification, which otherwise refuses such a batch; the ghost's
 * producer id is one no coordinator ever gave). Its own broker (port 29692): the other Kafka
 * tests keep theirs.
 */
const PORT = 29692
const BOOTSTRAP = `127.0.0.1:${PORT}`
const tmp = tempDir('ebb-hanging-')
const children: ChildProcess[] = []
const kafkaSh = (...args: string[]): void => { kafkaScript(PORT, args, { KAFKA_PROPS: 'transaction.partition.verification.enable=false' }) }

beforeAll(() => { kafkaSh('stop'); kafkaSh('start') }, 300_000)
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  kafkaSh('stop')
  tmp.cleanup()
}, 120_000)

const GHOST = { id: 987_654n, epoch: 0 }

/** The partition's last stable offset and high watermark (partition 0). */
async function ends (topic: string): Promise<{ stable: bigint, high: bigint }> {
  const admin = new Admin({ clientId: 'ebb-test-offsets', bootstrapBrokers: [BOOTSTRAP] })
  try { return await partitionEnds(admin, topic, 0) } finally { await admin.close() }
}

function startEbb (file: string): { child: ChildProcess, exited: Promise<number | null>, stderr: () => string } {
  const child = spawn(process.execPath, [join(projectRoot(), 'bin', 'ebb.js'), 'run', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, EBB_LOG_LEVEL: 'warn' } })
  children.push(child)
  let err = ''
  child.stderr?.on('data', (b: Buffer) => { err += b.toString() })
  return { child, exited: new Promise((resolve) => child.on('exit', (code) => { resolve(code) })), stderr: () => err }
}

describe('hanging transactions on the real broker', () => {
  it('are told apart from transactions a coordinator owns, and aborted by a marker the leader writes', async () => {
    const topic = `hang-${Date.now().toString(36)}`
    await produce(topic, 1, [{ key: 'k', value: Buffer.from('committed') }], BOOTSTRAP)
    const admin = new Admin({ clientId: 'ebb-test-hanging', bootstrapBrokers: [BOOTSTRAP] })
    const producer = await testClient(BOOTSTRAP).producer({ transactionalId: `${topic}-owned` })
    try {
      await ghostTransaction(admin, topic, 0, GHOST) // offset 1
      const owned = await producer.transaction()
      await owned.sendBatch([{ topic, records: [{ key: 'k', value: Buffer.from('owned'), partition: 0 }] }]) // offset 2
      // (the coordinators' topic was created a moment ago by the owned producer: until each of its
      // partitions has a leader, nothing is judged)
      const open = await until(async () => await openTransactions(admin, topic, 0), 30_000, 'the coordinators')
      expect(open.map((t) => [t.startOffset, t.transactionalId, t.coordinatorHasIt]).sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual([[1n, null, false], [2n, `${topic}-owned`, true]])
      expect(await ends(topic)).toEqual({ stable: 1n, high: 3n })
      const ghost = open.find((t) => !t.coordinatorHasIt)
      if (ghost === undefined) throw new Error('no hanging transaction listed')
      expect(ghost.producerId).toBe(GHOST.id)
      await abortTransaction(admin, topic, 0, ghost)
      // The ghost's records are aborted (the marker at 3): the stable offset moves on to the owned transaction.
      expect((await ends(topic)).stable).toBe(2n)
      expect((await openTransactions(admin, topic, 0)).map((t) => t.coordinatorHasIt)).toEqual([true])
      await owned.commit()
      // the coordinator writes its commit marker after EndTxn answers: then nothing hides the tail
      const after = await until(async () => { const e = await ends(topic); return e.stable === e.high ? e : undefined }, 30_000, 'the commit marker')
      expect(after.high).toBe(5n) // 0 committed, 1 ghost, 2 owned, 3 the abort marker, 4 the commit marker
      expect(await openTransactions(admin, topic, 0)).toEqual([])
    } finally {
      await producer.close()
      await admin.close()
    }
  }, 120_000)

  it('ebb run restoring behind one aborts it after hangingTransactionTimeout and opens the partition on the whole changelog; one on an output it aborts too', async () => {
    const app = `hang-${Date.now().toString(36)}`
    const input = `${app}.events`
    const changelog = app + CHANGELOG_SUFFIX
    const at = Date.parse('2026-03-02T09:00:00Z')
    const events = (from: number, n: number): Array<{ key: string, value: Buffer }> => Array.from({ length: n }, (_, i) => ({ key: `u${(from + i) % 40}`, value: encodeAvroEvent({ eventId: `e${from + i}`, userId: `u${(from + i) % 40}`, type: 'LOGIN', ts: at + (from + i) * 60_000, tz: 'UTC', targetId: null, durationMs: null, amount: null, channel: null, taskId: null }) }))
    const config = (instance: string, extra = ''): string => {
      const file = join(tmp.dir, `${instance}.yaml`)
      writeFileSync(file, `applicationId: ${app}
instanceId: ${instance}
brokers: [${BOOTSTRAP}]
topics: { input: ${input}, alerts: ${app}.alerts, tasks: ${app}.tasks, outcomes: ${app}.outcomes, deadLetters: ${app}.dlq, partitions: 1 }
stateDir: ${join(tmp.dir, instance)}
commitInterval: 200ms
http: { port: 0 }
${extra}`)
      return file
    }
    const runUntilCommitted = async (instance: string, n: number): Promise<void> => {
      const e = startEbb(config(instance))
      const admin = await testClient(BOOTSTRAP).admin()
      try {
        await until(async () => await committedCount(app, input, admin) >= n ? true : undefined, 90_000, `${instance} to commit ${n}`)
      } finally {
        await admin.close()
      }
      e.child.kill('SIGTERM')
      expect(await e.exited).toBe(0)
    }

    await produce(input, 1, events(0, 200), BOOTSTRAP)
    await runUntilCommitted(`${app}-a`, 200)
    // The ghost at the changelog's end; b (an empty state directory: a new machine) restores up
    // to it, which is all a has committed, then commits 200 more records' state behind it.
    const admin = new Admin({ clientId: 'ebb-test-hanging', bootstrapBrokers: [BOOTSTRAP] })
    try { await ghostTransaction(admin, changelog, 0, GHOST) } finally { await admin.close() }
    const hiddenFrom = (await ends(changelog)).stable
    await produce(input, 1, events(200, 200), BOOTSTRAP)
    await runUntilCommitted(`${app}-b`, 400)
    expect((await ends(changelog)).stable).toBe(hiddenFrom) // b's state is hidden behind the ghost

    // c, on an empty state directory, can read only a's state: it must not open on it.
    const c = startEbb(config(`${app}-c`, 'restoreConsistencyTimeout: 2s\nhangingTransactionTimeout: 5s\n'))
    const t0 = Date.now()
    const api = await until(async () => /API (http:\/\/\S+)/.exec(c.stderr())?.[1], 60_000, 'the API')
    await until(async () => (await fetch(`${api}/readyz`)).status === 200 ? true : undefined, 90_000, 'c ready')
    expect(Date.now() - t0).toBeGreaterThanOrEqual(5000) // not before the ghost had hung for the timeout
    const aborted = async (topic: string): Promise<string | undefined> => new RegExp(`^ebb_hanging_transactions_aborted_total\\{topic="${topic.replace(/\./g, '\\.')}"\\} (\\d+)$`, 'm').exec(await (await fetch(`${api}/metrics`)).text())?.[1]
    expect(await aborted(changelog)).toBe('1')
    expect(c.stderr()).toContain('aborted a hanging transaction')
    const after = await ends(changelog)
    expect(after.stable).toBe(after.high)
    // Ready means the restored state records the input offset the group committed (400, b's last
    // commit): the partition opens only on a state that agrees with it (changelog-reader.ts).
    const check = await testClient(BOOTSTRAP).admin()
    try { expect(await committedCount(app, input, check)).toBe(400) } finally { await check.close() }

    // A ghost on an output while c runs: the dispatch service (read_committed) would read nothing
    // past it. c holds input partition 0, so it watches the outputs, and aborts it too.
    const tasks = `${app}.tasks`
    const admin2 = new Admin({ clientId: 'ebb-test-hanging', bootstrapBrokers: [BOOTSTRAP] })
    try { await ghostTransaction(admin2, tasks, 0, GHOST) } finally { await admin2.close() }
    await produce(input, 1, events(400, 100), BOOTSTRAP) // more work behind it
    expect(await until(async () => await aborted(tasks), 60_000, 'the output watch to abort the ghost')).toBe('1')
    const t = await until(async () => { const e = await ends(tasks); return e.stable === e.high ? e : undefined }, 30_000, 'the tasks topic readable to its end')
    expect(t.high).toBeGreaterThan(0n)
    c.child.kill('SIGTERM')
    expect(await c.exited).toBe(0)
  }, 300_000)
})
