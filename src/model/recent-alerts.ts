import { EbbError, Errors } from '../errors.js'
import type { KvStore, StoreBatch } from '../state/kv-store.js'
import { metaKey } from '../state/keys.js'
import { wordsLE } from '../state/state-codec.js'
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
 * An entry is RECENT_ALERT_WORDS uint16 words: flags (bit 0 wrong, bit 1 a user the model alerts
 * early for, the rest the threshold's reference slot), the spell's local day, its scored days, a
 * 32-bit hash of the user id (an ERASE removes the user's entries: `forget`), and the first 15
 * words of the spell record (the 16th, the reference day's score, is recomputed). Bounded: a day
 * is dropped HOLD_DAYS after it. Stored by day in chunks of CHUNK entries
 * (`mlearner-r<day>.<chunk>`): a commit rewrites only the chunks that grew, not a whole day.
 */
export const RECENT_ALERT_WORDS = 20
const RECORD_WORDS = 15
const HEAD_WORDS = RECENT_ALERT_WORDS - RECORD_WORDS
const CHUNK = 256
/** days an alert is kept: with the veto's memory (decay 0.98 a day) an alert 90 days old weighs 0.19 */
export const HOLD_DAYS = 90

const PREFIX = 'learner-r'
const chunkKey = (day: number, chunk: number): Buffer => metaKey(`${PREFIX}${day}.${chunk}`)
/** dirty chunks as numbers: a day's chunk count stays far below this */
const CHUNKS_PER_DAY = 65_536

/** FNV-1a over the id's UTF-16 code units: which entries an ERASE removes (a collision removes a stranger's too, which only thins the statistics). */
export function userHash32 (userId: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < userId.length; i++) { h ^= userId.charCodeAt(i); h = Math.imul(h, 0x01000193) }
  return h >>> 0
}

interface Day {
  words: Uint16Array
  n: number
  /** chunk keys of this day in the store (as of the last drain) */
  stored: number
}

export interface RecentAlert {
  day: number
  slot: number
  wrong: boolean
  /** a user the model alerts early for (MIN_EVIDENCE_DAYS of their life): a veto can hold back only their alerts */
  known: boolean
  /** days of the silence scored (a wrong label: up to its LOGIN) */
  scored: number
}

export class RecentReferenceAlerts {
  private readonly days = new Map<number, Day>()
  /** day × CHUNKS_PER_DAY + chunk of the chunks to write at the next commit */
  private readonly dirty = new Set<number>()
  /** days to write whole (an ERASE removed entries): every chunk, and the keys past the new end deleted */
  private readonly rewrite = new Set<number>()
  /** [day, chunk keys] dropped since the last commit */
  private readonly dropped: Array<[number, number]> = []
  private readonly entry: RecentAlert = { day: 0, slot: 0, wrong: false, known: false, scored: 0 }

  get size (): number { let n = 0; for (const d of this.days.values()) n += d.n; return n }

  /** Whether anything is filed under `day` (a wrong label whose day has no alert was raised before these were kept). */
  has (day: number): boolean { return (this.days.get(day)?.n ?? 0) > 0 }

  /** Files the user's silence under the reference's alert of UTC day `day` (`wrong`: a LOGIN came first). */
  add (day: number, slot: number, wrong: boolean, known: boolean, s: UserState): void {
    let d = this.days.get(day)
    if (d === undefined) { d = { words: new Uint16Array(16 * RECENT_ALERT_WORDS), n: 0, stored: 0 }; this.days.set(day, d) }
    if ((d.n + 1) * RECENT_ALERT_WORDS > d.words.length) {
      const grown = new Uint16Array(d.words.length * 2)
      grown.set(d.words)
      d.words = grown
    }
    const o = d.n * RECENT_ALERT_WORDS
    const h = userHash32(s.userId)
    d.words[o] = (slot << 2) | (known ? 2 : 0) | (wrong ? 1 : 0)
    d.words[o + 1] = s.spellDay & 0xffff
    d.words[o + 2] = Math.min(0xffff, s.spellScored)
    d.words[o + 3] = h & 0xffff
    d.words[o + 4] = h >>> 16
    d.words.set(s.words.subarray(OFF_SPELL, OFF_SPELL + RECORD_WORDS), o + HEAD_WORDS)
    this.dirty.add(day * CHUNKS_PER_DAY + Math.floor(d.n / CHUNK))
    d.n++
  }

  /** An ERASE: the user's entries go, and the days that held them are rewritten at the next commit. */
  forget (userId: string): void {
    const h = userHash32(userId)
    const lo = h & 0xffff
    const hi = h >>> 16
    for (const [day, d] of this.days) {
      let kept = 0
      for (let i = 0; i < d.n; i++) {
        const o = i * RECENT_ALERT_WORDS
        if (d.words[o + 3] === lo && d.words[o + 4] === hi) continue
        if (kept !== i) d.words.copyWithin(kept * RECENT_ALERT_WORDS, o, o + RECENT_ALERT_WORDS)
        kept++
      }
      if (kept === d.n) continue
      d.words.fill(0, kept * RECENT_ALERT_WORDS, d.n * RECENT_ALERT_WORDS)
      d.n = kept
      this.rewrite.add(day)
    }
  }

  /** Drops the days more than HOLD_DAYS before `today`. */
  expire (today: number): void {
    for (const [day, d] of this.days) {
      if (today - day <= HOLD_DAYS) continue
      this.days.delete(day)
      this.rewrite.delete(day)
      this.dropped.push([day, Math.max(d.stored, Math.ceil(d.n / CHUNK))])
    }
  }

  /** Drops every day (a learner that starts over, or a topology with no earlierThan threshold): deleted at the next commit. */
  dropAll (): void {
    for (const [day, d] of this.days) this.dropped.push([day, Math.max(d.stored, Math.ceil(d.n / CHUNK))])
    this.days.clear()
    this.dirty.clear()
    this.rewrite.clear()
  }

  /**
   * Calls `visit` for every entry, days in order: the entry (a reused object) and a scratch user
   * state holding its spell record and day (valid during the call; the reference day's score
   * word is left out).
   */
  forEach (scratch: UserState, visit: (e: RecentAlert) => void): void {
    const e = this.entry
    for (const day of [...this.days.keys()].sort((a, b) => a - b)) {
      const d = this.days.get(day) as Day
      for (let i = 0; i < d.n; i++) {
        const o = i * RECENT_ALERT_WORDS
        const flags = d.words[o]
        // A local epoch-day in 16 bits: the spell started within weeks of the alert, so the day is the one closest to it.
        const low = d.words[o + 1]
        scratch.spellDay = low + Math.round((day - low) / 0x10000) * 0x10000
        scratch.words.set(d.words.subarray(o + HEAD_WORDS, o + RECENT_ALERT_WORDS), OFF_SPELL)
        e.day = day
        e.slot = flags >> 2
        e.wrong = (flags & 1) === 1
        e.known = (flags & 2) === 2
        e.scored = d.words[o + 2]
        visit(e)
      }
    }
  }

  drain (batch: StoreBatch): void {
    for (const [day, chunks] of this.dropped) for (let c = 0; c < chunks; c++) batch.del(chunkKey(day, c))
    for (const day of this.rewrite) {
      const d = this.days.get(day) as Day
      const chunks = Math.ceil(d.n / CHUNK)
      for (let c = 0; c < chunks; c++) this.put(batch, day, d, c)
      for (let c = chunks; c < d.stored; c++) batch.del(chunkKey(day, c))
      d.stored = chunks
    }
    for (const key of this.dirty) {
      const day = Math.floor(key / CHUNKS_PER_DAY)
      const d = this.days.get(day)
      if (d === undefined || this.rewrite.has(day)) continue
      const chunk = key - day * CHUNKS_PER_DAY
      this.put(batch, day, d, chunk)
      if (chunk + 1 > d.stored) d.stored = chunk + 1
    }
  }

  private put (batch: StoreBatch, day: number, d: Day, chunk: number): void {
    const from = chunk * CHUNK * RECENT_ALERT_WORDS
    const to = Math.min(d.n, (chunk + 1) * CHUNK) * RECENT_ALERT_WORDS
    batch.put(chunkKey(day, chunk), wordsLE(d.words, from, to - from))
  }

  committed (): void {
    this.dirty.clear()
    this.rewrite.clear()
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
      if (d === undefined) { d = { words: new Uint16Array(Math.max(16, (chunk + 1) * CHUNK) * RECENT_ALERT_WORDS), n: 0, stored: 0 }; this.days.set(day, d) }
      if (d.n !== chunk * CHUNK) throw new EbbError(Errors.STATE_CORRUPT, `the churn model's recent alerts of day ${day}: chunk ${chunk} follows ${d.n} entries`)
      if ((d.n + n) * RECENT_ALERT_WORDS > d.words.length) {
        const grown = new Uint16Array((d.n + n) * RECENT_ALERT_WORDS * 2)
        grown.set(d.words)
        d.words = grown
      }
      for (let i = 0; i < n * RECENT_ALERT_WORDS; i++) d.words[d.n * RECENT_ALERT_WORDS + i] = v.readUInt16LE(2 * i)
      d.n += n
      d.stored = chunk + 1
    }
  }
}
