/**
 * Periodic progress lines on stderr for anything that takes more than a few seconds. Checking
 * the clock is cheap but not free, so callers tick it per batch, not per event.
 */
export class Progress {
  private readonly started = performance.now()
  private last = this.started

  constructor (private readonly label: string, private readonly everyMs = 2000, private readonly out: NodeJS.WritableStream = process.stderr) {}

  tick (line: () => string): void {
    const now = performance.now()
    if (now - this.last < this.everyMs) return
    this.last = now
    this.out.write(`[${this.label}] ${((now - this.started) / 1000).toFixed(1)}s ${line()}\n`)
  }

  get elapsedMs (): number { return performance.now() - this.started }
}

export function rate (n: number, ms: number): string {
  const r = ms > 0 ? n / (ms / 1000) : 0
  return r >= 1e6 ? `${(r / 1e6).toFixed(2)}M/s` : r >= 1e3 ? `${(r / 1e3).toFixed(1)}k/s` : `${r.toFixed(0)}/s`
}

export function count (n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : String(n)
}

/** How far along, when the total is known: "42%, 1m 10s left" (the rate so far, extrapolated). */
export function along (done: number, total: number, elapsedMs: number): string {
  if (!(total > 0)) return ''
  const f = Math.min(1, Math.max(0, done / total))
  if (f <= 0) return '0%'
  const left = elapsedMs * (1 - f) / f / 1000
  const eta = left >= 3600 ? `${Math.floor(left / 3600)}h ${Math.round((left % 3600) / 60)}m` : left >= 60 ? `${Math.floor(left / 60)}m ${Math.round(left % 60)}s` : `${Math.round(left)}s`
  return `${(f * 100).toFixed(0)}%, ${eta} left`
}

/**
 * Hands each day's batch of a simulation to `write` (a file, a Kafka topic), with a progress line
 * per tick ("day 12/90 (…), 1.2M events written (…)"); returns how many events were written.
 */
export async function writeDays<T> (batches: Iterable<T[]>, days: number, verb: string, write: (batch: T[]) => Promise<void>): Promise<number> {
  const progress = new Progress('simulate')
  let events = 0
  let day = 0
  for (const batch of batches) {
    day++
    if (batch.length > 0) await write(batch)
    events += batch.length
    progress.tick(() => `day ${day}/${days} (${along(day, days, progress.elapsedMs)}), ${count(events)} events${verb === '' ? '' : ` ${verb}`} (${rate(events, progress.elapsedMs)})`)
  }
  return events
}
