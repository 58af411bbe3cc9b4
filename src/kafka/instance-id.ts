import { randomBytes } from 'node:crypto'
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { EbbError, Errors } from '../errors.js'
import { makeDirectory } from '../io/make-directory.js'

/** the file in stateDir that keeps the instance id made for it (`ebb reset` removes it with the stores) */
export const INSTANCE_ID_FILE = 'instance-id'

/**
 * The instance id of a configuration that sets none: `<applicationId>-<8 hex digits>`, made once
 * and kept in the state directory, as Kafka Streams keeps its process id there. Each instance has
 * a state directory of its own (RocksDB locks it), so two instances never share an id; a restart
 * on the same directory keeps it, so its transactional id fences the previous incarnation. (A
 * fixed default, `<applicationId>-0`, gave every instance started without EBB_INSTANCE_ID the same
 * transactional id: each fenced the other's transactions in turn, for as long as both ran.)
 */
export function stateInstanceId (stateDir: string, applicationId: string): string {
  const file = join(stateDir, INSTANCE_ID_FILE)
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

/** the file in stateDir naming the `ebb run` process that uses it: `<pid>@<host>` */
export const PID_FILE = 'instance.pid'

/**
 * Claims the state directory for this process, as Kafka Streams locks its state directory: a
 * second `ebb run` on the same directory would share its instance id (so its transactional id:
 * the two would fence each other's transactions in turn) and race it for the partition stores.
 * Refused (EBB_STATE_LOCKED) while the process the file names runs on this host; a file left by a
 * process that is gone (kill -9) is taken over. Returns the release, for a clean exit.
 */
export function claimStateDir (stateDir: string): () => void {
  makeDirectory(stateDir)
  const file = join(stateDir, PID_FILE)
  const me = `${process.pid}@${hostname()}`
  let other = ''
  try { other = readFileSync(file, 'utf8').trim() } catch { /* none: free */ }
  const m = /^(\d+)@(.+)$/.exec(other)
  if (m !== null && m[2] === hostname() && Number(m[1]) !== process.pid && running(Number(m[1]))) {
    throw new EbbError(Errors.STATE_LOCKED, stateDir, `\`ebb run\` process ${m[1]} uses it (${file})`)
  }
  writeFileSync(file, `${me}\n`)
  return () => {
    try { if (readFileSync(file, 'utf8').trim() === me) rmSync(file) } catch { /* already gone */ }
  }
}

function running (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' // alive, another user's
  }
}
