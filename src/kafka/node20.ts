/**
 * @platformatic/kafka declares Node ≥ 22 and calls one function that Node 20 lacks,
 * Promise.withResolvers (ES2024). Ebb still runs on the machine's Node 20, so that function is
 * supplied here, with the standard's semantics, before the client is used; on Node 22 and 24
 * nothing changes.
 */
const P = Promise as unknown as { withResolvers?: () => unknown }
if (typeof P.withResolvers !== 'function') {
  P.withResolvers = () => {
    let resolve: ((v: unknown) => void) | undefined
    let reject: ((e: unknown) => void) | undefined
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
export {}
