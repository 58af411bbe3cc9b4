import { timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'

export type AuthHook = (req: FastifyRequest, reply: FastifyReply) => Promise<void>

/**
 * Bearer-token check for routes that reveal user data (README, "HTTP API"). Without a configured token
 * every request passes; with one, a missing or wrong token is 401 (compared in constant time).
 */
export function bearerAuth (token: string | undefined): AuthHook {
  const want = token === undefined ? undefined : Buffer.from(`Bearer ${token}`)
  return async (req, reply) => {
    if (want === undefined) return
    const got = Buffer.from(req.headers.authorization ?? '')
    if (got.length !== want.length || !timingSafeEqual(got, want)) {
      await reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'unauthorized', message: 'this route needs Authorization: Bearer <token> (the EBB_HTTP_TOKEN the server was started with)' })
    }
  }
}

/** The OpenAPI security requirement of a protected route, and its 401 response. */
export const protectedRoute = {
  security: [{ bearer: [] }],
  unauthorized: { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } } }
} as const
