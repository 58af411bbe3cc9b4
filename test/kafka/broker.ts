import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { Kafka, logLevel } from 'kafkajs'
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

export function kafka (bootstrap = BROKER): Kafka {
  return new Kafka({ clientId: 'ebb-test', brokers: [bootstrap], logLevel: logLevel.NOTHING })
}

/** Creates `topic` (unless it exists) and appends `values` to it, acks=all, 5,000 a request. */
export async function produce (topic: string, partitions: number, values: Array<{ key: string | null, value: Buffer }>, bootstrap = BROKER): Promise<void> {
  const admin = kafka(bootstrap).admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }], waitForLeaders: true })
  await admin.disconnect()
  const p = kafka(bootstrap).producer()
  await p.connect()
  for (let i = 0; i < values.length; i += 5000) await p.send({ topic, acks: -1, messages: values.slice(i, i + 5000) })
  await p.disconnect()
}

/** Polls until the group's committed offsets reach the end of the topic (waiting on another process). */
export async function waitCaughtUp (group: string, topic: string, ms = 90_000): Promise<void> {
  const admin = kafka().admin()
  await admin.connect()
  try {
    const end = Date.now() + ms
    while (Date.now() < end) {
      const ends = await admin.fetchTopicOffsets(topic)
      const committed = await admin.fetchOffsets({ groupId: group, topics: [topic] }).catch(() => [])
      const parts = committed[0]?.partitions ?? []
      const done = ends.every((e) => parts.find((p) => p.partition === e.partition)?.offset === e.high)
      if (done && ends.length > 0) return
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    throw new Error(`group ${group} did not catch up with ${topic}`)
  } finally {
    await admin.disconnect()
  }
}
