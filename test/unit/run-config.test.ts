import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'
import { changelogTopic, parseRunConfig } from '../../src/kafka/config.js'
import { claimStateDir, pidFile, processIdentity, stateInstanceId } from '../../src/kafka/instance-id.js'
import { projectRoot } from '../../src/paths.js'
import { tempDir } from '../helpers.js'

const BASE = `applicationId: churn
brokers: [kafka-1:9092, kafka-2:9092]
topics: { input: app.events, partitions: 12 }
stateDir: /var/lib/ebb
commitInterval: 2s
`

function error (text: string, env: NodeJS.ProcessEnv = {}): string {
  try {
    parseRunConfig(text, 'ebb.yaml', env)
  } catch (err) {
    return `${(err as { code: string }).code}: ${(err as Error).message}`
  }
  return 'no error'
}

describe('run configuration', () => {
  it('reads the file with defaults, and the environment on top', () => {
    const c = parseRunConfig(BASE, '/etc/ebb/ebb.yaml', {})
    expect(c).toMatchObject({ applicationId: 'churn', brokers: ['kafka-1:9092', 'kafka-2:9092'], stateDir: '/var/lib/ebb', commitIntervalMs: 2000, processingGuarantee: 'exactly_once', autoOffsetReset: 'earliest', instanceId: 'churn-0', sasl: null })
    expect(parseRunConfig(BASE + 'autoOffsetReset: latest\n', 'ebb.yaml', {}).autoOffsetReset).toBe('latest')
    expect(parseRunConfig(BASE + 'autoOffsetReset: latest\n', 'ebb.yaml', { EBB_AUTO_OFFSET_RESET: 'earliest' }).autoOffsetReset).toBe('earliest')
    // commits stop processing unless pipelinedCommits (file or EBB_PIPELINED_COMMITS) says otherwise
    expect([c.pipelinedCommits, parseRunConfig(BASE + 'pipelinedCommits: true\n', 'ebb.yaml', {}).pipelinedCommits, parseRunConfig(BASE + 'pipelinedCommits: true\n', 'ebb.yaml', { EBB_PIPELINED_COMMITS: 'false' }).pipelinedCommits, parseRunConfig(BASE, 'ebb.yaml', { EBB_PIPELINED_COMMITS: 'true' }).pipelinedCommits]).toEqual([false, true, false, true])
    expect(c.topics).toMatchObject({ input: 'app.events', alerts: 'ebb.alerts', tasks: 'ebb.recall-tasks', outcomes: 'ebb.outcomes', deadLetters: 'ebb.dlq', partitions: 12 })
    expect(changelogTopic(c)).toBe('churn-user-state-changelog')
    const e = parseRunConfig(BASE, '/etc/ebb/ebb.yaml', { EBB_BROKERS: 'b:1,c:2', EBB_INSTANCE_ID: 'pod-7', EBB_SASL_USERNAME: 'u', EBB_SASL_PASSWORD: 'p', EBB_HTTP_PORT: '9000' })
    expect([e.brokers, e.instanceId, e.sasl, e.http.port]).toEqual([['b:1', 'c:2'], 'pod-7', { mechanism: 'plain', username: 'u', password: 'p' }, 9000])
    // retryTimeout: 5 minutes by default, its older name startupTimeout still read, the environment on top
    expect([c.retryTimeoutMs, parseRunConfig(BASE + 'retryTimeout: 90s\n', 'ebb.yaml', {}).retryTimeoutMs, parseRunConfig(BASE + 'startupTimeout: 2m\n', 'ebb.yaml', {}).retryTimeoutMs, parseRunConfig(BASE + 'retryTimeout: 90s\n', 'ebb.yaml', { EBB_RETRY_TIMEOUT: '10m' }).retryTimeoutMs]).toEqual([300_000, 90_000, 120_000, 600_000])
  })

  it('rejects mistakes with the file and line (exit 2)', () => {
    expect(error(BASE + 'retryTimeout: 1m\nstartupTimeout: 2m\n')).toBe('EBB_CONFIG_INVALID: configuration ebb.yaml:7: startupTimeout: the older name of retryTimeout; set one of them')
    expect(error(BASE, { EBB_RETRY_TIMEOUT: 'soon' })).toMatch(/^EBB_CONFIG_INVALID: .*EBB_RETRY_TIMEOUT: "soon" is not a duration/)
    expect(error(BASE + 'comitInterval: 1s\n')).toBe('EBB_CONFIG_INVALID: configuration ebb.yaml:6: config: unknown key "comitInterval" (expected applicationId, instanceId, brokers, topics, topology, stateDir, commitInterval, pipelinedCommits, cacheSize, processingGuarantee, autoOffsetReset, idlePartitionTimeout, retryTimeout, startupTimeout, restoreConsistencyTimeout, hangingTransactionTimeout, knownSchemaIds, schemaRegistryUrl, outputFormat, ssl, client, sasl, http)')
    expect(error(BASE.replace('kafka-2:9092', 'kafka-2'))).toMatch(/^EBB_CONFIG_INVALID: configuration ebb\.yaml:2: brokers: "kafka-2" is not host:port/)
    // a port past 65535 was taken here and thrown by the socket layer as a stack trace
    expect(error(BASE.replace('kafka-2:9092', 'kafka-2:70000'))).toMatch(/^EBB_CONFIG_INVALID: configuration ebb\.yaml:2: brokers: "kafka-2:70000": the port must be 1\.\.65535/)
    expect(error(BASE.replace('kafka-2:9092', 'kafka-2:0'))).toMatch(/the port must be 1\.\.65535/)
    expect(error(BASE + 'processingGuarantee: twice\n')).toMatch(/ebb\.yaml:6: processingGuarantee: "twice" is neither exactly_once nor at_least_once/)
    expect(error(BASE.replace('commitInterval: 2s', 'commitInterval: soon'))).toMatch(/ebb\.yaml:5: commitInterval: "soon" is not a duration/)
    expect(error('applicationId: x\n')).toMatch(/brokers: missing \(a list of host:port, or set EBB_BROKERS\)/)
    expect(error(BASE, { EBB_HTTP_PORT: 'eighty' })).toMatch(/EBB_HTTP_PORT "eighty" is not a port/)
    expect(error(BASE + 'autoOffsetReset: smallest\n')).toMatch(/ebb\.yaml:6: autoOffsetReset: earliest or latest, not "smallest"/)
    expect(error(BASE, { EBB_AUTO_OFFSET_RESET: 'none' })).toMatch(/autoOffsetReset: earliest or latest \(EBB_AUTO_OFFSET_RESET\), not "none"/)
    expect(error(BASE, { EBB_PIPELINED_COMMITS: 'yes' })).toMatch(/EBB_PIPELINED_COMMITS: true or false, not "yes"/)
  })

  it('reads TLS files (relative to the configuration, or from the environment) and says which one is missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ebb-tls-config-'))
    try {
      for (const f of ['ca.pem', 'client.crt', 'client.key']) writeFileSync(join(dir, f), `-----${f}-----`)
      const file = join(dir, 'ebb.yaml')
      expect(parseRunConfig(BASE + 'ssl: true\n', file, {}).ssl).toBe(true)
      expect(parseRunConfig(BASE, file, {}).ssl).toBe(false)
      const t = parseRunConfig(BASE + 'ssl: { ca: ca.pem, cert: client.crt, key: client.key }\n', file, { EBB_SSL_KEY_PASSWORD: 'pw' }).ssl
      expect(t).toMatchObject({ rejectUnauthorized: true, passphrase: 'pw', files: [join(dir, 'ca.pem'), join(dir, 'client.crt'), join(dir, 'client.key')] })
      expect(typeof t === 'object' ? [t.ca?.toString(), t.cert?.toString(), t.key?.toString()] : []).toEqual(['-----ca.pem-----', '-----client.crt-----', '-----client.key-----'])
      const e = parseRunConfig(BASE, file, { EBB_SSL_CA_FILE: join(dir, 'ca.pem') }).ssl
      expect(typeof e === 'object' ? [e.ca?.toString(), e.cert] : e).toEqual(['-----ca.pem-----', undefined])
      expect(error(BASE + 'ssl: { ca: nope.pem }\n')).toMatch(/^EBB_CONFIG_INVALID: configuration ebb\.yaml:6: ssl\.ca: cannot read .*nope\.pem \(ENOENT\)/)
      expect(error(BASE + `ssl: { cert: ${join(dir, 'client.crt')} }\n`)).toMatch(/ssl: cert and key go together/)
      expect(error(BASE + 'ssl: { cafile: x }\n')).toMatch(/ssl: unknown key "cafile"/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('passes the client\'s own timeouts and retries through (`client:`), and refuses keys it does not know', async () => {
    const c = parseRunConfig(BASE + 'client: { connectionTimeout: 3s, requestTimeout: 1m, retries: 8, maxRetryTime: 10s }\n', 'ebb.yaml', {})
    expect(c.client).toEqual({ connectionTimeout: 3000, requestTimeout: 60_000, retry: { retries: 8, maxRetryTime: 10_000 } })
    const { platformaticOptions, transactionalRetry } = await import('../../src/kafka/platformatic-client.js')
    const o = platformaticOptions(c, 'x')
    expect(o).toMatchObject({ clientId: 'x', bootstrapBrokers: c.brokers, connectTimeout: 3000, timeout: 60_000, retries: 8 })
    // doubling from the default first wait (300 ms), capped at maxRetryTime
    const delay = o.retryDelay as (client: unknown, op: string, attempt: number) => number
    expect([1, 2, 3, 8].map((a) => delay(null, 'fetch', a))).toEqual([300, 600, 1200, 10_000])
    expect(parseRunConfig(BASE, 'ebb.yaml', {}).client).toEqual({})
    // the transactional producer: a first retry after 10 ms (CONCURRENT_TRANSACTIONS clears in a
    // few ms), ~9 s in all; any retry setting of the user's replaces it whole
    const ours = transactionalRetry(parseRunConfig(BASE, 'ebb.yaml', {}).client)
    expect(ours).toEqual({ initialRetryTime: 10, maxRetryTime: 1000, retries: 15 })
    const txn = platformaticOptions({ ...c, client: {} }, 'x', ours)
    const txnDelay = txn.retryDelay as (client: unknown, op: string, attempt: number) => number
    let total = 0
    for (let k = 1; k <= (txn.retries as number); k++) total += txnDelay(null, 'commit', k)
    expect(txnDelay(null, 'commit', 1)).toBe(10)
    expect(total).toBeGreaterThan(8000)
    expect(total).toBeLessThan(10_000)
    expect(transactionalRetry(c.client)).toBeUndefined()
    expect(error(BASE + 'client: { socketTimeout: 1s }\n')).toMatch(/client: unknown key "socketTimeout" \(expected connectionTimeout, requestTimeout, retries, initialRetryTime, maxRetryTime\)/)
  })

  it('outputFormat: raw Avro without a registry, the Confluent wire format with one, per topic or for all, JSON on request', () => {
    const all = (f: string): Record<string, string> => ({ alerts: f, tasks: f, outcomes: f, deadLetters: f })
    expect(parseRunConfig(BASE, 'ebb.yaml', {}).outputFormats).toEqual(all('avro'))
    expect(parseRunConfig(BASE + 'schemaRegistryUrl: http://r:8081\n', 'ebb.yaml', {}).outputFormats).toEqual(all('confluent'))
    expect(parseRunConfig(BASE + 'schemaRegistryUrl: http://r:8081\noutputFormat: { deadLetters: json, alerts: avro }\n', 'ebb.yaml', {}).outputFormats).toEqual({ alerts: 'avro', tasks: 'confluent', outcomes: 'confluent', deadLetters: 'json' })
    expect(parseRunConfig(BASE + 'outputFormat: json\n', 'ebb.yaml', { EBB_OUTPUT_FORMAT: 'avro' }).outputFormats).toEqual(all('avro'))
    expect(error(BASE + 'outputFormat: confluent\n')).toMatch(/outputFormat: confluent needs schemaRegistryUrl/)
    expect(error(BASE + 'outputFormat: { tasks: protobuf }\n')).toMatch(/outputFormat\.tasks: avro, confluent or json, not "protobuf"/)
    expect(error(BASE + 'outputFormat: { task: json }\n')).toMatch(/outputFormat: unknown key "task"/)
  })

  it('without an instanceId, ebb run makes one per state directory and keeps it: restarts keep it, two instances never share it', () => {
    const tmp = tempDir('ebb-instance-id-')
    try {
      const a = stateInstanceId(join(tmp.dir, 'a'), 'churn')
      expect(a).toMatch(/^churn-[0-9a-f]{8}$/)
      expect(stateInstanceId(join(tmp.dir, 'a'), 'churn')).toBe(a)
      expect(stateInstanceId(join(tmp.dir, 'b'), 'churn')).not.toBe(a)
      // another application on the same directory: its own prefix (ACLs on transactional ids go by prefix)
      expect(stateInstanceId(join(tmp.dir, 'a'), 'other')).toMatch(/^other-[0-9a-f]{8}$/)
      expect(parseRunConfig(BASE, 'ebb.yaml', {}).instanceIdConfigured).toBe(false)
      expect(parseRunConfig(BASE, 'ebb.yaml', { EBB_INSTANCE_ID: 'churn-7' })).toMatchObject({ instanceId: 'churn-7', instanceIdConfigured: true })
    } finally {
      tmp.cleanup()
    }
  })

  it('one ebb run per state directory and application: a second while the first runs is refused (EBB_STATE_LOCKED); a file left by a process that is gone, or whose pid now belongs to another process (told by the boot id and start time it records), is taken over', async () => {
    const tmp = tempDir('ebb-claim-')
    // a live process that is Ebb by its command line, and one that is not
    const ebbLike = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)', 'bin/ebb.js', 'run'])
    const other = spawn('sleep', ['30'])
    try {
      const dir = join(tmp.dir, 'state')
      const file = join(dir, pidFile('churn'))
      const release = claimStateDir(dir, 'churn')
      const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
      const startOf = (pid: number): string => { const st = readFileSync(`/proc/${pid}/stat`, 'utf8'); return st.slice(st.lastIndexOf(')') + 2).split(' ')[19] }
      expect(readFileSync(file, 'utf8').trim()).toBe(`${process.pid}@${hostname()} ${boot}:${startOf(process.pid)}`)
      expect(processIdentity(process.pid)).toBe(readFileSync(file, 'utf8').trim())
      // another application may share the directory (its stores are named by its own input topic)
      expect(typeof claimStateDir(dir, 'other')).toBe('function')
      release()
      expect(existsSync(file)).toBe(false)
      writeFileSync(file, `${ebbLike.pid ?? 0}@${hostname()}\n`)
      expect(() => claimStateDir(dir, 'churn')).toThrow(expect.objectContaining({ code: 'EBB_STATE_LOCKED', message: expect.stringContaining(`Ebb process ${ebbLike.pid ?? 0} uses it for churn`) }))
      // with its identity: the process that wrote it, still running, holds it, whatever its command line
      writeFileSync(file, `${processIdentity(other.pid ?? 0)}\n`)
      expect(() => claimStateDir(dir, 'churn')).toThrow(expect.objectContaining({ code: 'EBB_STATE_LOCKED', message: expect.stringContaining(`process ${other.pid ?? 0} uses it`) }))
      // An Ebb process that finds its own pid in a file of the older format (a container's
      // entrypoint is pid 1 at every start; the last run was killed): its own, taken over.
      const own = spawnSync(process.execPath, ['--input-type=module', '-e', `
        import { writeFileSync } from 'node:fs'
        import { hostname } from 'node:os'
        const { claimStateDir } = await import(${JSON.stringify(pathToFileURL(join(projectRoot(), 'dist', 'src', 'kafka', 'instance-id.js')).href)})
        writeFileSync(${JSON.stringify(file)}, process.pid + '@' + hostname() + '\\n')
        try { claimStateDir(${JSON.stringify(dir)}, 'churn'); process.stdout.write('claimed') } catch (err) { process.stdout.write(err.code) }
      `, 'bin/ebb.js', 'run'], { encoding: 'utf8' })
      expect(own.stdout + own.stderr).toBe('claimed')
      // the same pid started at another time (an Ebb process now, after a reboot of a host with two
      // services that swapped pids), or written during another boot: the writer is gone, taken over
      const ebbStart = Number(startOf(ebbLike.pid ?? 0))
      writeFileSync(file, `${ebbLike.pid ?? 0}@${hostname()} ${boot}:${ebbStart + 1}\n`)
      expect(typeof claimStateDir(dir, 'churn')).toBe('function')
      writeFileSync(file, `${ebbLike.pid ?? 0}@${hostname()} 00000000-0000-0000-0000-000000000000:${ebbStart}\n`)
      expect(typeof claimStateDir(dir, 'churn')).toBe('function')
      // a pid reused by something else (after a kill -9, a reboot, a container's restart): taken over
      writeFileSync(file, `${other.pid ?? 0}@${hostname()}\n`)
      expect(typeof claimStateDir(dir, 'churn')).toBe('function')
      // gone: taken over
      ebbLike.kill('SIGKILL')
      await new Promise((resolve) => ebbLike.on('exit', resolve))
      writeFileSync(file, `${ebbLike.pid ?? 0}@${hostname()}\n`)
      expect(typeof claimStateDir(dir, 'churn')).toBe('function')
    } finally {
      ebbLike.kill('SIGKILL')
      other.kill('SIGKILL')
      tmp.cleanup()
    }
  })
})
