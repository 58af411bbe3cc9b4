import { existsSync, readFileSync } from 'node:fs'
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

let version: string | undefined

/** The version in package.json: `ebb --version`, ebb_build_info, the OpenAPI document. */
export function packageVersion (): string {
  version ??= (JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string }).version
  return version
}
