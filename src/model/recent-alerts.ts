import { EbbError, Errors } from '../errors.js'
import type { KvStore, StoreBatch } from '../state/kv-store.js'
import { metaKey } from '../state/keys.js'
import { OFF_SPELL, type UserState } from '../state/user-state.js'

/**
 * The reference rule's alerts of the last weeks, each with the spell record of its silence, for
 * the earlierThan veto (docs/churn-model.md, "The veto"): so that the veto is chosen on the
 * scores today's coefficients give those alerts, and on alerts a week old rather than 32 days.
 *
 * Two kinds of entries, both filed under the UTC day the reference alerted: the alert itself
 * (when its silent day is scored) and, when a LOGIN comes first, the same silence again as wrong,
 * with how many days of it were scored (to tell whether a postponed alert would have come back).
 * Right labels are not needed: an alert with no wrong entry a week after it counts as right.
 *
 * An entry is RECENT_ALERT_WORDS uint16 words: flags (bit 0 wrong, the rest the controller's
 * index), the spell's local day, its scored days, and the first 15 words of the spell record (the
 * 16th, the reference day's score, is recomputed). Bounded: a day is dropped HOLD_DAYS after it.
 * Stored by day in chunks of CHUNK entries (`mlearner-r<day>.<chunk>`): a commit rewrites only
 * the chunks that grew, not a whole day.
 */
export const RECENT_ALERT_WORDS = 18
const RECORD_WORDS = 15
const CHUNK = 256
/** days an alert is kept: with the veto's memory (decay 0.98 a day) an alert 90 days old weighs 0.19 */
export const HOLD_DAYS = 90

const PREFIX = 'learner-r'
const chunkKey = (day: number, chunk: number): Buffer => metaKey(`${PREFIX}${day}.${chunk}`)

interface Day { words: Uint16Array, n: number }

export class RecentReferenceAlerts {
  private readonly days = new Map<number, Day>()
  /** `${day}.${chunk}` keys to write at the next commit */
  private readonly dirty = new Set<string>()
  /** [day, chunks] dropped since the last commit */
  private readonly dropped: Array<[number, number]> = []

  get size (): number { let n = 0; for (const d of this.days.values()) n += d.n; return n }

  /** Files the user's silence under the reference's alert of UTC day `day` (controller k; `wrong`: a LOGIN came first). */
  add (day: number, k: number, wrong: boolean, s: UserState): void {
    let d = this.days.get(day)
    if (d === undefined) { d = { words: new Uint16Array(16 * RECENT_ALERT_WORDS), n: 0 }; this.days.set(day, d) }
    if ((d.n + 1) * RECENT_ALERT_WORDS > d.words.length) {
      const grown = new Uint16Array(d.words.length * 2)
      grown.set(d.words)
      d.words = grown
    }
    const o = d.n * RECENT_ALERT_WORDS
    d.words[o] = (k << 1) | (wrong ? 1 : 0)
    d.words[o + 1] = s.spellDay & 0xffff
    d.words[o + 2] = Math.min(0xffff, s.spellScored)
    d.words.set(s.words.subarray(OFF_SPELL, OFF_SPELL + RECORD_WORDS), o + 3)
    this.dirty.add(`${day}.${Math.floor(d.n / CHUNK)}`)
    d.n++
  }

  /** Drops the days more than HOLD_DAYS before `today`. */
  expire (today: number): void {
    for (const [day, d] of this.days) {
      if (today - day <= HOLD_DAYS) continue
      this.days.delete(day)
      this.dropped.push([day, Math.ceil(d.n / CHUNK)])
    }
  }

  /**
   * Calls `visit` for every entry: its day, controller, whether it is a wrong label, the spell's
   * local day and scored days, and a scratch user state holding its spell record (valid during
   * the call; the reference day's score word is left out).
   */
  forEach (scratch: UserState, visit: (day: number, k: number, wrong: boolean, scored: number) => void): void {
    for (const [day, d] of this.days) {
      for (let i = 0; i < d.n; i++) {
        const o = i * RECENT_ALERT_WORDS
        const flags = d.words[o]
        // A local epoch-day in 16 bits: the spell started within 90 days of the alert, so the day is the one closest to it.
        const low = d.words[o + 1]
        scratch.spellDay = low + Math.round((day - low) / 0x10000) * 0x10000
        scratch.words.set(d.words.subarray(o + 3, o + 3 + RECORD_WORDS), OFF_SPELL)
        visit(day, flags >> 1, (flags & 1) === 1, d.words[o + 2])
      }
    }
  }

  /** Drops every day (a learner that starts over): deleted at the next commit. */
  dropAll (): void {
    for (const [day, d] of this.days) this.dropped.push([day, Math.ceil(d.n / CHUNK)])
    this.days.clear()
    this.dirty.clear()
  }

  drain (batch: StoreBatch): void {
    for (const [day, chunks] of this.dropped) for (let c = 0; c < chunks; c++) batch.del(chunkKey(day, c))
    for (const key of this.dirty) {
      const [day, chunk] = key.split('.').map(Number)
      const d = this.days.get(day)
      if (d === undefined) continue
      const from = chunk * CHUNK * RECENT_ALERT_WORDS
      const to = Math.min(d.n, (chunk + 1) * CHUNK) * RECENT_ALERT_WORDS
      const v = Buffer.alloc(2 * (to - from))
      for (let i = from; i < to; i++) v.writeUInt16LE(d.words[i], 2 * (i - from))
      batch.put(chunkKey(day, chunk), v)
    }
  }

  committed (): void {
    this.dirty.clear()
    this.dropped.length = 0
  }

  /** Reads what a previous run committed (chunks in order of day and chunk). */
  load (store: KvStore): void {
    const found: Array<{ day: number, chunk: number, v: Buffer }> = []
    const cursor = store.scanSync(metaKey(PREFIX), metaKey(PREFIX + '\xff'))
    try {
      for (let rows = cursor.next(256); rows.length > 0; rows = cursor.next(256)) {
        for (const [k, v] of rows) {
          const m = /^mlearner-r(-?\d+)\.(\d+)$/.exec(k.toString('latin1'))
          if (m === null || v.length % (2 * RECENT_ALERT_WORDS) !== 0) throw new EbbError(Errors.STATE_CORRUPT, `the churn model's recent alerts: key ${k.toString('latin1')} holds ${v.length} bytes`)
          found.push({ day: Number(m[1]), chunk: Number(m[2]), v })
        }
      }
    } finally {
      cursor.close()
    }
    found.sort((a, b) => a.day - b.day || a.chunk - b.chunk)
    this.days.clear()
    for (const { day, chunk, v } of found) {
      const n = v.length / (2 * RECENT_ALERT_WORDS)
      let d = this.days.get(day)
      if (d === undefined) { d = { words: new Uint16Array(Math.max(16, (chunk + 1) * CHUNK) * RECENT_ALERT_WORDS), n: 0 }; this.days.set(day, d) }
      if (d.n !== chunk * CHUNK) throw new EbbError(Errors.STATE_CORRUPT, `the churn model's recent alerts of day ${day}: chunk ${chunk} follows ${d.n} entries`)
      if ((d.n + n) * RECENT_ALERT_WORDS > d.words.length) {
        const grown = new Uint16Array((d.n + n) * RECENT_ALERT_WORDS * 2)
        grown.set(d.words)
        d.words = grown
      }
      for (let i = 0; i < n * RECENT_ALERT_WORDS; i++) d.words[d.n * RECENT_ALERT_WORDS + i] = v.readUInt16LE(2 * i)
      d.n += n
    }
  }
}
