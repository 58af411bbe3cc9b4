import { describe, expect, it } from 'vitest'
import { abortable, withDeadline } from '../../src/kafka/waits.js'
import { errorText, findNestedError, isKafkaClientError, kafkaAuthError, kafkaRefusal } from '../../src/kafka/client-errors.js'
import { partitionRecords } from '../../src/kafka/platformatic-client.js'
import { MultipleErrors, ProtocolError, ResponseError, UnsupportedApiError } from '@platformatic/kafka'

describe('abortable (a wait that a closing runner cuts short)', () => {
  it('gives the promise\'s value, or its rejection, when nothing aborts', async () => {
    const ac = new AbortController()
    await expect(abortable(Promise.resolve(7), ac.signal)).resolves.toBe(7)
    await expect(abortable(Promise.reject(new Error('broker said no')), ac.signal)).rejects.toThrow('broker said no')
    await expect(abortable(Promise.resolve(8), undefined)).resolves.toBe(8)
  })

  it('rejects with the abort\'s reason as soon as it aborts, and at once when it already has', async () => {
    const ac = new AbortController()
    const never = new Promise<number>(() => {})
    const waiting = abortable(never, ac.signal)
    ac.abort(new Error('the runner is closing'))
    await expect(waiting).rejects.toThrow('the runner is closing')
    await expect(abortable(Promise.resolve(1), ac.signal)).rejects.toThrow('the runner is closing')
    // A request that fails after its wait was cut short (already aborted, or aborted meanwhile)
    // is not an unhandled rejection (Node would end the process; vitest fails the run).
    let fail: (e: Error) => void = () => {}
    const late = new Promise<number>((_resolve, reject) => { fail = reject })
    await expect(abortable(late, ac.signal)).rejects.toThrow('the runner is closing')
    fail(new Error('Listing consumer group offsets failed'))
    await new Promise((resolve) => setTimeout(resolve, 10))
  })
})

describe('errorText (a client error in words, with the causes it keeps nested)', () => {
  it('names the distinct causes under the message, at most three', () => {
    const refused = (port: number): Error => Object.assign(new Error('Connection to 127.0.0.1:' + port + ' failed.'), { cause: new Error(`connect ECONNREFUSED 127.0.0.1:${port}`) })
    const err = Object.assign(new Error('metadata failed 3 times.'), { code: 'PLT_KFK_MULTIPLE', errors: [refused(9092), refused(9092), refused(9093), refused(9094), refused(9095)] })
    expect(errorText(err)).toBe('metadata failed 3 times (connect ECONNREFUSED 127.0.0.1:9092; connect ECONNREFUSED 127.0.0.1:9093; connect ECONNREFUSED 127.0.0.1:9094)')
    expect(isKafkaClientError(err)).toBe(true)
    expect(errorText(new Error('plain.'))).toBe('plain')
    expect(isKafkaClientError(new Error('plain'))).toBe(false)
  })
})

describe('partitionRecords (read_committed filtering of a fetched partition)', () => {
  /** a record batch as the client parses it: `n` records from `first`, of producer `pid` */
  const batch = (first: number, n: number, pid: bigint, transactional: boolean, value = 'v'): Record<string, unknown> => ({
    firstOffset: BigInt(first), lastOffsetDelta: n - 1, attributes: transactional ? 0x10 : 0, producerId: pid, firstTimestamp: 1000n,
    records: Array.from({ length: n }, (_, i) => ({ offsetDelta: i, timestampDelta: BigInt(i), key: Buffer.from(`${value}${first + i}`), value: Buffer.from(value) }))
  })
  /** a transaction marker: ABORT (type 0) or COMMIT (type 1) */
  const marker = (offset: number, pid: bigint, commit: boolean): Record<string, unknown> => {
    const key = Buffer.alloc(4)
    key.writeInt16BE(commit ? 1 : 0, 2)
    return { firstOffset: BigInt(offset), lastOffsetDelta: 0, attributes: 0x30, producerId: pid, firstTimestamp: 1000n, records: [{ offsetDelta: 0, timestampDelta: 0n, key, value: Buffer.alloc(6) }] }
  }
  const keys = (r: { records: Array<{ key: Buffer | null }> }): string[] => r.records.map((x) => String(x.key))

  it('skips an aborted transaction whose marker is beyond the response, and both of two aborted transactions of one producer', () => {
    // producer 7: commit (0–2, marker 3), abort (4–5, marker 6), commit (7–8, marker 9), abort (10–11, no marker yet)
    const records = [batch(0, 3, 7n, true, 'a'), marker(3, 7n, true), batch(4, 2, 7n, true, 'x'), marker(6, 7n, false), batch(7, 2, 7n, true, 'b'), marker(9, 7n, true), batch(10, 2, 7n, true, 'y')]
    const out = partitionRecords({ records, abortedTransactions: [{ producerId: 7n, firstOffset: 10n }, { producerId: 7n, firstOffset: 4n }] } as never, 0n)
    expect(keys(out)).toEqual(['a0', 'a1', 'a2', 'b7', 'b8'])
    expect(out.end).toBe(12n) // past every batch, markers and aborted ones included
    expect(out.records.map((r) => r.offset)).toEqual(['0', '1', '2', '7', '8'])
  })

  it('keeps other producers\' and non-transactional records inside an aborted range, and drops what precedes the fetch offset', () => {
    const records = [batch(0, 2, 1n, false, 'p'), batch(2, 2, 9n, true, 'x'), batch(4, 2, 5n, true, 'q'), marker(6, 9n, false), marker(7, 5n, true)]
    const out = partitionRecords({ records, abortedTransactions: [{ producerId: 9n, firstOffset: 2n }] } as never, 1n)
    expect(keys(out)).toEqual(['p1', 'q4', 'q5'])
    expect(out.records[0]?.timestamp).toBe('1001')
  })
})

describe('withDeadline and the nested client errors', () => {
  it('says whether a close settled in time: a failure counts as settled, a hang does not', async () => {
    expect(await withDeadline(Promise.resolve(), 50, 'closing x')).toBe(true)
    expect(await withDeadline(Promise.reject(new Error('gone')), 50, 'closing x')).toBe(true)
    expect(await withDeadline(new Promise(() => {}), 20, 'closing x')).toBe(false)
  })

  it('finds a broker error or refused credentials wrapped at any depth', () => {
    const refused = Object.assign(new Error('SASL authentication failed.'), { code: 'PLT_KFK_AUTHENTICATION', cause: { serverErrorMessage: 'invalid credentials' } })
    const err = Object.assign(new Error('metadata failed 2 times.'), { code: 'PLT_KFK_MULTIPLE', errors: [new Error('timeout'), Object.assign(new Error('Connection failed.'), { cause: refused })] })
    expect(kafkaAuthError(err, 'b:9092')).toMatchObject({ code: 'EBB_KAFKA_AUTH', message: expect.stringMatching(/b:9092 refused the SASL credentials \(SASL authentication failed\. invalid credentials\)/) })
    expect(kafkaAuthError(new Error('connect ECONNREFUSED'), 'b:9092')).toBeUndefined()
    // the same error, raised because the network failed during the login: an outage, not a refusal
    for (const code of ['PLT_KFK_NETWORK', 'PLT_KFK_TIMEOUT']) {
      const cut = Object.assign(new Error('SASL authentication failed.'), { code: 'PLT_KFK_AUTHENTICATION', cause: Object.assign(new Error('Connection closed'), { code }) })
      expect(kafkaAuthError(Object.assign(new Error('Connection failed.'), { code: 'PLT_KFK_NETWORK', cause: cut }), 'b:9092')).toBeUndefined()
    }
    // a record a topic refused: the refusal names the topics of the request when the commit named them
    const tooLarge = (): Error => Object.assign(new Error('Received response with error while executing API Produce(v11).'), { code: 'PLT_KFK_MULTIPLE', errors: [Object.assign(new Error('The request included a message larger than the max message size the server will accept.'), { code: 'PLT_KFK_PROTOCOL', apiId: 'MESSAGE_TOO_LARGE' })] })
    expect(kafkaRefusal(tooLarge(), 'b:9092')?.message).toMatch(/^the brokers b:9092 rejected a record Ebb wrote \(MESSAGE_TOO_LARGE/)
    expect(kafkaRefusal(Object.assign(tooLarge(), { ebbTopics: ['app.dlq', 'app-user-state-changelog'] }), 'b:9092')?.message).toMatch(/^the brokers b:9092 rejected a record Ebb wrote to app\.dlq or app-user-state-changelog \(MESSAGE_TOO_LARGE/)
    const exists = Object.assign(new Error('Creating topics failed.'), { errors: [{ apiId: 'TOPIC_ALREADY_EXISTS' }] })
    expect(findNestedError(exists, (e) => e.apiId === 'TOPIC_ALREADY_EXISTS')).toBeDefined()
    expect(findNestedError(exists, (e) => e.apiId === 'NOT_CONTROLLER')).toBeUndefined()
  })

  it('tells a missing ACL (final) from an outage (retried), and says which kind of request was refused', () => {
    const acl = (apiId: string): Error => Object.assign(new Error('Received response with error while executing API JoinGroup(v9).'), { code: 'PLT_KFK_MULTIPLE', errors: [Object.assign(new Error('The client is not authorized.'), { code: 'PLT_KFK_PROTOCOL', apiId })] })
    expect(kafkaRefusal(acl('GROUP_AUTHORIZATION_FAILED'), 'b:9092')).toMatchObject({ code: 'EBB_KAFKA_DENIED', exitCode: 2, retriable: false, message: expect.stringMatching(/^the brokers b:9092 refused access to the consumer group \(GROUP_AUTHORIZATION_FAILED: Received response .*not authorized\)\)\. Grant/) })
    expect(kafkaRefusal(acl('TRANSACTIONAL_ID_AUTHORIZATION_FAILED'), 'b:9092')?.message).toMatch(/refused the transactional id/)
    expect(kafkaRefusal(acl('TOPIC_AUTHORIZATION_FAILED'), 'b:9092')?.message).toMatch(/refused access to a topic/)
    expect(kafkaRefusal(acl('NOT_COORDINATOR'), 'b:9092')).toBeUndefined() // a coordinator that moved: retried
    expect(kafkaRefusal(new Error('connect ECONNREFUSED'), 'b:9092')).toBeUndefined()
    const refused = Object.assign(new Error('SASL authentication failed.'), { code: 'PLT_KFK_AUTHENTICATION' })
    expect(kafkaRefusal(refused, 'b:9092')?.code).toBe('EBB_KAFKA_AUTH')
  })

  it('tells a setting that no retry changes (a topic\'s max.message.bytes, a broker too old) from an outage, with what to change', () => {
    // The library's own errors, nested as a failed produce nests them.
    const produceFailed = (id: string): Error => new MultipleErrors('Producing messages failed.', [new ResponseError(0, 9, { '/responses/0/partitions/0': [new ProtocolError(id).apiCode, null] }, {})])
    const tooLarge = kafkaRefusal(produceFailed('MESSAGE_TOO_LARGE'), 'b:9092')
    expect(tooLarge).toMatchObject({ code: 'EBB_KAFKA_REJECTED', exitCode: 2, retriable: false })
    expect(tooLarge?.message).toMatch(/^the brokers b:9092 rejected a record Ebb wrote \(MESSAGE_TOO_LARGE: Producing messages failed \(.*max message size.*\)\)\. .*max\.message\.bytes.*at least 1 MB/)
    expect(kafkaRefusal(produceFailed('RECORD_LIST_TOO_LARGE'), 'b:9092')?.code).toBe('EBB_KAFKA_REJECTED')
    expect(kafkaRefusal(produceFailed('INVALID_RECORD'), 'b:9092')?.message).toMatch(/cleanup\.policy=delete/)
    expect(kafkaRefusal(produceFailed('INVALID_TRANSACTION_TIMEOUT'), 'b:9092')?.message).toMatch(/transaction\.max\.timeout\.ms/)
    expect(kafkaRefusal(produceFailed('INVALID_REPLICATION_FACTOR'), 'b:9092')?.message).toMatch(/topics\.replicationFactor/)
    expect(kafkaRefusal(new UnsupportedApiError('Unsupported API AddOffsetsToTxn.'), 'b:9092')?.message).toMatch(/Kafka 2\.5 or later/)
    // What a retry can change stays an outage: a leader or a coordinator that moved, a request that timed out.
    for (const id of ['NOT_LEADER_OR_FOLLOWER', 'NOT_COORDINATOR', 'REQUEST_TIMED_OUT', 'COORDINATOR_LOAD_IN_PROGRESS', 'CONCURRENT_TRANSACTIONS']) {
      expect(kafkaRefusal(produceFailed(id), 'b:9092'), id).toBeUndefined()
    }
  })
})
