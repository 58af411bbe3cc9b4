import type { FastifyInstance } from 'fastify'
import { EbbError, Errors } from '../errors.js'
import { log } from '../log.js'

export interface HttpOptions { host: string, port: number, token: string | undefined }

/** HTTP settings from options and the environment (README, "HTTP API": port 8080 by default; 0 picks a free one). */
export function httpOptions (port: string | undefined, host: string | undefined, token: string | undefined, command: string): HttpOptions {
  const p = port ?? process.env.EBB_HTTP_PORT ?? '8080'
  const n = p.trim() === '' ? Number.NaN : Number(p)
  const from = port !== undefined ? '--port' : 'EBB_HTTP_PORT'
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new EbbError(Errors.USAGE, `ebb ${command}: ${from} must be 0..65535, got "${p}"`)
  const t = token ?? process.env.EBB_HTTP_TOKEN
  return { host: host ?? process.env.EBB_HTTP_HOST ?? '127.0.0.1', port: n, token: t === '' ? undefined : t }
}

/** Starts listening; returns the base URL (with the port the OS picked when asked for 0). */
export async function listen (app: FastifyInstance, o: HttpOptions): Promise<string> {
  try {
    await app.listen({ host: o.host, port: o.port })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    // The fix depends on what failed: the port is taken, or the host is not an address of this machine.
    const fix = code === 'EADDRINUSE' || code === 'EACCES'
      ? 'Pick another --port (or EBB_HTTP_PORT; 0 picks a free one).'
      : 'Check --host (or EBB_HTTP_HOST): an address of this machine, such as 127.0.0.1, or 0.0.0.0 for every interface.'
    throw new EbbError(Errors.HTTP_LISTEN, `${o.host}:${o.port}`, (err as Error).message, fix)
  }
  // Open user data on a reachable address deserves a warning; on loopback (the demo) it is expected.
  if (o.token === undefined) {
    const loopback = o.host === '127.0.0.1' || o.host === '::1' || o.host === 'localhost'
    log[loopback ? 'info' : 'warn']({ component: 'http', host: o.host }, 'no API token configured: /users and /alerts are open; set EBB_HTTP_TOKEN')
  }
  const addr = app.server.address()
  const port = typeof addr === 'object' && addr !== null ? addr.port : o.port
  return `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`
}
