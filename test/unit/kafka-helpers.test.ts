import { describe, expect, it } from 'vitest'
import { abortable } from '../../src/kafka/abortable.js'
import { errorText, isKafkaClientError } from '../../src/kafka/client-errors.js'

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
