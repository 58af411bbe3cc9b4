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
