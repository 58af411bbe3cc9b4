import { accessSync, closeSync, constants, openSync, readSync, type Stats, statSync } from 'node:fs'
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

/**
 * A whole number written in decimal digits (`_` between digits allowed: 1_000_000). Not
 * `Number()`'s reading, which takes 0x10, 1e3, +5, "5 " and "" (as 0) for numbers: a typo is said,
 * not guessed.
 */
export function intOption (command: string, name: string, value: string | undefined, dflt: number, min: number, max: number): number {
  if (value === undefined) return dflt
  const n = /^\d+(_\d+)*$/.test(value) ? Number(value.replace(/_/g, '')) : Number.NaN
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new EbbError(Errors.USAGE, `ebb ${command}: --${name} must be a whole number in ${min}..${max} (decimal digits), got "${value}"`)
  return n
}

/** A number written in decimal (0.25, 3, .5, 1e-4: digits, a fraction, an exponent; not hex, not a sign), accepted by `ok`; `what` says the range in words. */
export function decimalOption (command: string, name: string, value: string | undefined, dflt: number, ok: (x: number) => boolean, what: string): number {
  if (value === undefined) return dflt
  const x = /^(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isFinite(x) || !ok(x)) throw new EbbError(Errors.USAGE, `ebb ${command}: --${name} must be ${what}, got "${value}"`)
  return x
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

/** A gzip-compressed input (a regular file starting with gzip's magic bytes) is said so, with how to decompress it. */
export function refuseCompressed (file: string): void {
  if (!statSync(file).isFile()) return
  const fd = openSync(file, 'r')
  const head = Buffer.alloc(2)
  try { readSync(fd, head, 0, 2, 0) } finally { closeSync(fd) }
  if (head[0] === 0x1f && head[1] === 0x8b) throw new EbbError(Errors.INPUT_COMPRESSED, file, 'gunzip -k, or zcat F > F.jsonl')
}
