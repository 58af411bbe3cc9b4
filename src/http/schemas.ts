/** JSON schemas of the records the API returns (the same fields as the Avro schemas in schemas/). */
export const reasonSchema = {
  type: 'object',
  properties: { code: { type: 'string' }, signal: { type: 'string' }, value: { type: 'number' }, op: { type: 'string' }, threshold: { type: 'number' }, text: { type: 'string' } }
} as const

export const alertSchema = {
  type: 'object',
  properties: {
    alertId: { type: 'string' },
    userId: { type: 'string' },
    episodeId: { type: 'string' },
    rule: { type: 'string' },
    firedAt: { type: 'integer', description: 'epoch millis' },
    score: { type: ['number', 'null'] },
    reasons: { type: 'array', items: reasonSchema },
    churnType: { type: ['string', 'null'] },
    valueTier: { type: 'string' },
    responseTier: { type: 'string' },
    arm: { type: ['string', 'null'] },
    decision: { type: ['string', 'null'] },
    taskId: { type: ['string', 'null'] }
  }
} as const

export const errorSchema = { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } } } as const
