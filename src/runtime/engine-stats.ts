import { EVENT_TYPES } from '../events/user-event.js'
import { DEAD_LETTER_REASONS, type DeadLetterReason } from '../errors.js'

/** Counters of one partition task; the CLI summary and Prometheus (at scrape time) read them. */
export class EngineStats {
  recordsIn = 0
  eventsApplied = 0
  /** events applied, by type */
  readonly byType = new Float64Array(EVENT_TYPES.length)
  /** decoded events that went to the dead letters (late, duplicate), by type */
  readonly rejectedByType = new Float64Array(EVENT_TYPES.length)
  readonly deadLetters = Object.fromEntries(DEAD_LETTER_REASONS.map((r) => [r, 0])) as Record<DeadLetterReason, number>
  /** whitespace-only input lines (files): not records, but every line is accounted for */
  blankLines = 0
  readonly alertsByRule = new Map<string, number>()
  usersCreated = 0
  usersErased = 0
  commits = 0

  get deadLetterTotal (): number {
    let n = 0
    for (const v of Object.values(this.deadLetters)) n += v
    return n
  }

  get alertTotal (): number {
    let n = 0
    for (const v of this.alertsByRule.values()) n += v
    return n
  }
}
