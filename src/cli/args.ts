import { accessSync, constants, type Stats, statSync } from 'node:fs'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { EbbError, Errors } from '../errors.js'
import { ISO_INSTANT, isCalendarInstant, MAX_TS, MIN_TS } from '../events/validate.js'

type Options = NonNullable<ParseArgsConfig['options']>

/** Strict option parsing: an unknown or malformed option is a usage error (exit 2) that names it. */
export function parseOptions<T extends Options> (command: string, argv: string[], options: T): ReturnType<typeof parseArgs<{ options: T, strict: true, allowPositionals: false }>>['values'] {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values
  } catch (err) {
    throw new EbbError(Errors.USAGE, `ebb ${command}: ${(err as Error).message.split('\n')[0]}`)
  }
}

export function requireOption (command: string, name: string, value: string | undefined): string {
  if (value === undefined || value === '') throw new EbbError(Errors.USAGE, `ebb ${command}: --${name} is required`)
  return value
}

export function intOption (command: string, name: string, value: string | undefined, dflt: number, min: number, max: number): number {
  if (value === undefined) return dflt
  const n = Number(value.replace(/_/g, ''))
  if (!Number.isInteger(n) || n < min || n > max) throw new EbbError(Errors.USAGE, `ebb ${command}: --${name} must be a whole number in ${min}..${max}, got "${value}"`)
  return n
}

export function instantOption (command: string, name: string, given: string | undefined): number | undefined {
  if (given === undefined) return undefined
  const value = given.replace(/z$/, 'Z') // a lowercase z is still UTC
  const bad = (what: string): never => { throw new EbbError(Errors.USAGE, `ebb ${command}: --${name} "${given}" ${what}`) }
  // As the event contract reads an instant (src/events/validate.ts): epoch millis, or ISO-8601
  // with its offset and a real calendar date, in 2000..2100 (a year 9999 would make a replay
  // fire every local midnight until then).
  const iso = ISO_INSTANT.exec(value)
  const ms = /^\d+$/.test(value) ? Number(value) : iso !== null ? Date.parse(value) : Number.NaN
  if (iso === null && !/^\d+$/.test(value)) {
    // A date that only lacks its offset (it would be read in this machine's zone), else not one at all.
    if (Number.isFinite(Date.parse(value)) && !/(Z|[+-]\d{2}:?\d{2})$/.test(value)) bad('needs an offset, e.g. 2026-03-01T00:00:00Z')
    bad('is not an instant: give ISO-8601 with an offset (2026-03-01T00:00:00Z) or epoch milliseconds')
  }
  if (iso !== null && !isCalendarInstant(iso)) bad('is not a real calendar date and time')
  if (!Number.isFinite(ms) || ms < MIN_TS || ms > MAX_TS) bad('is outside 2000..2100, the years an event may be dated (epoch milliseconds, not seconds)')
  return ms
}

/**
 * Throws EBB_INPUT_NOT_FOUND unless `path` is a file this process can read, saying which it is
 * not (missing, a directory, not a regular file, not readable). `streams`: a pipe or a device
 * will do too (`--config <(envsubst < ebb.yaml)`, `--in /dev/stdin`), for readers that do not
 * need the size. Returns what it found (the size, for a progress bar).
 */
export function requireInputFile (path: string, opts: { streams?: boolean } = {}): Stats {
  let why: string
  try {
    const st = statSync(path)
    if (st.isFile() || (opts.streams === true && (st.isFIFO() || st.isCharacterDevice()))) {
      accessSync(path, constants.R_OK)
      return st
    }
    why = st.isDirectory() ? 'it is a directory, not a file' : 'it is not a regular file'
  } catch (err) {
    const code = (err as { code?: string }).code
    why = code === 'ENOENT' || code === 'ENOTDIR' ? 'no such file' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (err as Error).message
  }
  throw new EbbError(Errors.INPUT_NOT_FOUND, path, why)
}
