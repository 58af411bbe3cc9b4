import type { FastifyPluginAsync } from 'fastify'
import { CHANNELS } from '../events/user-event.js'
import { taskIdOf } from '../intervention/intervention-stage.js'
import { allSignals, todayOf } from '../signals/index.js'
import { TASK_DELIVERED, TASK_HOLDOUT, TASK_OPENED, TASK_RECALLED, type UserState } from '../state/user-state.js'
import { type ChurnLearner, sigmoid } from '../model/learner.js'
import { protectedRoute, type AuthHook } from './auth.js'
import type { EngineView } from './engine-view.js'
import { alertSchema, errorSchema, reasonSchema } from './schemas.js'

const userSchema = {
  type: 'object',
  properties: {
    userId: { type: 'string' },
    timezone: { type: 'string' },
    asOf: { type: 'integer', description: 'the stream time the signals are computed at (epoch millis, like every time of the API and of the output records)' },
    signals: { type: 'object', additionalProperties: { type: ['number', 'string', 'null'] } },
    churnScore: { type: ['number', 'null'] },
    reasons: { type: 'array', items: reasonSchema, description: 'the reasons of the open episode\'s alerts' },
    episode: {
      type: ['object', 'null'],
      properties: { episodeId: { type: 'string' }, openedAt: { type: 'integer' }, rulesFired: { type: 'array', items: { type: 'string' } } }
    },
    consent: { type: 'object', additionalProperties: { type: 'boolean' } },
    recentAlerts: { type: 'array', items: alertSchema },
    tasks: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          taskId: { type: ['string', 'null'] },
          episodeId: { type: 'string' },
          planId: { type: 'string' },
          step: { type: 'integer' },
          channel: { type: 'string' },
          sendAt: { type: 'integer' },
          holdout: { type: 'boolean' },
          delivered: { type: 'boolean' },
          opened: { type: 'boolean' },
          recalled: { type: 'boolean' }
        }
      }
    }
  }
} as const

/**
 * GET /users/:id: an interactive query on the live state (Kafka Streams' interactive queries):
 * signals at the partition's stream time, churnScore, the open episode and its reasons, consent,
 * recent alerts and the user's tasks. A user held by another instance is a 307 to its owner.
 */
export const usersRoutes: FastifyPluginAsync<{ engine: EngineView, auth: AuthHook }> = async (app, { engine, auth }) => {
  app.get<{ Params: { id: string } }>('/users/:id', {
    preHandler: auth,
    schema: {
      summary: 'A user\'s signals, score, open episode, recent alerts and tasks',
      security: protectedRoute.security,
      params: { type: 'object', properties: { id: { type: 'string', minLength: 1, maxLength: 256 } }, required: ['id'] },
      // no query parameters: one given is a 400 that names it, as on every route
      querystring: { type: 'object', additionalProperties: false, properties: {} },
      response: {
        200: userSchema,
        307: { type: 'object', properties: { owner: { type: 'string' } } },
        400: errorSchema,
        401: protectedRoute.unauthorized,
        404: errorSchema
      }
    }
  }, async (req, reply) => {
    const userId = req.params.id
    const where = await engine.locate(userId)
    if (!where.local) {
      const url = `${where.owner.replace(/\/$/, '')}/users/${encodeURIComponent(userId)}`
      return await reply.code(307).header('location', url).send({ owner: where.owner })
    }
    const s = where.state
    if (s === undefined) return await reply.code(404).send({ error: 'not_found', message: 'no state for this user on this instance (never seen, or erased)' })
    const at = Number.isFinite(where.streamTime) ? where.streamTime : s.lastEventTs
    const today = todayOf(s, at)
    const recentAlerts = engine.recent.alerts.toArray().filter((a) => a.userId === userId).slice(-20)
    const episodeId = s.episodeOpenTs === 0 ? null : `${userId}:${s.episodeOpenTs}`
    const episodeAlerts = episodeId === null ? [] : recentAlerts.filter((a) => a.episodeId === episodeId)
    const t = engine.topology
    return {
      userId,
      timezone: s.zone.id,
      asOf: at,
      signals: allSignals(s, today, t.params),
      // Scored on read at the partition's stream time, with what the partition has learned: the
      // stored score moves at local midnights (what model_risk sees), a reader wants it as of now.
      churnScore: scoreOnRead(s, today, where.learner ?? null),
      reasons: episodeAlerts.flatMap((a) => a.reasons),
      episode: episodeId === null
        ? null
        : { episodeId, openedAt: s.episodeOpenTs, rulesFired: t.rules.filter((r) => (s.ruleFired & (where.ruleSlots?.bit(r.index) ?? (1 << r.index))) !== 0).map((r) => r.id) },
      consent: Object.fromEntries(CHANNELS.map((c, i) => [c, (s.consentGranted & (1 << i)) !== 0 || ((s.consentRevoked & (1 << i)) === 0 && (t.intervention?.consentByDefault[i] ?? true))])),
      recentAlerts,
      tasks: s.tasks.map((e) => ({
        taskId: (e.flags & TASK_HOLDOUT) !== 0 ? null : taskIdOf(userId, e.episodeTs, e.planId, e.step),
        episodeId: `${userId}:${e.episodeTs}`,
        planId: e.planId,
        step: e.step,
        channel: CHANNELS[e.channel],
        sendAt: e.sendAt,
        holdout: (e.flags & TASK_HOLDOUT) !== 0,
        delivered: (e.flags & TASK_DELIVERED) !== 0,
        opened: (e.flags & TASK_OPENED) !== 0,
        recalled: (e.flags & TASK_RECALLED) !== 0
      }))
    }
  })
}


/** The score of the user's silence as of `today`: null before their first LOGIN, on a day they logged in, or before their spell is frozen. */
function scoreOnRead (s: UserState, today: number, learner: ChurnLearner | null): number | null {
  if (learner === null || s.lastLoginTs < 0 || s.lastLoginDay >= today || s.spellDay !== s.lastLoginDay) return null
  return Math.round(sigmoid(learner.z(s, today - s.lastLoginDay - 1)) * 1e6) / 1e6
}
