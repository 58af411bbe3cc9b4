import type { FastifyPluginAsync } from 'fastify'
import { ISO_INSTANT, isCalendarInstant, MAX_TS, MIN_TS } from '../events/validate.js'
import { protectedRoute, type AuthHook } from './auth.js'
import type { EngineView } from './engine-view.js'
import { alertSchema, errorSchema } from './schemas.js'

interface AlertsQuery { since?: string, rule?: string, limit?: string }

/**
 * Parses `since` as the event contract reads `ts`: epoch millis, or an ISO-8601 instant with its
 * offset and a real calendar date (no server-zone guess for a local time, no 30 February rolled
 * over to March); NaN when neither.
 */
export function parseInstant (v: string): number {
  if (/^\d+$/.test(v)) return Number(v)
  const m = ISO_INSTANT.exec(v)
  return m !== null && isCalendarInstant(m) ? Date.parse(v) : Number.NaN
}

/** GET /alerts?since=&rule=&limit=: the most recent alerts this instance fired (bounded memory). */
export const alertsRoutes: FastifyPluginAsync<{ engine: EngineView, auth: AuthHook }> = async (app, { engine, auth }) => {
  app.get<{ Querystring: AlertsQuery }>('/alerts', {
    preHandler: auth,
    schema: {
      summary: 'Recent alerts, oldest first; at most the last 10,000 this instance fired',
      security: protectedRoute.security,
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          since: { type: 'string', description: 'only alerts fired at or after this instant (epoch millis or ISO-8601)' },
          rule: { type: 'string', pattern: '^[a-z][a-z0-9_]{0,63}$' },
          // A string read here, not an integer coerced by the validator: that would take 0x10, 1e2,
          // +5 or 10.0 for a number, and a typo in a URL should be said, not guessed.
          limit: { type: 'string', description: 'how many of the most recent matching alerts: an integer from 1 to 10000 (default 100)' }
        }
      },
      response: { 200: { type: 'object', properties: { alerts: { type: 'array', items: alertSchema }, truncated: { type: 'boolean' } } }, 400: errorSchema, 401: protectedRoute.unauthorized }
    }
  }, async (req, reply) => {
    const since = req.query.since === undefined ? Number.NEGATIVE_INFINITY : parseInstant(req.query.since)
    if (Number.isNaN(since)) return await reply.code(400).send({ error: 'bad_request', message: `since: "${req.query.since ?? ''}" is neither epoch millis nor an ISO-8601 instant with its offset (2026-03-01T00:00:00Z)` })
    // The event contract's window: 1700000000 (seconds) would match every alert, not none, and say nothing.
    if (req.query.since !== undefined && (since < MIN_TS || since > MAX_TS)) return await reply.code(400).send({ error: 'bad_request', message: `since: "${req.query.since ?? ''}" is outside 2000..2100, the years an event may be dated (epoch seconds or microseconds instead of millis?)` })
    const rule = req.query.rule
    if (rule !== undefined && !engine.topology.rules.some((r) => r.id === rule)) return await reply.code(400).send({ error: 'bad_request', message: `rule: "${rule}" is not a rule of this topology (its rules: ${engine.topology.rules.map((r) => r.id).join(', ')})` })
    const limit = req.query.limit === undefined ? 100 : /^[1-9]\d{0,4}$/.test(req.query.limit) ? Number(req.query.limit) : Number.NaN
    if (!(limit <= 10_000)) return await reply.code(400).send({ error: 'bad_request', message: `limit: "${req.query.limit ?? ''}" is not an integer from 1 to 10000 in decimal digits` })
    const matching = engine.recent.alerts.toArray().filter((a) => a.firedAt >= since && (rule === undefined || a.rule === rule))
    return { alerts: matching.slice(-limit), truncated: matching.length > limit }
  })
}
