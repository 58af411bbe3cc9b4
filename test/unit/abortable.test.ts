import { describe, expect, it } from 'vitest'
import { abortable } from '../../src/kafka/abortable.js'

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
