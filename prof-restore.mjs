import { Kafka, logLevel } from 'kafkajs'
import { KafkajsClient } from './dist/src/kafka/kafkajs-client.js'
import { RocksStore } from './dist/src/state/rocks-store.js'
import { mkdtempSync } from 'node:fs'
const N = 1000000
const kafka = new Kafka({ clientId: 'dbg', brokers: ['127.0.0.1:19092'], logLevel: logLevel.NOTHING })
const admin = kafka.admin(); await admin.connect()
const topic = process.argv[2] ?? `dbg-${Date.now()}`
if (process.argv[2] === undefined) {
await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
const p = kafka.producer({ transactionalId: topic + '-w', idempotent: true, maxInFlightRequests: 1 }); await p.connect()
const val = Buffer.alloc(118, 7)
for (let i = 0; i < N; i += 100000) {
  const txn = await p.transaction()
  for (let j = i; j < Math.min(N, i + 100000); j += 3000) {
    const messages = []; for (let k = j; k < Math.min(N, i + 100000, j + 3000); k++) messages.push({ key: Buffer.from('suser-' + String(k).padStart(7, '0')), value: val })
    await txn.send({ topic, acks: -1, messages })
  }
  await txn.commit()
}
await p.disconnect()
console.log(topic)
}
const end = BigInt((await admin.fetchTopicOffsets(topic))[0].high)
const store = await RocksStore.open(mkdtempSync('/tmp/prs-'))
const c = new KafkajsClient({ brokers: ['127.0.0.1:19092'], ssl: false, sasl: null }, 'dbg')
let n = 0; const t0 = performance.now()
let writing = Promise.resolve()
await c.readPartition(topic, 0, 0n, end - 2n, async (recs) => { const b = store.batch(); for (const m of recs) { b.put(m.key, m.value); n++ } await writing; writing = b.write() })
await writing
console.log('read', n, ((performance.now() - t0) / 1000).toFixed(2), 's', Math.round(n / ((performance.now() - t0) / 1000)))
await store.close()
await admin.disconnect()
