import { open, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { EbbError, Errors } from '../errors.js'
import type { AlertRecord, DeadLetterRecord } from './records.js'

/**
 * Where the engine's outputs go. The engine calls the record methods synchronously from its
 * hot loop (they only buffer); `flush` is awaited at commit points. File, in-process and (with
 * the Kafka issue) Kafka sinks implement the same interface, so the core never changes for them.
 * Recall tasks and outcomes join as methods of their own when the intervention stage lands.
 */
export interface OutputSink {
  alert (a: AlertRecord): void
  deadLetter (d: DeadLetterRecord): void
  flush (): Promise<void>
  close (): Promise<void>
}

/** The in-process log: keeps every record in memory (the embedded demo and the test driver). */
export class MemorySink implements OutputSink {
  readonly alerts: AlertRecord[] = []
  readonly deadLetters: DeadLetterRecord[] = []
  alert (a: AlertRecord): void { this.alerts.push(a) }
  deadLetter (d: DeadLetterRecord): void { this.deadLetters.push(d) }
  async flush (): Promise<void> {}
  async close (): Promise<void> {}
}

/** Alert as one JSON line, fields in schema order, so equal runs give equal bytes. */
export function alertJson (a: AlertRecord): string {
  return JSON.stringify({
    alertId: a.alertId,
    userId: a.userId,
    episodeId: a.episodeId,
    rule: a.rule,
    firedAt: a.firedAt,
    score: a.score,
    reasons: a.reasons.map((r) => ({ code: r.code, signal: r.signal, value: r.value, op: r.op, threshold: r.threshold, text: r.text })),
    churnType: a.churnType,
    valueTier: a.valueTier,
    responseTier: a.responseTier,
    arm: a.arm,
    decision: a.decision,
    taskId: a.taskId
  })
}

export function deadLetterJson (d: DeadLetterRecord): string {
  const s = d.source
  return JSON.stringify({
    reason: d.reason,
    code: d.code,
    detail: d.detail,
    raw: d.raw,
    source: { topic: s.topic, partition: s.partition, offset: s.offset, file: s.file, line: s.line }
  })
}

class JsonlFile {
  private chunks: string[] = []
  private handle: FileHandle | undefined
  constructor (readonly path: string) {}
  async open (): Promise<void> {
    try {
      this.handle = await open(this.path, 'w')
    } catch (err) {
      throw new EbbError(Errors.OUTPUT_NOT_WRITABLE, this.path, (err as Error).message)
    }
  }

  push (line: string): void { this.chunks.push(line, '\n') }
  async flush (): Promise<void> {
    if (this.chunks.length === 0 || this.handle === undefined) return
    const text = this.chunks.join('')
    this.chunks = []
    try {
      await this.handle.write(text)
    } catch (err) {
      throw new EbbError(Errors.SINK_WRITE, `${this.path}: ${(err as Error).message}`)
    }
  }

  async close (): Promise<void> {
    await this.flush()
    await this.handle?.close()
    this.handle = undefined
  }
}

/** `replay`'s output: alerts.jsonl and dlq.jsonl in a directory, truncated when opened. */
export class JsonlDirectorySink implements OutputSink {
  private readonly alerts: JsonlFile
  private readonly dlq: JsonlFile
  alertCount = 0
  deadLetterCount = 0

  private constructor (readonly dir: string) {
    this.alerts = new JsonlFile(join(dir, 'alerts.jsonl'))
    this.dlq = new JsonlFile(join(dir, 'dlq.jsonl'))
  }

  static async open (dir: string): Promise<JsonlDirectorySink> {
    const s = new JsonlDirectorySink(dir)
    await s.alerts.open()
    await s.dlq.open()
    return s
  }

  alert (a: AlertRecord): void { this.alertCount++; this.alerts.push(alertJson(a)) }
  deadLetter (d: DeadLetterRecord): void { this.deadLetterCount++; this.dlq.push(deadLetterJson(d)) }
  async flush (): Promise<void> { await this.alerts.flush(); await this.dlq.flush() }
  async close (): Promise<void> { await this.alerts.close(); await this.dlq.close() }
}
