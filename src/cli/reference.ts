import { readFileSync } from 'node:fs'
import { schemaPath } from '../paths.js'
import { COMMANDS, commandHelp, generalHelp } from './commands.js'

/**
 * Reference pages generated from what the code reads, so they cannot drift: docs/cli.md from the
 * command table, docs/records.md from the Avro schemas. A test compares the files with these;
 * `npm run docs` writes them.
 */
export function cliReference (): string {
  const parts = [
    '# Command line',
    '',
    '<!-- generated from src/cli/commands.ts by `npm run docs`; a test keeps it equal -->',
    '',
    'Every command and option, as `ebb help` and `ebb <command> --help` print them.',
    '',
    '```',
    generalHelp().trimEnd(),
    '```'
  ]
  for (const spec of Object.values(COMMANDS)) parts.push('', `## ebb ${spec.name}`, '', '```', commandHelp(spec).trimEnd(), '```')
  return parts.join('\n') + '\n'
}

interface AvroField { name: string, type: unknown, doc?: string, default?: unknown }
interface AvroRecord { name: string, namespace?: string, doc?: string, fields: AvroField[] }

function typeName (t: unknown): string {
  if (typeof t === 'string') return t
  if (Array.isArray(t)) return t.map(typeName).join(' | ')
  const o = t as { type: string, name?: string, items?: unknown, symbols?: string[] }
  if (o.type === 'array') return `array of ${typeName(o.items)}`
  if (o.type === 'enum') return `enum ${o.name ?? ''}: ${(o.symbols ?? []).join(', ')}`
  if (o.type === 'record') return `record ${o.name ?? ''}`
  return o.name ?? o.type
}

/** Fields of a record and of the records nested in it. */
function fieldRows (r: AvroRecord, prefix: string, rows: string[]): void {
  for (const f of r.fields) {
    const t = f.type as { type?: string, fields?: AvroField[] }
    const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ')
    rows.push(`| \`${prefix}${f.name}\` | ${cell(typeName(f.type))} | ${f.default === undefined ? '' : cell(JSON.stringify(f.default))} | ${cell(f.doc ?? '')} |`)
    if (typeof t === 'object' && t !== null && t.type === 'record') fieldRows(t as AvroRecord, `${prefix}${f.name}.`, rows)
  }
}

const SCHEMAS: ReadonlyArray<readonly [string, string]> = [
  ['user-event.avsc', 'the input: one event (Avro on Kafka, one JSON object per line in files)'],
  ['alert.avsc', 'an alert: a rule fired, with its reasons and the recall decision'],
  ['recall-task.avsc', 'a recall task: the dispatch record'],
  ['outcome.avsc', 'an outcome: a user who came back after a task (last touch)'],
  ['dead-letter.avsc', 'a dead letter: input that could not be used, with why and where from']
]

export function recordsReference (): string {
  const parts = [
    '# Records',
    '',
    '<!-- generated from schemas/*.avsc by `npm run docs`; a test keeps it equal -->',
    '',
    'The records Ebb reads and writes, field by field, from the Avro schemas in `schemas/` (JSON Lines',
    'files carry the same fields; times are epoch milliseconds, or an ISO-8601 instant with an offset',
    'for an input `ts`). The event contract\'s rules (which fields each type needs, zones, limits) are',
    'in the README, "The event contract". On Kafka the output topics carry these records as raw Avro',
    'bodies, in the Confluent wire format with the schema registered as `<topic>-value` (with a schema',
    'registry), or as JSON objects: `outputFormat`, README "Output formats".'
  ]
  for (const [file, what] of SCHEMAS) {
    const r = JSON.parse(readFileSync(schemaPath(file), 'utf8')) as AvroRecord
    const rows: string[] = []
    fieldRows(r, '', rows)
    parts.push('', `## ${r.namespace === undefined ? '' : r.namespace + '.'}${r.name} (\`schemas/${file}\`): ${what}`, '', r.doc ?? '', '', '| field | type | default | notes |', '|---|---|---|---|', ...rows)
  }
  return parts.join('\n') + '\n'
}
