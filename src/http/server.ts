import { randomUUID } from 'node:crypto'
import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify'
import { log } from '../log.js'
import { packageVersion } from '../paths.js'
import type { EbbMetrics } from '../metrics/metrics.js'
import { alertsRoutes } from './alerts.js'
import { bearerAuth } from './auth.js'
import type { EngineView } from './engine-view.js'
import { healthRoutes } from './health.js'
import { topologyRoutes } from './topology.js'
import { usersRoutes } from './users.js'

export interface ServerOptions {
  engine: EngineView
  metrics: EbbMetrics
  /** bearer token for the routes that return user data; none: open (say so in the logs) */
  token?: string
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * The HTTP API (README, "HTTP API") as a fastify instance, one plugin per concern. Every route has JSON
 * schemas (validation in, fast serialisation out) that also make the OpenAPI document at /docs.
 * Request logs carry the route pattern and a request id, never the URL (it holds user ids).
 */
const ERROR_CODES: Record<number, string> = { 400: 'bad_request', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 405: 'method_not_allowed', 413: 'payload_too_large', 414: 'uri_too_long', 415: 'unsupported_media_type', 429: 'too_many_requests', 503: 'unavailable' }

export async function buildServer (opts: ServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: log.child({ component: 'http' }, {
      serializers: {
        req: (req: { method: string, id: string, routeOptions?: { url?: string } }) => ({ method: req.method, route: req.routeOptions?.url, id: req.id }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode })
      }
    }) as FastifyBaseLogger,
    // The caller's x-request-id when it is a plain token of at most 128 characters (it is logged),
    // else a new UUID.
    requestIdHeader: false,
    genReqId: (req) => {
      const h = req.headers['x-request-id']
      return typeof h === 'string' && REQUEST_ID.test(h) ? h : randomUUID()
    },
    // user ids are up to 256 characters, each up to 12 once percent-encoded
    routerOptions: { maxParamLength: 4096 },
    // An unknown query parameter is a 400 that names it, not silently dropped.
    ajv: { customOptions: { removeAdditional: false } },
    // The router's own refusals (a URL that does not decode, a path parameter over
    // maxParamLength), in the one error shape, without the URL (it may hold a user id).
    frameworkErrors: (err, _req, reply) => {
      const long = err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      const r = reply as unknown as { code: (n: number) => { send: (b: unknown) => unknown } }
      r.code(long ? 414 : 400).send({ error: long ? 'uri_too_long' : 'bad_request', message: long ? 'a path parameter is longer than 4096 characters (a user id is at most 256)' : 'the URL does not decode: percent-encode each reserved character of a path parameter (a % as %25)' })
    },
    // What Node's HTTP parser refuses before any route runs (a malformed request, headers over
    // the size limit), in the same shape; the connection is closed after it.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return
      const [status, text, body] = err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', { error: 'headers_too_large', message: 'the request headers are larger than the server takes (16 KB)' }]
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout', { error: 'request_timeout', message: 'the request did not arrive in time' }]
          : [400, 'Bad Request', { error: 'bad_request', message: 'the request is not valid HTTP/1.1 (its method, its request line or its headers)' }]
      const json = JSON.stringify(body)
      // (as Node's own handler: not into a response of this connection that is being written)
      const open = (socket as unknown as { _httpMessage?: { _headerSent?: boolean } })._httpMessage
      if (socket.writable && open?._headerSent !== true) socket.write(`HTTP/1.1 ${status} ${text}\r\nContent-Length: ${Buffer.byteLength(json)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${json}`)
      socket.destroy(err)
    }
  })
  // One error shape everywhere: { error: snake_case code, message: what to fix }. Validation
  // errors name the parameter (an unknown query parameter included); no message echoes the URL,
  // which may hold a user id.
  app.setErrorHandler(async (err: FastifyError, req, reply) => {
    if (err.validation !== undefined && err.validation.length > 0) {
      const v = err.validation[0]
      const unknown = (v.params as { additionalProperty?: string } | undefined)?.additionalProperty
      const where = err.validationContext ?? 'request'
      const name = v.instancePath.slice(1).replace(/\//g, '.')
      const repeated = where === 'querystring' && Array.isArray((req.query as Record<string, unknown> | undefined)?.[name])
      const message = unknown !== undefined
        ? `unknown ${where === 'querystring' ? 'query parameter' : where + ' field'} "${unknown}"`
        : repeated
          ? `query parameter "${name}" is given more than once`
          : `${where}${name === '' ? '' : ' ' + name}: ${v.message ?? 'is not valid'}`
      return await reply.code(400).send({ error: 'bad_request', message })
    }
    const status = err.statusCode !== undefined && err.statusCode >= 400 ? err.statusCode : 500
    if (status >= 500) req.log.error({ err: { message: err.message, code: err.code } }, 'request failed')
    return await reply.code(status).send({ error: ERROR_CODES[status] ?? (status < 500 ? 'bad_request' : 'internal_error'), message: status < 500 ? err.message : 'the request failed inside Ebb; the log has the details (x-request-id)' })
  })
  // No route takes a body. Fastify's own parsers would parse one before routing decides, so a POST
  // of broken JSON to a GET-only path answered 400 instead of 404: a body of any type is read (up
  // to the body limit, 413 past it) and ignored.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, _body, done) => { done(null, undefined) })
  app.setNotFoundHandler(async (_req, reply) => await reply.code(404).send({ error: 'not_found', message: 'no such route: GET /healthz, /readyz, /metrics, /users/:id, /alerts, /topology, /docs' }))
  // The request id goes back to the caller, so a client's report can be found in the logs.
  app.addHook('onSend', async (req, reply) => { reply.header('x-request-id', req.id) })
  // A route that takes no query parameter says so when given one, as the others do (the OpenAPI
  // document's own routes under /docs excepted).
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/docs')) return
    route.schema ??= {}
    const schema = route.schema as { querystring?: unknown }
    schema.querystring ??= { type: 'object', additionalProperties: false, properties: {} }
  })
  // What Node's HTTP server would answer with an empty body, or not at all, in the one error shape:
  // CONNECT (a proxy tunnel: the socket was closed without a word) and an Expect header other than 100-continue (417).
  app.server.on('connect', (_req, socket: import('node:net').Socket) => {
    const json = JSON.stringify({ error: 'method_not_allowed', message: 'CONNECT is not served: this is an API, not a proxy (GET /docs lists its routes)' })
    socket.end(`HTTP/1.1 405 Method Not Allowed\r\nContent-Length: ${Buffer.byteLength(json)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${json}`)
  })
  app.server.on('checkExpectation', (_req, res) => {
    const json = JSON.stringify({ error: 'expectation_failed', message: 'the only Expect this server meets is 100-continue' })
    res.writeHead(417, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json), connection: 'close' })
    res.end(json)
  })
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'Ebb', description: 'Real-time churn early-warning engine: health, metrics, users, alerts, topology (README, "HTTP API").', version: packageVersion() },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } }
    }
  })
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' })
  const auth = bearerAuth(opts.token)
  await app.register(healthRoutes, { engine: opts.engine, metrics: opts.metrics })
  await app.register(usersRoutes, { engine: opts.engine, auth })
  await app.register(alertsRoutes, { engine: opts.engine, auth })
  await app.register(topologyRoutes, { engine: opts.engine })
  return app
}
