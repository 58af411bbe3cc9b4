import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

let root: string | undefined

/**
 * The package root (the folder with package.json, schemas/ and topologies/). Code runs both
 * from src/ (vitest) and from dist/src/ (the bin), so the root is found, not assumed.
 */
export function projectRoot (): string {
  if (root !== undefined) return root
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'schemas'))) {
    const up = dirname(dir)
    if (up === dir) throw new Error('cannot find the Ebb package root above ' + fileURLToPath(import.meta.url))
    dir = up
  }
  root = dir
  return dir
}

export function schemaPath (name: string): string { return join(projectRoot(), 'schemas', name) }
export function topologyPath (name: string): string { return join(projectRoot(), 'topologies', name) }
