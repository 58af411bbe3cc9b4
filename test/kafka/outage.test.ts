import { type ChildProcess, spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeAvroEvent } from '../../src/events/avro.js'
import { projectRoot } from '../../src/paths.js'
import { kafkaScript } from '../../bench/kafka-env.js'
import { tempDir } from '../helpers.js'
import { produce, until } from './broker.js'

/**
 * A broker that goes away for good: `ebb run` keeps its API up and retries (/readyz says why,
 * /metrics counts the retries, /healthz stays 200 while it still tries), then, past
 * retryTimeout, exits 1 with EBB_KAFKA_UNREACHABLE, promptly. The broker is one of its own (port
 * 29492): the other Kafka tests keep theirs. (Outages the broker comes back from: chaos.test.ts.)
 */
const PORT = 29492
const BOOTSTRAP = `127.0.0.1:${PORT}`
const tmp = tempDir('ebb-outage-')

const kafkaSh = (...args: string[]): void => { kafkaScript(PORT, args) }

beforeAll(() => { kafkaSh('stop'); kafkaSh('start') }, 300_000)
afterAll(() => { kafkaSh('stop'); tmp.cleanup() }, 120_000)

describe('ebb run when the broker goes away for good', () => {
  it('retries with the API up, then exits 1 with EBB_KAFKA_UNREACHABLE once retryTimeout has passed', async () => {
    const app = `outage-${Date.now().toString(36)}`
    const at = Date.parse('2026-03-02T09:00:00Z')
    await produce(`${app}.events`, 1, Array.from({ length: 50 }, (_, i) => ({ key: `u${i}`, value: encodeAvroEvent({ eventId: `e${i}`, userId: `u${i}`, type: 'LOGIN', ts: at + i * 60_000, tz: 'UTC', targetId: null, durationMs: null, amount: null, channel: null, taskId: null }) })), BOOTSTRAP)
    const file = join(tmp.dir, 'ebb.yaml')
    writeFileSync(file, `applicationId: ${app}
instanceId: ${app}-0
brokers: [${BOOTSTRAP}]
topics: { input: ${app}.events, alerts: ${app}.alerts, tasks: ${app}.tasks, outcomes: ${app}.outcomes, deadLetters: ${app}.dlq, partitions: 1 }
stateDir: ${join(tmp.dir, 'state')}
commitInterval: 200ms
retryTimeout: 10s
http: { port: 0 }
`)
    const child: ChildProcess = spawn(process.execPath, [join(projectRoot(), 'bin', 'ebb.js'), 'run', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, EBB_LOG_LEVEL: 'error' } })
    let stderr = ''
    child.stderr?.on('data', (b: Buffer) => { stderr += b.toString() })
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code) }))
    try {
      const api = await until(async () => /API (http:\/\/\S+)/.exec(stderr)?.[1], 30_000, 'the API')
      await until(async () => (await fetch(`${api}/readyz`)).status === 200 ? true : undefined, 90_000, 'ready')
      await until(async () => /^ebb_commits_total ([1-9]\d*)$/m.test(await (await fetch(`${api}/metrics`)).text()) ? true : undefined, 30_000, 'a commit')

      // (the time is taken before the kill: the instance sees its connections drop at once, while
      // the script returns only once the broker's process is gone)
      const killedAt = Date.now()
      kafkaSh('kill')
      // Still trying: alive, not ready with the reason, the retries counted.
      const reason = await until(async () => {
        const r = await fetch(`${api}/readyz`)
        const body = await r.json() as { reason: string }
        return r.status === 503 && /Kafka is unavailable/.test(body.reason) ? body.reason : undefined
      }, 60_000, '/readyz to say Kafka is unavailable')
      expect(reason).toMatch(/Kafka is unavailable/)
      const metrics = await (await fetch(`${api}/metrics`)).text()
      const retries = [...metrics.matchAll(/^ebb_kafka_retries_total\{reason="(\w+)"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[2]), 0)
      expect(retries).toBeGreaterThan(0)
      if (Date.now() - killedAt < 9000) expect((await fetch(`${api}/healthz`)).status).toBe(200)

      // Gives up past retryTimeout (10 s from the outage's start), within a bounded stop.
      const code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => { resolve('still running') }, 90_000))])
      expect(code).toBe(1)
      const took = (Date.now() - killedAt) / 1000
      expect(took).toBeGreaterThanOrEqual(10)
      expect(took).toBeLessThan(10 + 20 + 30) // retryTimeout + the stop's deadline + one attempt's client timeouts
      expect(stderr).toMatch(/could not be reached for 10 s \(retryTimeout\).*\[EBB_KAFKA_UNREACHABLE\]/)
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
  }, 300_000)
})
