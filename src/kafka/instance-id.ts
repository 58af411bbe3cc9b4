import { randomBytes } from 'node:crypto'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
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
