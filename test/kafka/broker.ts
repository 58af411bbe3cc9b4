import { spawnSync } from 'node:child_process'
import { Admin, produceV9 } from '@platformatic/kafka'
import { join } from 'node:path'
import type { AdminPort } from '../../src/kafka/client.js'
import { connectionTo, partitionLeader } from '../../src/kafka/hanging-transactions.js'
import { PlatformaticClient } from '../../src/kafka/platformatic-client.js'
import { projectRoot } from '../../src/paths.js'

const root = projectRoot()
/** KAFKA_VERSION and KAFKA_PORT pass through to scripts/kafka.sh (e.g. KAFKA_VERSION=4.1.1 KAFKA_PORT=29092 to test a 4.x broker). */
export const BROKER = `127.0.0.1:${process.env.KAFKA_PORT ?? '19092'}`

/** Starts the project's real Kafka (scripts/kafka.sh) unless it runs; returns whether this call started it. */
export function startBroker (): boolean {
  const status = spawnSync('bash', [join(root, 'scripts', 'kafka.sh'), 'status'], { encoding: 'utf8' })
  if (status.status === 0) return false
  const r = spawnSync('bash', [join(root, 'scripts', 'kafka.sh'), 'start'], { encoding: 'utf8', timeout: 180_000 })
  if (r.status !== 0) throw new Error(`scripts/kafka.sh start failed: ${r.stderr}`)
  return true
}

export function stopBroker (): void {
  spawnSync('bash', [join(root, 'scripts', 'kafka.sh'), 'stop'], { encoding: 'utf8', timeout: 60_000 })
}

/** Every committed record value of a topic, read with kcat (librdkafka): not our own client. */
export function kcatValues (topic: string): Buffer[] {
  const r = spawnSync('kcat', ['-C', '-b', BROKER, '-t', topic, '-e', '-q', '-X', 'isolation.level=read_committed', '-f', '%R%s'], { timeout: 60_000, maxBuffer: 1 << 28 })
  if (r.status !== 0) throw new Error(`kcat failed: ${r.stderr.toString()}`)
  const out: Buffer[] = []
  const b = r.stdout
  for (let i = 0; i < b.length;) {
    const n = b.readUInt32BE(i)
    out.push(b.subarray(i + 4, i + 4 + n))
    i += 4 + n
  }
  return out
}

/** The test's own Kafka client: Ebb's ports on @platformatic/kafka (kcat, not this, reads what Ebb writes); `bootstrap` may list several brokers, comma-separated. */
export function testClient (bootstrap = BROKER): PlatformaticClient {
  return new PlatformaticClient({ brokers: bootstrap.split(','), ssl: false, sasl: null }, 'ebb-test')
}

/** Creates `topic` (unless it exists) and appends `values` to it, acks=all, 5,000 a request. */
export async function produce (topic: string, partitions: number, values: Array<{ key: string | null, value: Buffer }>, bootstrap = BROKER): Promise<void> {
  const client = testClient(bootstrap)
  const admin = await client.admin()
  try {
    if (!(await admin.topics()).has(topic)) await admin.createTopics([{ topic, partitions, replicationFactor: 1 }])
  } finally {
    await admin.close()
  }
  const p = await client.producer({})
  try {
    for (let i = 0; i < values.length; i += 5000) await p.send(topic, values.slice(i, i + 5000))
  } finally {
    await p.close()
  }
}

/** The group's committed input records, over all partitions (0 before any commit). */
export async function committedCount (group: string, topic: string, admin?: AdminPort): Promise<number> {
  const a = admin ?? await testClient().admin()
  try {
    const committed = await a.committedOffsets(group, topic).catch(() => new Map<number, bigint | null>())
    let n = 0
    for (const o of committed.values()) n += o === null ? 0 : Number(o)
    return n
  } finally {
    if (admin === undefined) await a.close()
  }
}

/** Polls until the group's committed offsets reach the end of the topic (waiting on another process). */
export async function waitCaughtUp (group: string, topic: string, ms = 90_000): Promise<void> {
  const admin = await testClient().admin()
  try {
    const end = Date.now() + ms
    while (Date.now() < end) {
      const ends = await admin.endOffsets(topic)
      // (the group's coordinator may still be loading: asked again)
      const committed = await admin.committedOffsets(group, topic).catch(() => new Map<number, bigint | null>())
      const done = [...ends].every(([p, high]) => committed.get(p) === high)
      if (done && ends.size > 0) return
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    throw new Error(`group ${group} did not catch up with ${topic}`)
  } finally {
    await admin.close()
  }
}

/** Polls `f` every 200 ms until it gives a value (a throw counts as none yet); fails after `ms`, naming `what`. */
export async function until<T> (f: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await f().catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

/** Deletes a topic and waits (up to 30 s) until the brokers no longer list it. */
export async function deleteTopic (topic: string, bootstrap = BROKER): Promise<void> {
  const admin = new Admin({ clientId: 'ebb-test-delete', bootstrapBrokers: [bootstrap] })
  try { await admin.deleteTopics({ topics: [topic] }) } finally { await admin.close() }
  await until(async () => (await testClient(bootstrap).admin().then(async (a) => { try { return await a.topics() } finally { await a.close() } })).has(topic) ? undefined : true, 30_000, `${topic} deleted`)
}

/**
 * Appends one transactional record to topic-partition as `producer`, an id no coordinator ever
 * gave: a transaction no coordinator owns (a hanging one, KIP-664). The broker must run with
 * transaction.partition.verification.enable=false, which otherwise refuses such a batch.
 */
export async function ghostTransaction (admin: Admin, topic: string, partition: number, producer: { id: bigint, epoch: number }): Promise<void> {
  const conn = await connectionTo(admin, await partitionLeader(admin, topic, partition))
  await produceV9.api.async(conn, -1, 5000, [{ topic, partition, key: Buffer.from('ghost'), value: Buffer.from('ghost') }], { producerId: producer.id, producerEpoch: producer.epoch, transactionalId: 'ghost' })
}

/** A partition's last stable offset (the read_committed end) and high watermark, asked of whichever broker leads it. */
export async function partitionEnds (admin: Admin, topic: string, partition: number): Promise<{ stable: bigint, high: bigint }> {
  const q = async (isolationLevel: 0 | 1): Promise<bigint> => (await admin.listOffsets({ topics: [{ name: topic, partitions: [{ partitionIndex: partition, timestamp: -1n }] }], isolationLevel }))[0].partitions[0].offset
  return { stable: await q(1), high: await q(0) }
}
