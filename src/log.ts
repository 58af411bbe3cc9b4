import pino from 'pino'

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
const asked = process.env.EBB_LOG_LEVEL
const wanted = asked === undefined || asked.trim() === '' ? 'warn' : asked.trim().toLowerCase()

/**
 * An EBB_LOG_LEVEL that names no level, or null. The logger then runs at `warn` (pino would
 * throw while this module loads, before any command can say what is wrong), and `ebb` refuses
 * the command with a one-line usage error (src/cli/main.ts).
 */
export const badLogLevel: string | null = LEVELS.includes(wanted) ? null : (asked as string)

/** The levels EBB_LOG_LEVEL takes, for messages. */
export const LOG_LEVELS: readonly string[] = LEVELS

/**
 * Structured logs (pino, JSON lines on stderr). Level from EBB_LOG_LEVEL (default `warn` for
 * the CLI, whose human-readable progress lines and summary go to stderr and stdout). Logs carry
 * counts, codes, paths and ids of Ebb's own making (episode, alert), never event contents or
 * message bodies.
 */
export const log = pino({
  name: 'ebb',
  level: badLogLevel === null ? wanted : 'warn',
  base: { pid: process.pid }
}, pino.destination({ fd: 2, sync: true }))
