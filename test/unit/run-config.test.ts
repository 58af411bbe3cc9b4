import { describe, expect, it } from 'vitest'
import { changelogTopic, parseRunConfig } from '../../src/kafka/config.js'

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
    expect(c.topics).toMatchObject({ input: 'app.events', alerts: 'ebb.alerts', tasks: 'ebb.recall-tasks', outcomes: 'ebb.outcomes', deadLetters: 'ebb.dlq', partitions: 12 })
    expect(changelogTopic(c)).toBe('churn-user-state-changelog')
    const e = parseRunConfig(BASE, '/etc/ebb/ebb.yaml', { EBB_BROKERS: 'b:1,c:2', EBB_INSTANCE_ID: 'pod-7', EBB_SASL_USERNAME: 'u', EBB_SASL_PASSWORD: 'p', EBB_HTTP_PORT: '9000' })
    expect([e.brokers, e.instanceId, e.sasl, e.http.port]).toEqual([['b:1', 'c:2'], 'pod-7', { mechanism: 'plain', username: 'u', password: 'p' }, 9000])
  })

  it('rejects mistakes with the file and line (exit 2)', () => {
    expect(error(BASE + 'comitInterval: 1s\n')).toBe('EBB_CONFIG_INVALID: configuration ebb.yaml:6: config: unknown key "comitInterval" (expected applicationId, instanceId, brokers, topics, topology, stateDir, commitInterval, cacheSize, processingGuarantee, autoOffsetReset, idlePartitionTimeout, startupTimeout, restoreConsistencyTimeout, knownSchemaIds, schemaRegistryUrl, ssl, sasl, http)')
    expect(error(BASE.replace('kafka-2:9092', 'kafka-2'))).toMatch(/^EBB_CONFIG_INVALID: configuration ebb\.yaml:2: brokers: "kafka-2" is not host:port/)
    expect(error(BASE + 'processingGuarantee: twice\n')).toMatch(/ebb\.yaml:6: processingGuarantee: exactly_once or at_least_once/)
    expect(error(BASE.replace('commitInterval: 2s', 'commitInterval: soon'))).toMatch(/ebb\.yaml:5: commitInterval: "soon" is not a duration/)
    expect(error('applicationId: x\n')).toMatch(/brokers: missing \(a list of host:port, or set EBB_BROKERS\)/)
    expect(error(BASE, { EBB_HTTP_PORT: 'eighty' })).toMatch(/EBB_HTTP_PORT "eighty" is not a port/)
    expect(error(BASE + 'autoOffsetReset: smallest\n')).toMatch(/ebb\.yaml:6: autoOffsetReset: earliest or latest, not "smallest"/)
    expect(error(BASE, { EBB_AUTO_OFFSET_RESET: 'none' })).toMatch(/autoOffsetReset: earliest or latest \(EBB_AUTO_OFFSET_RESET\), not "none"/)
  })
})
