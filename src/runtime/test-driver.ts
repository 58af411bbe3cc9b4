import { encodeJsonEvent } from '../events/jsonl.js'
import type { UserEvent } from '../events/user-event.js'
import type { AlertRecord, DeadLetterRecord } from '../io/records.js'
import { MemorySink } from '../io/sinks.js'
import type { Topology } from '../rules/topology.js'
import { allSignals, todayOf } from '../signals/index.js'
import { MemoryStore } from '../state/memory-store.js'
import type { UserState } from '../state/user-state.js'
import { PartitionTask } from './partition-task.js'
import { LineBatch } from './record-batch.js'

/** An event for the driver: the record, with optional fields left out and ts as millis or ISO. */
export type DriverEvent = Partial<Omit<UserEvent, 'ts'>> & { userId: string, type: UserEvent['type'], ts: number | string }

/**
 * The topology test driver (Kafka Streams' TopologyTestDriver): the real engine on an
 * in-memory store and sink. Push events, move stream time, read the outputs; no broker, no
 * files, milliseconds per test.
 */
export class TopologyTestDriver {
  private seq = 0
  private constructor (readonly task: PartitionTask, readonly sink: MemorySink, readonly store: MemoryStore) {}

  static async create (topology: Topology, store = new MemoryStore()): Promise<TopologyTestDriver> {
    const sink = new MemorySink()
    return new TopologyTestDriver(await PartitionTask.open({ topology, store, sink }), sink, store)
  }

  /** Pipes events in order, as JSON Lines records (the same decode path as replay). */
  async pipe (...events: DriverEvent[]): Promise<void> {
    const lines = events.map((e) => {
      const ts = typeof e.ts === 'string' ? Date.parse(e.ts) : e.ts
      const full: UserEvent = {
        eventId: e.eventId ?? `drv-${++this.seq}`,
        userId: e.userId,
        type: e.type,
        ts,
        tz: e.tz ?? null,
        targetId: e.targetId ?? null,
        durationMs: e.durationMs ?? null,
        amount: e.amount ?? null,
        channel: e.channel ?? null,
        taskId: e.taskId ?? null
      }
      return encodeJsonEvent(full)
    })
    await this.task.process(new LineBatch(lines, 'driver', 1))
  }

  /** Pipes raw JSON Lines text (for malformed-input tests). */
  async pipeRaw (...lines: string[]): Promise<void> {
    await this.task.process(new LineBatch(lines, 'driver', 1))
  }

  /**
   * Confirms the event that waits for its time to be confirmed (a partition's first event, or a
   * jump beyond time.future.maxStep: docs/time.md) as the next event of the present would: it is
   * applied and stream time moves to it. Nothing happens when no event waits.
   */
  settle (): void {
    const t = this.task.heldEventTime
    if (t !== null) this.task.advanceTo(t - this.task.topology.allowedLatenessMs)
  }

  /** Advances stream time (the watermark) to an instant, firing due timers. */
  advanceTo (t: number | string): void {
    this.task.advanceTo(typeof t === 'string' ? Date.parse(t) : t)
  }

  async commit (): Promise<void> { await this.task.commit() }

  get alerts (): AlertRecord[] { return this.sink.alerts }
  get deadLetters (): DeadLetterRecord[] { return this.sink.deadLetters }
  alertsOf (rule: string): AlertRecord[] { return this.sink.alerts.filter((a) => a.rule === rule) }

  user (userId: string): UserState | undefined { return this.task.userState(userId) }

  /** All signals of a user at an instant. */
  signals (userId: string, at: number | string): Record<string, number | string | null> {
    const s = this.user(userId)
    if (s === undefined) throw new Error(`no state for ${userId}`)
    const ms = typeof at === 'string' ? Date.parse(at) : at
    return allSignals(s, todayOf(s, ms), this.task.topology.params)
  }
}
