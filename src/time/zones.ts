import { Instant, LocalDate, ZoneId, type ZoneRules } from '@js-joda/core'
import '@js-joda/timezone'

/**
 * Local calendar days per time zone: the only module that knows about zones.
 *
 * A "local day" is an integer: the epoch-day (days since 1970-01-01) of the user's local date.
 * It is computed as floor((instant + offset) / 1 day) where offset is the zone's UTC offset at
 * that instant, which is exactly what LocalDate.ofInstant does; the offset comes from the IANA
 * rules through js-joda, so DST days of 23 or 25 hours are right.
 *
 * Why it is fast: js-joda costs microseconds per call, the hot path has a budget of about one.
 * Each ZoneClock caches the offsets at the start and end of the last UTC day it was asked about;
 * when they are equal no transition falls inside that UTC day (zones change offset at most once
 * a day), so every instant of the day has that offset and no js-joda call is needed. On the two
 * transition days a year the exact offset is asked of js-joda per instant.
 */
const DAY_MS = 86_400_000
const HOUR_MS = 3_600_000

export class ZoneClock {
  readonly id: string
  private readonly rules: ZoneRules
  // Two cached UTC days: the hot path asks about today (events) and tomorrow (timer arming) in turn.
  private dayA = Number.NaN
  private startA = 0
  private endA = 0
  private dayB = Number.NaN
  private startB = 0
  private endB = 0

  constructor (id: string, zone: ZoneId) {
    this.id = id
    this.rules = zone.rules()
  }

  /** UTC offset in millis at the instant. */
  offsetMs (ms: number): number {
    // The UTC day is only a cache key here, not a count of the user's days.
    const utcDay = Math.floor(ms / DAY_MS)
    if (utcDay === this.dayA) return this.startA === this.endA ? this.startA : this.exactOffset(ms)
    if (utcDay !== this.dayB) {
      // Miss: the older slot (B) takes the new day, then the slots swap so A is the newest.
      this.dayB = utcDay
      this.startB = this.exactOffset(utcDay * DAY_MS)
      this.endB = this.exactOffset(utcDay * DAY_MS + DAY_MS - 1)
    }
    const d = this.dayA; const s = this.startA; const e = this.endA
    this.dayA = this.dayB; this.startA = this.startB; this.endA = this.endB
    this.dayB = d; this.startB = s; this.endB = e
    return this.startA === this.endA ? this.startA : this.exactOffset(ms)
  }

  private exactOffset (ms: number): number {
    return this.rules.offset(Instant.ofEpochMilli(ms)).totalSeconds() * 1000
  }

  /** The local epoch-day of the instant. */
  localDay (ms: number): number {
    return Math.floor((ms + this.offsetMs(ms)) / DAY_MS)
  }

  /** The local hour of day (0–23) of the instant. */
  localHour (ms: number): number {
    const local = ms + this.offsetMs(ms)
    return Math.floor((local - Math.floor(local / DAY_MS) * DAY_MS) / HOUR_MS)
  }

  /** The first instant of the local day (local midnight, or the first valid time if a DST gap swallows it). */
  startOfDay (day: number): number {
    const guess = day * DAY_MS - this.offsetMs(day * DAY_MS)
    if (this.localDay(guess) === day && this.localDay(guess - 1) === day - 1) return guess
    return LocalDate.ofEpochDay(day).atStartOfDay(ZoneId.of(this.id)).toInstant().toEpochMilli()
  }

  /**
   * The instant of a local wall-clock hour on a local day. In a DST gap (the hour does not
   * exist that day) it is the first valid instant after the gap, as js-joda resolves it.
   */
  atLocalHour (day: number, hour: number): number {
    const local = day * DAY_MS + hour * HOUR_MS
    const guess = local - this.offsetMs(local)
    if (guess + this.offsetMs(guess) === local) return guess
    return LocalDate.ofEpochDay(day).atTime(hour, 0).atZone(ZoneId.of(this.id)).toInstant().toEpochMilli()
  }

  /** The ISO local date of an epoch-day, for messages and tests. */
  static isoDate (day: number): string {
    return LocalDate.ofEpochDay(day).toString()
  }
}

const clocks = new Map<string, ZoneClock>()
const unknown = new Set<string>()

/** The clock of an IANA zone; throws for an unknown zone (validate first with isKnownZone). */
export function zoneClock (id: string): ZoneClock {
  let c = clocks.get(id)
  if (c === undefined) {
    c = new ZoneClock(id, ZoneId.of(id))
    clocks.set(id, c)
  }
  return c
}

let regions: Set<string> | undefined

export function isKnownZone (id: string): boolean {
  if (clocks.has(id)) return true
  // IANA region ids only ("Europe/Paris", "UTC", "Etc/GMT+5"): a fixed offset ("+08:00", "Z",
  // "UTC+05:30") would silently ignore DST, and js-joda accepts those as ids too.
  if (regions === undefined) regions = new Set(ZoneId.getAvailableZoneIds())
  if (unknown.has(id) || id.length === 0 || id.length > 64 || !regions.has(id)) return false
  try {
    const z = ZoneId.of(id)
    if (z.id() !== id && id !== 'UTC') { unknown.add(id); return false }
    clocks.set(id, new ZoneClock(id, z))
    return true
  } catch {
    if (unknown.size < 10_000) unknown.add(id)
    return false
  }
}

/** Epoch-day of an ISO date string (YYYY-MM-DD), for tests and calendars. */
export function epochDayOf (isoDate: string): number {
  return LocalDate.parse(isoDate).toEpochDay()
}
