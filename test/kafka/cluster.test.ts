import { Admin, FindCoordinatorKeyTypes } from '@platformatic/kafka'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { abortTransaction, openTransactions } from '../../src/kafka/hanging-transactions.js'
import { HangingTransactionWatch } from '../../src/kafka/hanging-watch.js'
import { KafkaCluster } from '../../bench/kafka-env.js'
import { ghostTransaction, partitionEnds, testClient, until } from './broker.js'

/**
 * Hanging transactions (KIP-664) on a cluster of three brokers, where a single broker cannot
 * show what goes wrong: the partition's leader and the transaction coordinators are different
 * brokers, so each request of the search must go to the right one (DescribeProducers to the
 * leader, ListTransactions to every broker, DescribeTransactions to the transactional id's
 * coordinator, the abort marker to the leader), and a coordinator can be down while the leader
 * is up: then nothing may be judged, since a producer missing from the lists may be one whose
 * commit is decided and not yet written. The ghost is made as in hanging.test.ts (partition
 * verification off; a producer id no coordinator gave). Its own ports: 29892, 29902, 29912.
 */
const cluster = new KafkaCluster(29892, 3, 'transaction.partition.verification.enable=false')
const GHOST = 876_543n

beforeAll(() => { cluster.start() }, 300_000)
afterAll(() => { cluster.stop() }, 120_000)

describe('hanging transactions on a 3-broker cluster', () => {
  it('are found and aborted where the leader and the coordinator are different brokers, and not judged while a coordinator is down', async () => {
    const topic = `hang3-${Date.now().toString(36)}`
    const client = testClient(cluster.bootstrap)
    const setup = await client.admin()
    try { await setup.createTopics([{ topic, partitions: 1, replicationFactor: 1 }]) } finally { await setup.close() }
    const admin = new Admin({ clientId: 'ebb-test-cluster', bootstrapBrokers: cluster.bootstrap.split(',') })
    try {
      const leaderId = (await admin.metadata({ topics: [topic], forceUpdate: true })).topics.get(topic)?.partitions[0]?.leader
      if (leaderId === undefined) throw new Error(`${topic}-0 has no leader`)
      // A transactional id whose coordinator is not the partition's leader (the coordinators'
      // topic is created by the first FindCoordinator: until it has leaders, asked again).
      const pick = await until(async () => {
        for (let i = 0; i < 64; i++) {
          const id = `${topic}-owned-${i}`
          const [c] = await admin.findCoordinator({ keyType: FindCoordinatorKeyTypes.TRANSACTION, keys: [id] })
          if (c !== undefined && c.nodeId !== leaderId) return { id, coordinatorId: c.nodeId }
        }
        return undefined
      }, 60_000, 'a coordinator other than the leader')
      expect(pick.coordinatorId).not.toBe(leaderId)

      const producer = await client.producer({ transactionalId: pick.id })
      try {
        await ghostTransaction(admin, topic, 0, { id: GHOST, epoch: 0 }) // offset 0
        const owned = await producer.transaction()
        await owned.sendBatch([{ topic, records: [{ key: 'k', value: Buffer.from('owned'), partition: 0 }] }]) // offset 1
        const open = await until(async () => await openTransactions(admin, topic, 0), 60_000, 'every coordinator to answer')
        expect(open.map((t) => [t.startOffset, t.transactionalId, t.coordinatorHasIt]).sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual([[0n, null, false], [1n, pick.id, true]])
        expect(await partitionEnds(admin, topic, 0)).toEqual({ stable: 0n, high: 2n })
        const ghost = open.find((t) => !t.coordinatorHasIt)
        if (ghost === undefined) throw new Error('no hanging transaction listed')
        await abortTransaction(admin, topic, 0, ghost) // the marker at 2, written by the leader
        expect((await partitionEnds(admin, topic, 0)).stable).toBe(1n)
        await owned.commit()
        await until(async () => { const e = await partitionEnds(admin, topic, 0); return e.stable === e.high && e.high === 4n ? e : undefined }, 30_000, 'the commit marker')
      } finally {
        await producer.close()
      }

      // The owned id's coordinator goes down (SIGKILL); the leader stays. A new ghost hangs on the
      // partition, but while a coordinators' partition has no live leader nothing is judged: the
      // watch neither aborts nor counts it, however long it has been seen.
      await ghostTransaction(admin, topic, 0, { id: GHOST, epoch: 1 }) // offset 4
      const watchAdmin = await testClient(cluster.bootstrap).admin()
      let now = 0
      const watch = new HangingTransactionWatch(() => watchAdmin, 1000, () => now)
      try {
        const down = pick.coordinatorId - 1 // node ids are 1-based, in the order of cluster.ports
        cluster.kill(down)
        const refused = await until(async () => await openTransactions(admin, topic, 0).then(() => undefined, (err: Error) => /not every transaction coordinator is available/.test(err.message) ? err.message : undefined), 60_000, 'the dead coordinator to be seen')
        expect(refused).toContain('nothing is judged')
        for (let look = 0; look < 3; look++, now += 5000) expect(await watch.abortHung(topic, 0)).toBe(false)
        expect(watch.aborted.get(topic)).toBeUndefined()
        expect((await partitionEnds(admin, topic, 0)).stable).toBe(4n)

        // Back: the ghost is judged from its first look after the coordinator returned, and
        // aborted once it has hung for the watch's timeout.
        cluster.resume(down)
        await until(async () => await openTransactions(admin, topic, 0).then((o) => o.length === 1 && !o[0].coordinatorHasIt ? o : undefined), 90_000, 'the coordinators back')
        expect(await watch.abortHung(topic, 0)).toBe(false) // first seen hanging now
        // Aborted at the first look after the watch's timeout. A look the resumed cluster cannot
        // answer yet judges nothing (ListTransactions refused while the returning coordinator
        // loads its partitions: a fresh-clone CI run met it, 12-07), and the next one is taken.
        expect(await until(async () => { now += 1000; return (await watch.abortHung(topic, 0)) ? true : undefined }, 30_000, 'the hanging transaction aborted')).toBe(true)
        expect(watch.aborted.get(topic)).toBe(1)
        const e = await partitionEnds(admin, topic, 0)
        expect(e).toEqual({ stable: 6n, high: 6n }) // 4 the ghost, 5 its abort marker
      } finally {
        await watchAdmin.close()
      }
    } finally {
      await admin.close()
    }
  }, 300_000)
})
