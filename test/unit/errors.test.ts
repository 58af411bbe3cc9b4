import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DEAD_LETTER_REASONS, EbbError, Errors } from '../../src/errors.js'
import { projectRoot } from '../../src/paths.js'

describe('the error registry', () => {
  const doc = readFileSync(join(projectRoot(), 'docs', 'errors.md'), 'utf8')
  const rows = new Map(doc.split('\n').filter((l) => l.startsWith('| EBB_')).map((l) => {
    const cells = l.split('|').map((c) => c.trim())
    return [cells[1], { exit: Number(cells[2]), retriable: cells[3] === 'yes', deadLetter: cells[4] === '' ? undefined : cells[4] }] as const
  }))

  it('has one row in docs/errors.md per code, with the same exit code, retriable flag and dead-letter reason', () => {
    const defs = Object.values(Errors)
    expect([...rows.keys()].sort()).toEqual(defs.map((d) => d.code).sort())
    for (const d of defs) expect(rows.get(d.code)).toEqual({ exit: d.exitCode, retriable: d.retriable, deadLetter: d.deadLetter })
  })

  it('has unique codes and fills message placeholders in order', () => {
    const codes = Object.values(Errors).map((d) => d.code)
    expect(new Set(codes).size).toBe(codes.length)
    const e = new EbbError(Errors.TOPOLOGY_INVALID, 'x.yaml:3', 'unknown signal "foo"')
    expect(e.message).toBe('x.yaml:3: unknown signal "foo"')
    expect(e.code).toBe('EBB_TOPOLOGY_INVALID')
    expect(e.exitCode).toBe(2)
  })

  it('lists the dead-letter reasons once: the registry\'s reasons, the Avro enum and the error codes agree', () => {
    const schema = JSON.parse(readFileSync(join(projectRoot(), 'schemas', 'dead-letter.avsc'), 'utf8')) as { fields: Array<{ name: string, type: { symbols?: string[] } }> }
    expect(schema.fields.find((f) => f.name === 'reason')?.type.symbols).toEqual([...DEAD_LETTER_REASONS])
    const used = new Set(Object.values(Errors).flatMap((d) => d.deadLetter === undefined ? [] : [d.deadLetter]))
    expect([...used].sort()).toEqual([...DEAD_LETTER_REASONS].sort())
  })
})
