import type { AlertRecord, DeadLetterRecord, OutcomeRecord, RecallTaskRecord } from './records.js'
import type { OutputSink } from './sinks.js'

/** A bounded ring of the most recent records, oldest first when read. */
export class Ring<T> {
  private readonly items: T[] = []
  private next = 0
  constructor (readonly capacity: number) {}

  push (x: T): void {
    if (this.items.length < this.capacity) this.items.push(x)
    else this.items[this.next] = x
    this.next = (this.next + 1) % this.capacity
  }

  /** Oldest to newest. */
  toArray (): T[] {
    return this.items.length < this.capacity ? this.items.slice() : [...this.items.slice(this.next), ...this.items.slice(0, this.next)]
  }

  get size (): number { return this.items.length }

  /** Drops every item `drop` says (an ERASE: nothing the API serves may hold the user). */
  removeWhere (drop: (x: T) => boolean): void {
    const kept = this.toArray().filter((x) => !drop(x))
    this.items.length = 0
    for (const x of kept) this.items.push(x)
    this.next = this.items.length % this.capacity
  }
}

/** The most recent alerts and tasks, for the HTTP API (GET /alerts, a user's recent alerts and tasks). */
export class RecentRecords {
  readonly alerts: Ring<AlertRecord>
  readonly tasks: Ring<RecallTaskRecord>

  constructor (capacity = 10_000) {
    this.alerts = new Ring(capacity)
    this.tasks = new Ring(capacity)
  }

  /** An erased user's alerts and tasks leave the API's view. */
  forget (userId: string): void {
    this.alerts.removeWhere((a) => a.userId === userId)
    this.tasks.removeWhere((t) => t.userId === userId)
  }
}

/**
 * Tees an output sink into RecentRecords (the embedded demo). Bounded: older records are only in
 * the outputs themselves (files or topics). Kafka mode fills RecentRecords after each commit
 * instead, so that only committed records are shown.
 */
export class RecentRecordsSink extends RecentRecords implements OutputSink {
  constructor (private readonly inner: OutputSink, capacity = 10_000) {
    super(capacity)
  }

  alert (a: AlertRecord): void { this.alerts.push(a); this.inner.alert(a) }
  task (t: RecallTaskRecord): void { this.tasks.push(t); this.inner.task(t) }
  outcome (o: OutcomeRecord): void { this.inner.outcome(o) }
  deadLetter (d: DeadLetterRecord): void { this.inner.deadLetter(d) }
  erased (userId: string): void { this.forget(userId); this.inner.erased?.(userId) }
  async flush (): Promise<void> { await this.inner.flush() }
  async close (): Promise<void> { await this.inner.close() }
}
