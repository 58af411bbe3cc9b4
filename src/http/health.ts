import type { FastifyPluginAsync } from 'fastify'
import type { EbbMetrics } from '../metrics/metrics.js'
import type { EngineView } from './engine-view.js'

const status = { type: 'object', properties: { status: { type: 'string' }, reason: { type: 'string' } }, required: ['status'] } as const

/** /healthz (the process is up), /readyz (state restored, partitions assigned), /metrics. */
export const healthRoutes: FastifyPluginAsync<{ engine: EngineView, metrics: EbbMetrics }> = async (app, { engine, metrics }) => {
  // 503 once the process gave up (a fatal error, or the brokers unreachable past retryTimeout)
  // and is exiting: a liveness probe must not see a process that stopped trying as healthy.
  app.get('/healthz', { schema: { summary: 'Liveness: the process answers and has not given up', response: { 200: status, 503: status } } }, async (_req, reply) => {
    const l = engine.liveness?.() ?? { alive: true, reason: 'running' }
    return await reply.code(l.alive ? 200 : 503).send(l.alive ? { status: 'ok' } : { status: 'failed', reason: l.reason })
  })
  app.get('/readyz', { schema: { summary: 'Readiness: state restored and partitions assigned', response: { 200: status, 503: status } } }, async (_req, reply) => {
    const r = engine.readiness()
    return await reply.code(r.ready ? 200 : 503).send({ status: r.ready ? 'ready' : 'not ready', reason: r.reason })
  })
  app.get('/metrics', { schema: { summary: 'Prometheus metrics (text exposition format)', produces: ['text/plain'] } }, async (_req, reply) => {
    return await reply.type(metrics.contentType).send(await metrics.text())
  })
}
