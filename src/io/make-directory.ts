import { existsSync, mkdirSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'

/**
 * `mkdir -p`, one level at a time. Node 20's `mkdirSync(p, { recursive: true })` never returns
 * when mkdir fails with ENOENT under a parent that exists (`--out /proc/x`: it retries the same
 * call at 100% CPU, and a synchronous loop cannot even take SIGTERM); here that error is thrown
 * like any other, for the caller to say what to fix.
 */
export function makeDirectory (path: string): void {
  const missing: string[] = []
  for (let p = resolve(path); !existsSync(p); p = dirname(p)) {
    missing.push(p)
    if (dirname(p) === p) break
  }
  for (let i = missing.length - 1; i >= 0; i--) mkdirSync(missing[i])
  // as `mkdir -p` does: a file where the directory should be is an error, not a directory
  if (!statSync(path).isDirectory()) throw Object.assign(new Error(`${path} exists and is not a directory`), { code: 'ENOTDIR' })
}
