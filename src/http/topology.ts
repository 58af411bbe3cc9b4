import type { FastifyPluginAsync } from 'fastify'
import { thresholdSpecText } from '../model/learner.js'
import { FEATURES } from '../model/spell.js'
import type { EngineView } from './engine-view.js'

const round = (x: number): number => Math.round(x * 1e6) / 1e6

const ruleSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    description: { type: 'string' },
    enabled: { type: 'boolean' },
    disabledReason: { type: 'string' },
    when: { type: 'array', items: { type: 'object', properties: { signal: { type: 'string' }, op: { type: 'string' }, threshold: { type: ['number', 'null'] }, chosen: { type: 'string' } } } }
  }
} as const

const learnedSchema = {
  type: 'object',
  properties: {
    partition: { type: 'integer' },
    thresholds: { type: 'array', items: { type: 'object', properties: { rule: { type: 'string' }, chosen: { type: 'string' }, probability: { type: 'number' }, warmingUp: { type: 'boolean' } } } },
    labelledDays: { type: 'number' },
    churnedDays: { type: 'number' },
    dailyUpdates: { type: 'number' },
    populationLoginRate: { type: 'number' },
    coefficients: { type: 'object', additionalProperties: { type: 'number' } }
  }
} as const

/** GET /topology: the rules, plans and model this instance runs (no user data). */
export const topologyRoutes: FastifyPluginAsync<{ engine: EngineView }> = async (app, { engine }) => {
  app.get('/topology', {
    schema: {
      summary: 'Rules, plans and model version of the running topology',
      response: {
        200: {
          type: 'object',
          properties: {
            file: { type: 'string' },
            defaultTimezone: { type: 'string' },
            model: { type: ['string', 'null'] },
            learned: { type: 'array', items: learnedSchema },
            rules: { type: 'array', items: ruleSchema },
            experiment: { type: ['object', 'null'], properties: { name: { type: 'string' }, holdoutShare: { type: 'number' } } },
            plans: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  id: { type: 'string' },
                  churnTypes: { type: 'array', items: { type: 'string' } },
                  valueTiers: { type: 'array', items: { type: 'string' } },
                  winback: { type: 'boolean' },
                  hook: { type: 'object', properties: { kind: { type: 'string' }, tier: { type: 'integer' }, value: { type: 'string' } } },
                  attributionWindowHours: { type: 'integer' },
                  steps: { type: 'array', items: { type: 'object', properties: { afterHours: { type: 'integer' }, channels: { type: 'array', items: { type: 'string' } } } } }
                }
              }
            }
          }
        }
      }
    }
  }, async () => {
    const t = engine.topology
    const iv = t.intervention
    return {
      file: t.file,
      defaultTimezone: t.defaultTimezone,
      model: t.model === null ? null : t.model.version,
      // What each partition held here learned from its stream (no user data: coefficients and counts).
      learned: engine.learners().map(({ partition, learner }) => {
        const l = learner.summary()
        return {
          partition,
          thresholds: t.modelThresholds.map((mt, k) => ({
            rule: t.rules.find((r) => r.when.some((c) => c.auto === k))?.id ?? '',
            chosen: thresholdSpecText(mt.spec),
            probability: round(l.thresholds[k]),
            warmingUp: !l.warm[k]
          })),
          labelledDays: l.examples,
          churnedDays: l.churnExamples,
          dailyUpdates: l.folds,
          populationLoginRate: round(l.populationLoginRate),
          coefficients: Object.fromEntries([['intercept', round(l.coefficients[0])], ...FEATURES.map((f, i) => [f.name, round(l.coefficients[i + 1])])])
        }
      }),
      rules: t.rules.map((r) => ({
        id: r.id,
        description: r.description,
        enabled: r.enabled,
        disabledReason: r.disabledReason,
        when: r.when.map((c) => c.auto >= 0 ? { signal: c.signal.name, op: c.op, threshold: null, chosen: thresholdSpecText(t.modelThresholds[c.auto].spec) } : { signal: c.signal.name, op: c.op, threshold: c.threshold })
      })),
      experiment: iv === null ? null : { name: iv.experiment, holdoutShare: iv.holdoutShare },
      plans: iv === null ? [] : iv.plans.plans.map((p) => ({ id: p.id, churnTypes: p.churnTypes, valueTiers: p.valueTiers, winback: p.winback, hook: p.hook, attributionWindowHours: p.attributionWindowHours, steps: p.steps.map((s) => ({ afterHours: s.afterHours, channels: s.channels })) }))
    }
  })
}
