import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { EbbError, Errors } from '../errors.js'
import { makeDirectory } from '../io/make-directory.js'

/**
 * The files in stateDir that keep the instance id made for an application and name the process
 * that uses the directory, per application (two applications may share a stateDir: their stores
 * are named by their input topics); `ebb reset` removes them with the stores.
 */
export const instanceIdFile = (applicationId: string): string => `${applicationId}.instance-id`
export const pidFile = (applicationId: string): string => `${applicationId}.pid`

/**
 * The instance id of a configuration that sets none: `<applicationId>-<8 hex digits>`, made once
 * and kept in the state directory, as Kafka Streams keeps its process id there. Each instance has
 * a state directory of its own (RocksDB locks it), so two instances never share an id; a restart
 * on the same directory keeps it, so its transactional id fences the previous incarnation. (A
 * fixed default, `<applicationId>-0`, gave every instance started without EBB_INSTANCE_ID the same
 * transactional id: each fenced the other's transactions in turn, for as long as both ran.)
 */
export function stateInstanceId (stateDir: string, applicationId: string): string {
  const file = join(stateDir, instanceIdFile(applicationId))
  try {
    const kept = readFileSync(file, 'utf8').trim()
    if (kept.startsWith(`${applicationId}-`) && /^[A-Za-z0-9._-]{1,200}$/.test(kept)) return kept
  } catch {
    // none yet (or unreadable): a new one
  }
  makeDirectory(stateDir)
  const id = `${applicationId}-${randomBytes(4).toString('hex')}`
  writeFileSync(`${file}.tmp`, `${id}\n`)
  renameSync(`${file}.tmp`, file)
  return id
}

/**
 * Claims the state directory for this process, as Kafka Streams locks its state directory: a
 * second `ebb run` on the same directory would share its instance id (so its transactional id:
 * the two would fence each other's transactions in turn) and race it for the partition stores.
 * Refused (EBB_STATE_LOCKED) while the process the file names runs on this host; a file left by a
 * process that is gone (kill -9) is taken over. Returns the release, for a clean exit.
 */
export function claimStateDir (stateDir: string, applicationId: string): () => void {
  makeDirectory(stateDir)
  const file = join(stateDir, pidFile(applicationId))
  const me = processIdentity(process.pid)
  const release = (): void => {
    try { if (readFileSync(file, 'utf8').trim() === me) rmSync(file) } catch { /* already gone */ }
  }
  // Created exclusively ('wx'), so of two processes starting at once only one gets it; a file
  // found is judged, and one left by a process that is gone removed (if it still says the same)
  // before trying again.
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      writeFileSync(file, `${me}\n`, { flag: 'wx' })
      return release
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    let other = ''
    try { other = readFileSync(file, 'utf8').trim() } catch { continue /* removed meanwhile: try again */ }
    if (other === me) return release
    const holder = holderAlive(other)
    if (holder !== undefined) throw new EbbError(Errors.STATE_LOCKED, stateDir, `Ebb process ${holder} uses it for ${applicationId} (${file})`)
    try { if (readFileSync(file, 'utf8').trim() === other) rmSync(file) } catch { /* removed meanwhile */ }
  }
  throw new EbbError(Errors.STATE_LOCKED, stateDir, `another process keeps claiming it for ${applicationId} (${file})`)
}

/**
 * What the claim file says of a process: `<pid>@<host>`, and where Linux's /proc tells them, the
 * boot's id and the process's start time (clock ticks since boot): `<pid>@<host> <boot>:<start>`.
 * A pid alone is reused: after a kill -9, a reboot (two services on one host may swap pids), a
 * container's restart. Boot and start time tell the process that wrote the file from any later
 * one with its pid.
 */
export function processIdentity (pid: number): string {
  const start = processStart(pid)
  const boot = bootId()
  return start === undefined || boot === undefined ? `${pid}@${hostname()}` : `${pid}@${hostname()} ${boot}:${start}`
}

/** The pid of the process a claim file names if that process still runs (and is Ebb), else undefined. */
function holderAlive (claim: string): number | undefined {
  const m = /^(\d+)@(\S+)(?: ([0-9a-f-]+):(\d+))?$/.exec(claim)
  if (m === null || m[2] !== hostname()) return undefined
  const pid = Number(m[1])
  // This process's own pid in a file it did not write (the identity differs): left by an earlier
  // run that had the same pid — a container's entrypoint is pid 1 at every start — so not a holder.
  if (pid === process.pid) return undefined
  // Written with its identity: alive only if the same boot and a process of that pid with the
  // same start time runs (another boot, a reused pid or none: gone).
  const boot = m[3] === undefined ? undefined : bootId()
  if (boot !== undefined) return boot === m[3] && processStart(pid) === m[4] ? pid : undefined
  return isEbb(pid) ? pid : undefined
}

/** Field 22 of /proc/<pid>/stat: the process's start, in clock ticks after boot (undefined where there is no /proc, or no such process). */
function processStart (pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // after the command's name in parentheses (which may hold spaces and parentheses): fields 3, 4, …
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const start = fields[19]
    return start !== undefined && /^\d+$/.test(start) ? start : undefined
  } catch {
    return undefined
  }
}

function bootId (): string | undefined {
  try {
    const id = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
    return /^[0-9a-f-]+$/.test(id) ? id : undefined
  } catch {
    return undefined
  }
}

/**
 * Whether `pid` is an Ebb process, for a claim file without a start time (an older one, or a
 * system without /proc's stat). Where /proc says what runs (Linux), its command line must be
 * Ebb's; elsewhere, any live process counts.
 */
function isEbb (pid: number): boolean {
  if (existsSync('/proc/self')) {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
      return args.some((a) => /(^|\/)ebb(\.js)?$/.test(a))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false // gone
    }
  }
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' // alive, another user's
  }
}
