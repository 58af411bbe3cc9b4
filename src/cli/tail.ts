import { EbbError, Errors } from '../errors.js'
import { brokerProblem, loadRunConfig, OUTPUT_FORMATS, OUTPUT_TOPICS, type OutputFormat, type OutputTopic, type RunConfig } from '../kafka/config.js'
import { kafkaCommand } from '../kafka/client-errors.js'
import { PlatformaticClient } from '../kafka/platformatic-client.js'
import { decodeOutput, OUTPUT_KIND_OF, type OutputKind } from '../kafka/wire.js'
import { intOption, requireOption } from './args.js'
import { commandHelp, COMMANDS, parseCommand } from './commands.js'

const KINDS: readonly OutputKind[] = Object.values(OUTPUT_KIND_OF)

/**
 * `ebb tail`: an output topic, decoded, as JSON lines on stdout — what an alert consumer would
 * read (raw Avro, the Confluent wire format or JSON: decoded with the schemas in schemas/, which
 * are what Ebb registers, so no registry is asked). Reads
 * committed records only (the transactions of exactly-once mode), each partition from its start
 * to its end when tail started, through the same client port as `ebb run`.
 */
export async function tail (argv: string[]): Promise<number> {
  const o = parseCommand(COMMANDS.tail, argv)
  if (o.help === true) { process.stdout.write(commandHelp(COMMANDS.tail)); return 0 }
  const topicArg = requireOption('tail', 'topic', o.topic)
  const max = intOption('tail', 'max', o.max, Number.MAX_SAFE_INTEGER, 1, Number.MAX_SAFE_INTEGER)
  let conn: Pick<RunConfig, 'brokers' | 'ssl' | 'sasl'>
  let topic = topicArg
  let kind = o.kind as OutputKind | undefined
  let format = o.format as OutputFormat | undefined
  if (format !== undefined && !OUTPUT_FORMATS.includes(format)) throw new EbbError(Errors.USAGE, `ebb tail: --format must be ${OUTPUT_FORMATS.join(', ')}, got "${format}"`)
  if (o.config !== undefined) {
    // (one of the two: a --brokers beside --config would be silently ignored)
    if (o.brokers !== undefined) throw new EbbError(Errors.USAGE, 'ebb tail: give --config or --brokers, not both (the configuration names its brokers; EBB_BROKERS overrides them)')
    const c = loadRunConfig(o.config)
    conn = c
    // --topic with --config: a configured output names its topic, kind and format
    if ((OUTPUT_TOPICS as readonly string[]).includes(topicArg)) {
      const key = topicArg as OutputTopic
      topic = c.topics[key]
      kind ??= OUTPUT_KIND_OF[key]
      format ??= c.outputFormats[key]
    }
  } else {
    const brokers = o.brokers ?? process.env.EBB_BROKERS
    if (brokers === undefined || brokers === '') throw new EbbError(Errors.USAGE, 'ebb tail: --config or --brokers is required')
    const list = brokers.split(',').map((b) => b.trim())
    for (const b of list) {
      const problem = brokerProblem(b)
      if (problem !== null) throw new EbbError(Errors.USAGE, `ebb tail: --brokers ${problem}`)
    }
    conn = { brokers: list, ssl: false, sasl: null }
  }
  if (kind === undefined) throw new EbbError(Errors.USAGE, `ebb tail: --kind is required for topic "${topic}" (${KINDS.join(', ')}), or give --config and --topic ${OUTPUT_TOPICS.join('|')}`)
  if (!KINDS.includes(kind)) throw new EbbError(Errors.USAGE, `ebb tail: --kind must be one of ${KINDS.join(', ')}, got "${kind}"`)
  const client = new PlatformaticClient(conn, 'ebb-tail')
  let printed = 0
  await kafkaCommand(conn.brokers, 'ebb tail', async () => {
    const admin = await client.admin()
    try {
      const ends = await admin.endOffsets(topic)
      if (ends.size === 0) throw new EbbError(Errors.USAGE, `ebb tail: no topic "${topic}" on ${conn.brokers.join(',')}`)
      for (const [partition, end] of [...ends.entries()].sort((a, b) => a[0] - b[0])) {
        if (end === 0n || printed >= max) continue
        await client.readPartition(topic, partition, 0n, end - 1n, async (records) => {
          for (const r of records) {
            if (printed >= max || r.value === null) continue
            process.stdout.write(JSON.stringify(decodeOutput(kind, r.value, format ?? 'avro'), (_k, v: unknown) => typeof v === 'bigint' ? v.toString() : v) + '\n')
            printed++
          }
        })
      }
    } finally {
      await admin.close()
    }
  })
  process.stderr.write(`[tail] ${printed} records of ${topic}\n`)
  return 0
}
