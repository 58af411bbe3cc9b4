import { readSmallFile } from '../io/small-file.js'
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml'
import { EbbError, type ErrorDefinition, Errors } from '../errors.js'

const DURATION = /^(\d+)(ms|s|m|h|d)$/
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** Milliseconds of a duration like 30s, 5m, 12h or 1d; undefined if `text` is not one. */
export function parseDuration (text: string): number | undefined {
  const m = DURATION.exec(text)
  return m === null ? undefined : Number(m[1]) * UNIT_MS[m[2]]
}

/**
 * A YAML configuration document that reports every problem as `file:line: what is wrong`
 * (EBB_TOPOLOGY_INVALID, exit 2). The topology and the plan library read through it, so a typo
 * is an error at load with its line, never a default used without a word.
 */
export class YamlDoc {
  readonly root: Node | null

  private readonly lines: LineCounter

  /** `error`: the registry entry problems are reported as (topology and plans, or run configuration) */
  constructor (text: string, readonly file: string, private readonly error: ErrorDefinition = Errors.TOPOLOGY_INVALID) {
    this.lines = new LineCounter()
    const doc = parseDocument(text, { lineCounter: this.lines, uniqueKeys: true })
    if (doc.errors.length > 0) {
      const e = doc.errors[0]
      throw new EbbError(error, `${file}:${e.linePos?.[0].line ?? 1}`, e.message.split('\n')[0])
    }
    this.root = doc.contents as Node | null
  }

  line (node: Node | null | undefined): number | undefined {
    return node?.range != null ? this.lines.linePos(node.range[0]).line : undefined
  }

  fail (node: Node | null | undefined, what: string): never {
    const line = this.line(node)
    throw new EbbError(this.error, line !== undefined ? `${this.file}:${line}` : this.file, what)
  }

  get (map: Node | null | undefined, key: string): Node | undefined {
    if (!isMap(map)) return undefined
    return map.get(key, true) as Node | undefined
  }

  /** A misspelt key would otherwise be ignored and its default used without a word. */
  onlyKeys (map: Node | undefined, where: string, allowed: readonly string[]): void {
    if (map === undefined) return
    if (!isMap(map)) this.fail(map, `${where}: expected a mapping`)
    for (const pair of map.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : ''
      if (!allowed.includes(k)) this.fail(pair.key as Node, `${where}: unknown key "${k}" (expected ${allowed.join(', ')})`)
    }
  }

  /** The keys of a mapping, in file order, with their nodes. */
  entries (map: Node | undefined, where: string): Array<[string, Node, Node]> {
    if (!isMap(map)) return this.fail(map, `${where}: expected a mapping`)
    return map.items.map((p) => [isScalar(p.key) ? String(p.key.value) : '', p.key as Node, p.value as Node])
  }

  num (node: Node | undefined, where: string, dflt: number, min: number, max: number, integer = false): number {
    if (node === undefined) return dflt
    const v = isScalar(node) ? node.value : undefined
    if (typeof v !== 'number' || !Number.isFinite(v)) return this.fail(node, `${where}: expected a number, got ${JSON.stringify(isScalar(node) ? node.value : node?.toJSON())}`)
    if (integer && !Number.isInteger(v)) return this.fail(node, `${where}: expected a whole number, got ${v}`)
    if (v < min || v > max) return this.fail(node, `${where}: ${v} is outside ${min}..${max}`)
    return v
  }

  /** A string scalar; `dflt` undefined makes it required. */
  str (node: Node | undefined, where: string, dflt?: string): string {
    if (node === undefined) {
      if (dflt === undefined) return this.fail(node, `${where}: missing`)
      return dflt
    }
    if (!isScalar(node) || (typeof node.value !== 'string' && typeof node.value !== 'number')) return this.fail(node, `${where}: expected text`)
    return String(node.value)
  }

  bool (node: Node | undefined, where: string, dflt: boolean): boolean {
    if (node === undefined) return dflt
    if (!isScalar(node) || typeof node.value !== 'boolean') return this.fail(node, `${where}: expected true or false`)
    return node.value
  }

  duration (node: Node | undefined, where: string, dflt: number): number {
    if (node === undefined) return dflt
    const v = isScalar(node) ? String(node.value) : ''
    const ms = parseDuration(v)
    if (ms === undefined) return this.fail(node, `${where}: "${v}" is not a duration like 30s, 5m, 12h or 1d`)
    return ms
  }

  /** The items of a sequence (a missing node is an empty list when `required` is false). */
  seq (node: Node | undefined, where: string, required = true): Node[] {
    if (node === undefined && !required) return []
    if (!isSeq(node)) return this.fail(node, `${where}: expected a list`)
    return node.items as Node[]
  }

  /** A list of names, each one of `allowed`. */
  enumList<T extends string> (node: Node | undefined, where: string, allowed: readonly T[]): T[] {
    const out: T[] = []
    for (const item of this.seq(node, where)) {
      const v = this.str(item, where)
      if (!(allowed as readonly string[]).includes(v)) this.fail(item, `${where}: unknown "${v}" (known: ${allowed.join(', ')})`)
      if (out.includes(v as T)) this.fail(item, `${where}: "${v}" is listed twice`)
      out.push(v as T)
    }
    return out
  }
}

/** A configuration file's text; a missing or unreadable file is EBB_INPUT_NOT_FOUND (exit 2). */
export function readConfigText (file: string): string {
  try {
    return readSmallFile(file).toString('utf8')
  } catch (err) {
    throw new EbbError(Errors.INPUT_NOT_FOUND, file, (err as Error).message)
  }
}
