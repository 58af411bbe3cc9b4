import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeAvroEvent } from '../../src/events/avro.js'
import { decodeJsonEvent, encodeJsonEvent } from '../../src/events/jsonl.js'
import { decodeOutput } from '../../src/kafka/wire.js'
import { projectRoot } from '../../src/paths.js'
import { kafkaScript } from '../../bench/kafka-env.js'
import { tempDir } from '../helpers.js'
import { committedCount, produce, testClient } from './broker.js'

/**
 * `ebb run` over mutual TLS and over SASL: a broker of its own (port 29592) with a TLS listener
 * (29594) that requires client certificates, signed by a CA made here with openssl, and a SASL
 * listener (29595: SCRAM-SHA-256/512 and PLAIN, user ebb). With the right settings Ebb gives a
 * replay's alerts; without its client certificate, or with a wrong password, the broker refuses
 * it and it gives up after retryTimeout. The events go in, and the alerts are read, over the
 * broker's plaintext listener (the test's own client and kcat), so only Ebb's own connections are secured.
 */
const PORT = 29592
const TLS_BOOTSTRAP = `127.0.0.1:${PORT + 2}`
const SASL_BOOTSTRAP = `127.0.0.1:${PORT + 3}`
const PLAIN = `127.0.0.1:${PORT}`
const root = projectRoot()
const tmp = tempDir('ebb-security-')
const certs = join(tmp.dir, 'certs')

function sh (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: certs, timeout: 300_000, env: { ...process.env, ...env } })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`)
}

/** A CA, the broker's certificate for 127.0.0.1 and a client certificate, PEM. */
function makeCertificates (): void {
  spawnSync('mkdir', ['-p', certs])
  sh('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=ebb-test-ca'])
  writeFileSync(join(certs, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  for (const name of ['server', 'client']) {
    sh('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name === 'server' ? '127.0.0.1' : 'ebb'}`])
    sh('openssl', ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', ...(name === 'server' ? ['-extfile', 'san.ext'] : [])])
  }
  // Kafka's PEM key store: the (PKCS#8) private key and the certificate chain in one file.
  writeFileSync(join(certs, 'server.pem'), readFileSync(join(certs, 'server.key'), 'utf8') + readFileSync(join(certs, 'server.crt'), 'utf8'))
}

const kafkaSh = (...args: string[]): void => { kafkaScript(PORT, args, { KAFKA_TLS_DIR: certs, KAFKA_SASL: '1' }) }

beforeAll(() => { makeCertificates(); kafkaSh('stop'); kafkaSh('start') }, 300_000)
afterAll(() => { kafkaSh('stop'); tmp.cleanup() }, 120_000)

function startEbb (file: string, env: NodeJS.ProcessEnv = {}): { child: ChildProcess, exited: Promise<number | null>, stderr: () => string } {
  const child = spawn(process.execPath, [join(root, 'bin', 'ebb.js'), 'run', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, EBB_LOG_LEVEL: 'error', ...env } })
  let err = ''
  child.stderr?.on('data', (b: Buffer) => { err += b.toString() })
  return { child, exited: new Promise((resolve) => child.on('exit', (code) => { resolve(code) })), stderr: () => err }
}

function config (app: string, security: string, extra = '', brokers = TLS_BOOTSTRAP, input = `${app}.events`): string {
  const file = join(tmp.dir, `${app}.yaml`)
  writeFileSync(file, `applicationId: ${app}
instanceId: ${app}-0
brokers: [${brokers}]
topics: { input: ${input}, alerts: ${app}.alerts, tasks: ${app}.tasks, outcomes: ${app}.outcomes, deadLetters: ${app}.dlq, partitions: 1 }
stateDir: ${join(tmp.dir, `${app}-state`)}
commitInterval: 200ms
idlePartitionTimeout: 1h
${security}
http: { port: 0 }
${extra}`)
  return file
}

const fixture = join(root, 'test', 'fixtures', 'replay-small.jsonl')
const events = readFileSync(fixture, 'utf8').split('\n').flatMap((l) => { try { return [decodeJsonEvent(l)] } catch { return [] } })

/** The fixture's events in a new input topic (over the plaintext listener); the alert ids a replay of them gives. */
async function input (app: string): Promise<string[]> {
  await produce(`${app}.events`, 1, events.map((e) => ({ key: e.userId, value: encodeAvroEvent(e) })), PLAIN)
  const replayIn = join(tmp.dir, `${app}.jsonl`)
  writeFileSync(replayIn, events.map(encodeJsonEvent).join('\n') + '\n')
  const out = join(tmp.dir, `${app}-replay`)
  expect(spawnSync(process.execPath, [join(root, 'bin', 'ebb.js'), 'replay', '--in', replayIn, '--out', out]).status).toBe(0)
  const expected = readFileSync(join(out, 'alerts.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { alertId: string }).alertId)
  expect(expected.length).toBeGreaterThan(0)
  return expected
}

/** Runs `ebb run` on `file` until its group has committed every event, then stops it (exit 0). */
async function runToEnd (file: string, app: string, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const admin = await testClient(PLAIN).admin()
  const ebb = startEbb(file, env)
  try {
    const end = Date.now() + 120_000
    for (;;) {
      // (the group's coordinator may still be loading: asked again)
      if (await committedCount(app, `${app}.events`, admin) === events.length) break
      if (Date.now() > end || ebb.child.exitCode !== null) throw new Error(`not caught up: ${ebb.stderr().slice(-800)}`)
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    ebb.child.kill('SIGTERM')
    expect(await ebb.exited).toBe(0)
  } finally {
    await admin.close()
    if (ebb.child.exitCode === null) ebb.child.kill('SIGKILL')
  }
}

/** The alert ids of an output topic, read by kcat over the plaintext listener. */
function alertIds (topic: string): string[] {
  const r = spawnSync('kcat', ['-C', '-b', PLAIN, '-t', topic, '-e', '-q', '-X', 'isolation.level=read_committed', '-f', '%R%s'], { timeout: 60_000, maxBuffer: 1 << 26 })
  const got: string[] = []
  for (let i = 0; i < r.stdout.length;) {
    const n = r.stdout.readUInt32BE(i)
    got.push((decodeOutput('alert', r.stdout.subarray(i + 4, i + 4 + n)) as { alertId: string }).alertId)
    i += 4 + n
  }
  return got
}

describe('ebb run over mutual TLS and SASL', () => {
  it('with ca, cert and key it gives a replay\'s alerts; without the client certificate the broker refuses it', async () => {
    const app = `tls-${Date.now().toString(36)}`
    const expected = await input(app)
    // Without its certificate: refused by the broker, retried, then exit 1 with what to check —
    // at retryTimeout, not when the client's own retries end (they took a minute before 12-06).
    const t0 = Date.now()
    const refused = startEbb(config(`${app}-nocert`, `ssl: { ca: ${join(certs, 'ca.pem')} }`, 'retryTimeout: 3s\n'))
    expect(await refused.exited).toBe(1)
    expect(refused.stderr()).toMatch(/\[EBB_KAFKA_UNREACHABLE\]/)
    expect(Date.now() - t0).toBeLessThan(25_000)
    expect(refused.stderr()).toMatch(/still retrying their start when retryTimeout ran out \(last error: Connection closed\)/)
    await runToEnd(config(app, `ssl: { ca: ${join(certs, 'ca.pem')}, cert: ${join(certs, 'client.crt')}, key: ${join(certs, 'client.key')} }`), app)
    expect(alertIds(`${app}.alerts`)).toEqual(expected)
  }, 300_000)

  it('with SCRAM-SHA-512 it gives a replay\'s alerts, `ebb tail` reads them with PLAIN; a wrong password is refused at once (exit 2)', async () => {
    const app = `sasl-${Date.now().toString(36)}`
    const expected = await input(app)
    const wrong = startEbb(config(`${app}-wrong`, 'sasl: { mechanism: scram-sha-512, username: ebb }', 'retryTimeout: 3s\n', SASL_BOOTSTRAP, `${app}.events`), { EBB_SASL_PASSWORD: 'not-it' })
    expect(await wrong.exited).toBe(2) // at once: refused credentials are not an outage to wait out
    expect(wrong.stderr()).toMatch(/refused the SASL credentials \(.*authentication failed.*\[EBB_KAFKA_AUTH\]/i)
    expect(wrong.stderr()).not.toMatch(/not-it/) // the password is never printed
    const file = config(app, 'sasl: { mechanism: scram-sha-512, username: ebb }', '', SASL_BOOTSTRAP)
    await runToEnd(file, app, { EBB_SASL_PASSWORD: 'ebb-secret' })
    expect(alertIds(`${app}.alerts`)).toEqual(expected)
    const plain = config(`${app}-plain`, 'sasl: { mechanism: plain, username: ebb }', '', SASL_BOOTSTRAP, `${app}.events`)
    const tail = spawnSync(process.execPath, [join(root, 'bin', 'ebb.js'), 'tail', '--config', plain, '--topic', `${app}.alerts`, '--kind', 'alert'], { encoding: 'utf8', env: { ...process.env, EBB_SASL_PASSWORD: 'ebb-secret' }, timeout: 120_000 })
    expect(tail.status, tail.stderr).toBe(0)
    expect(tail.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { alertId: string }).alertId)).toEqual(expected)
  }, 300_000)

  it('a principal without the ACLs it needs is told so at once (exit 2, EBB_KAFKA_DENIED), not retried as an outage', async () => {
    const app = `acl-${Date.now().toString(36)}`
    await produce(`${app}.events`, 1, events.slice(0, 10).map((e) => ({ key: e.userId, value: encodeAvroEvent(e) })), PLAIN)
    // user guest authenticates (SCRAM) but is allowed nothing; retryTimeout is long, so only a
    // refusal recognised as final ends the process before it
    const t0 = Date.now()
    const guest = startEbb(config(app, 'sasl: { mechanism: scram-sha-512, username: guest }', 'retryTimeout: 5m\n', SASL_BOOTSTRAP), { EBB_SASL_PASSWORD: 'guest-secret' })
    const killer = setTimeout(() => { guest.child.kill('SIGKILL') }, 120_000)
    const code = await guest.exited
    clearTimeout(killer)
    expect(code, guest.stderr()).toBe(2)
    expect(Date.now() - t0).toBeLessThan(120_000)
    expect(guest.stderr()).toMatch(/refused (access to a topic|access to the consumer group|the transactional id|a cluster operation) \([A-Z_]+_AUTHORIZATION_FAILED: .*Grant this instance's principal .*\[EBB_KAFKA_DENIED\]/)
    expect(guest.stderr()).not.toMatch(/guest-secret/)
  }, 300_000)
})
