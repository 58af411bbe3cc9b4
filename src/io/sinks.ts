import { open, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { EbbError, Errors } from '../errors.js'
import type { AlertRecord, DeadLetterRecord, OutcomeRecord, RecallTaskRecord } from './records.js'

/**
 * Where the engine's outputs go. The engine calls the record methods synchronously from its
 * hot loop (they only buffer); `flush` is awaited at commit points. File, in-process and Kafka
 * sinks implement the same interface, so the core never changes for them.
 */
export interface OutputSink {
  alert (a: AlertRecord): void
  /** a recall task for the dispatch topic */
  task (t: RecallTaskRecord): void
  outcome (o: OutcomeRecord): void
  deadLetter (d: DeadLetterRecord): void
  /** an ERASE was applied: views of recent records drop the user (outputs already written stay) */
  erased? (userId: string): void
  flush (): Promise<void>
  close (): Promise<void>
}

/** The in-process log: keeps every record in memory (the embedded demo and the test driver). */
export class MemorySink implements OutputSink {
  readonly alerts: AlertRecord[] = []
  readonly tasks: RecallTaskRecord[] = []
  readonly outcomes: OutcomeRecord[] = []
  readonly deadLetters: DeadLetterRecord[] = []
  alert (a: AlertRecord): void { this.alerts.push(a) }
  task (t: RecallTaskRecord): void { this.tasks.push(t) }
  outcome (o: OutcomeRecord): void { this.outcomes.push(o) }
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

/** Recall task as one JSON line, fields in schema order. */
export function taskJson (t: RecallTaskRecord): string {
  return JSON.stringify({
    taskId: t.taskId,
    userId: t.userId,
    episodeId: t.episodeId,
    alertId: t.alertId,
    planId: t.planId,
    churnType: t.churnType,
    valueTier: t.valueTier,
    channel: t.channel,
    title: t.title,
    body: t.body,
    link: t.link,
    sendAt: t.sendAt,
    expiresAt: t.expiresAt,
    attributionWindowHours: t.attributionWindowHours,
    experiment: t.experiment,
    arm: t.arm
  })
}

export function outcomeJson (o: OutcomeRecord): string {
  return JSON.stringify({ taskId: o.taskId, userId: o.userId, planId: o.planId, channel: o.channel, sentAt: o.sentAt, recalledAt: o.recalledAt, cycleTimeMs: o.cycleTimeMs })
}

export function deadLetterJson (d: DeadLetterRecord): string {
  const s = d.source
  return JSON.stringify({
    reason: d.reason,
    code: d.code,
    detail: d.detail,
    raw: d.raw,
    source: { topic: s.topic, partition: s.partition, offset: s.offset, file: s.file, line: s.line },
    rawBytes: d.rawBytes,
    rawSha256: d.rawSha256
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

/** `replay`'s output: alerts, tasks, outcomes and dead letters as JSON Lines in a directory, truncated when opened. */
export class JsonlDirectorySink implements OutputSink {
  private readonly alerts: JsonlFile
  private readonly tasks: JsonlFile
  private readonly outcomes: JsonlFile
  private readonly dlq: JsonlFile
  private readonly files: JsonlFile[]

  private constructor (readonly dir: string) {
    this.alerts = new JsonlFile(join(dir, 'alerts.jsonl'))
    this.tasks = new JsonlFile(join(dir, 'tasks.jsonl'))
    this.outcomes = new JsonlFile(join(dir, 'outcomes.jsonl'))
    this.dlq = new JsonlFile(join(dir, 'dlq.jsonl'))
    this.files = [this.alerts, this.tasks, this.outcomes, this.dlq]
  }

  static async open (dir: string): Promise<JsonlDirectorySink> {
    const s = JsonlDirectorySink.unopened(dir)
    await s.openFiles()
    return s
  }

  /** A sink whose files are opened (and truncated) only by openFiles(): replay checks its input first. */
  static unopened (dir: string): JsonlDirectorySink { return new JsonlDirectorySink(dir) }

  async openFiles (): Promise<void> { for (const f of this.files) await f.open() }

  alert (a: AlertRecord): void { this.alerts.push(alertJson(a)) }
  task (t: RecallTaskRecord): void { this.tasks.push(taskJson(t)) }
  outcome (o: OutcomeRecord): void { this.outcomes.push(outcomeJson(o)) }
  deadLetter (d: DeadLetterRecord): void { this.dlq.push(deadLetterJson(d)) }
  async flush (): Promise<void> { for (const f of this.files) await f.flush() }
  async close (): Promise<void> { for (const f of this.files) await f.close() }
}
