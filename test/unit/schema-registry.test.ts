import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Errors } from '../../src/errors.js'
import { SchemaRegistry } from '../../src/kafka/schema-registry.js'
import { projectRoot } from '../../src/paths.js'

/**
 * The schema registry client against a registry's REST API served here (127.0.0.1): what it
 * does when the registry is slow, down, or refuses the credentials. (On the real broker:
 * test/kafka/run.test.ts, where a registry that is down for a while costs no valid record.)
 */
const SCHEMA = readFileSync(join(projectRoot(), 'schemas', 'user-event.avsc'), 'utf8')

let server: Server | undefined
afterEach(() => { server?.close(); server = undefined })

async function serve (handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  server = createServer(handler)
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', () => { resolve() }))
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`
}

const schema = (res: ServerResponse): void => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ schema: SCHEMA })) }

describe('schema registry client', () => {
  it('a registry that fails (503) makes the records wait, not dead letters; once it answers they are read', async () => {
    let calls = 0
    const url = await serve((_req, res) => { calls++; if (calls <= 2) { res.writeHead(503); res.end() } else schema(res) })
    const r = new SchemaRegistry(url)
    expect(await r.prefetch([42])).toBe(false)
    expect(r.unavailableSince).toBeTypeOf('number')
    expect(r.lastError).toMatch(/HTTP 503/)
    expect(await r.prefetch([42])).toBe(false)
    expect(await r.prefetch([])).toBe(true) // another partition's batch, needing no lookup…
    expect(r.unavailableSince).toBeTypeOf('number') // …does not say the registry is back
    expect(await r.prefetch([42])).toBe(true)
    expect([r.unavailableSince, r.problem(42), r.failures, calls]).toEqual([undefined, null, 2, 3])
    expect(await r.prefetch([42])).toBe(true) // cached: not asked again
    expect(calls).toBe(3)
  })

  it('a registry that does not answer in time counts as down (the request is cut off)', async () => {
    const url = await serve(() => { /* never answers */ })
    const r = new SchemaRegistry(url, undefined, 200)
    const t0 = Date.now()
    expect(await r.prefetch([7])).toBe(false)
    expect(Date.now() - t0).toBeLessThan(5000)
    expect(r.lastError).toMatch(/no answer within 0\.2 s/)
  })

  it('an unknown id (404) is a dead-letter reason; the registry is up', async () => {
    const url = await serve((_req, res) => { res.writeHead(404); res.end('{}') })
    const r = new SchemaRegistry(url)
    expect(await r.prefetch([9])).toBe(true)
    expect(r.problem(9)).toBe('schema id 9 is not in the schema registry')
  })

  it('a schema that cannot be read as ebb.UserEvent is a dead-letter reason that says what to register', async () => {
    // an enum without the event types the reader needs: avsc cannot resolve it
    const odd = JSON.stringify({ type: 'record', name: 'UserEvent', namespace: 'ebb', fields: [{ name: 'eventId', type: 'string' }, { name: 'userId', type: 'string' }, { name: 'type', type: { type: 'enum', name: 'EventType', symbols: ['SOMETHING_ELSE'] } }, { name: 'ts', type: 'long' }] })
    const url = await serve((_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ schema: odd })) })
    const r = new SchemaRegistry(url)
    expect(await r.prefetch([11])).toBe(true)
    expect(r.problem(11)).toMatch(/^schema id 11 cannot be read as ebb\.UserEvent: register a schema compatible with schemas\/user-event\.avsc .*; the registry's schema says: /)
  })

  it('sends HTTP Basic credentials from the URL or userInfo, and stops on refused ones without showing the password', async () => {
    const seen: Array<string | undefined> = []
    const url = await serve((req, res) => {
      seen.push(req.headers.authorization)
      if (req.headers.authorization === `Basic ${Buffer.from('ebb:s3cr:et').toString('base64')}`) schema(res)
      else { res.writeHead(401); res.end() }
    })
    const withUrl = url.replace('http://', 'http://ebb:s3cr%3Aet@')
    expect(await new SchemaRegistry(withUrl).prefetch([1])).toBe(true)
    expect(await new SchemaRegistry(url, 'ebb:s3cr:et').prefetch([1])).toBe(true)
    const refused = new SchemaRegistry(url, 'ebb:wrong')
    const err = await refused.prefetch([1]).then(() => undefined, (e: unknown) => e as { code: string, retriable: boolean, message: string })
    expect([err?.code, err?.retriable]).toEqual([Errors.SCHEMA_REGISTRY_AUTH.code, false])
    expect(err?.message).toMatch(/refused the credentials \(HTTP 401\)/)
    expect(err?.message).not.toMatch(/wrong|s3cr/)
    expect(seen[0]).toBe(seen[1])
  })
})
