import pino from 'pino'

/**
 * Structured logs (pino, JSON lines on stderr). Level from EBB_LOG_LEVEL (default `warn` for
 * the CLI, whose human-readable progress lines and summary go to stderr and stdout). Logs carry
 * counts, codes, paths and ids of Ebb's own making (episode, alert), never event contents or
 * message bodies.
 */
export const log = pino({
  name: 'ebb',
  level: process.env.EBB_LOG_LEVEL ?? 'warn',
  base: { pid: process.pid }
}, pino.destination({ fd: 2, sync: true }))
