import { packageVersion } from '../paths.js'
import { randomUUID } from 'node:crypto'
import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { log } from '../log.js'
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
    ajv: { customOptions: { removeAdditional: false } }
  })
  // The request id goes back to the caller, so a client's report can be found in the logs.
  app.addHook('onSend', async (req, reply) => { reply.header('x-request-id', req.id) })
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
