import { log } from '../log.js'

/**
 * `p`, or a rejection as soon as `signal` aborts (the request goes on, its answer unused: a
 * failure it ends with later is ignored, never an unhandled rejection that would end the process).
 */
export async function abortable<T> (p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return await p
  p.catch(() => {})
  signal.throwIfAborted()
  let onAbort: (() => void) | undefined
  try {
    return await Promise.race([p, new Promise<never>((_resolve, reject) => {
      onAbort = () => { reject(signal.reason as Error) }
      signal.addEventListener('abort', onAbort, { once: true })
    })])
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
  }
}

/**
 * Waits for `p` at most `ms`: true once it settled (a failure is logged as "`what` failed"),
 * false when the time ran out first (`p` goes on, unwatched). For closing things that may hang
 * on a broker that is gone.
 */
export async function withDeadline (p: Promise<unknown>, ms: number, what: string): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<boolean>((resolve) => { timer = setTimeout(() => { resolve(false) }, ms) })
  try {
    return await Promise.race([p.then(() => true, (err: unknown) => { log.warn({ err: (err as Error).message }, `${what} failed`); return true }), late])
  } finally {
    clearTimeout(timer)
  }
}
