import { encodeAvroEvent } from '../src/events/avro.js'
import type { EventTypeName, UserEvent } from '../src/events/user-event.js'

import type { DeadLetterSource } from '../src/io/records.js'
import type { RecordBatch } from '../src/runtime/record-batch.js'

/**
 * The benchmark's input: `events` Avro records over `users` users, in time order, with the
 * event mix of an engagement app (half views, logins, interactions, some follows, purchases,
 * push messages) spread over `days` days of event time and three zones. Bodies are packed in
 * one Buffer with an offset table: millions of Buffer objects held for the whole run would make
 * every major GC trace them, a cost no real source has (a Kafka batch's buffers die young).
 */
export interface BenchPopulation {
  all: Buffer
  offsets: Float64Array
  length: number
  bytes: number
  users: number
}

/** Records [from, to) of a packed population; a value is a view made on access. */
export class PackedBatch implements RecordBatch {
  readonly format = 'avro' as const
  constructor (private readonly pop: BenchPopulation, private readonly from: number, private readonly to: number) {}
  get length (): number { return this.to - this.from }
  value (i: number): Buffer {
    const k = this.from + i
    return this.pop.all.subarray(this.pop.offsets[k], this.pop.offsets[k + 1])
  }

  source (i: number): DeadLetterSource {
    return { topic: 'bench', partition: 0, offset: String(this.from + i), file: null, line: null }
  }
}

const MIX: Array<[EventTypeName, number]> = [
  ['VIEW', 0.50], ['LOGIN', 0.14], ['INTERACT', 0.15], ['POST', 0.03], ['FOLLOW', 0.05], ['UNFOLLOW', 0.03],
  ['PURCHASE', 0.02], ['MESSAGE_DELIVERED', 0.05], ['MESSAGE_OPENED', 0.03]
]
const ZONES = ['Asia/Shanghai', 'America/New_York', 'Europe/Berlin']

export const BENCH_START = Date.parse('2026-03-02T00:00:00Z')

/**
 * `idBase` offsets the event ids (chunks of one stream must not repeat ids: they would be
 * duplicates); `seen`, when given, marks each user drawn.
 */
export function buildPopulation (users: number, events: number, days: number, seed = 42, start = BENCH_START, idBase = 0, seen?: Uint8Array): BenchPopulation {
  let x = seed >>> 0 || 1
  const rnd = (): number => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 4294967296 }
  const cumulative: number[] = []
  let acc = 0
  for (const [, p] of MIX) { acc += p; cumulative.push(acc) }
  const span = days * 86_400_000
  const width = String(users - 1).length
  const parts: Buffer[] = []
  let bytes = 0
  for (let i = 0; i < events; i++) {
    const u = Math.floor(rnd() * users)
    if (seen !== undefined) seen[u] = 1
    const r = rnd()
    let t = 0
    while (t < MIX.length - 1 && r > cumulative[t]) t++
    const type = MIX[t][0]
    const e: UserEvent = {
      eventId: `e${(idBase + i).toString(36)}`,
      userId: `user-${String(u).padStart(width, '0')}`,
      type,
      ts: start + Math.floor(i * span / events),
      tz: ZONES[u % ZONES.length],
      targetId: type === 'LOGIN' || type.startsWith('MESSAGE') ? null : `c${Math.floor(rnd() * 5000)}`,
      durationMs: type === 'VIEW' ? Math.floor(rnd() * 120_000) : null,
      amount: type === 'PURCHASE' ? Math.round(rnd() * 20000) / 100 : null,
      channel: type.startsWith('MESSAGE') ? 'PUSH' : null,
      taskId: null
    }
    const b = encodeAvroEvent(e)
    parts.push(b)
    bytes += b.length
  }
  const all = Buffer.concat(parts, bytes)
  const offsets = new Float64Array(events + 1)
  for (let i = 0; i < events; i++) offsets[i + 1] = offsets[i] + parts[i].length
  return { all, offsets, length: events, bytes, users }
}
