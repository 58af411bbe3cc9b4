import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { along, count, Progress, rate } from '../cli/progress.js'
import { EbbError, Errors } from '../errors.js'
import { decodeJsonEvent } from '../events/jsonl.js'
import { readLineBatches } from '../io/line-reader.js'
import { readSmallFile } from '../io/small-file.js'
import { MemorySink, type OutputSink } from '../io/sinks.js'
import type { Topology } from '../rules/topology.js'
import { PartitionTask, type SnapshotHook } from '../runtime/partition-task.js'
import { LineBatch } from '../runtime/record-batch.js'
import { RocksStore } from '../state/rocks-store.js'
import type { UserState } from '../state/user-state.js'
import { FEATURE_COUNT, QUESTION_DAYS, spellFeatures } from './spell.js'

export const DAY_MS = 86_400_000
/** Churn at time t = no LOGIN in (t, t + 30 days]. */
export const LABEL_HORIZON_DAYS = 30
export const LABEL_HORIZON_MS = LABEL_HORIZON_DAYS * DAY_MS

/**
 * The scored days of a replay: one row per user per local midnight at which the engine scored
 * their silence (silent day d < 30 of a spell), with the spell's features of that day, the score
 * the engine used then (with what it had learned by then), and the spell it belongs to (so that
 * alerts can be emulated offline: a model alert is the first scored day of a spell over a
 * threshold). The features come from the engine's own state through spellFeatures: the same code
 * that scores in production.
 */
export class DailySnapshots implements SnapshotHook {
  n = 0
  ts = new Float64Array(1 << 16)
  user = new Int32Array(1 << 16)
  /** the spell: local day of the LOGIN it follows */
  spell = new Int32Array(1 << 16)
  score = new Float64Array(1 << 16)
  inactive = new Float64Array(1 << 16)
  X = new Float32Array((1 << 16) * FEATURE_COUNT)
  /** users by index, and the index of each; logins per user (accepted LOGIN times) */
  readonly users: string[] = []
  readonly index = new Map<string, number>()
  readonly logins: number[][] = []
  private readonly x = new Float64Array(FEATURE_COUNT)

  /** scored days before `from` are not kept (eval's warm-up); set once the data's start is known */
  constructor (public from = Number.NEGATIVE_INFINITY) {}

  userIndex (userId: string): number {
    let u = this.index.get(userId)
    if (u === undefined) {
      u = this.users.length
      this.users.push(userId)
      this.index.set(userId, u)
      this.logins.push([])
    }
    return u
  }

  login (s: UserState, ts: number): void {
    this.logins[this.userIndex(s.userId)].push(ts)
  }

  daily (s: UserState, today: number, due: number): void {
    if (due < this.from || s.lastLoginTs < 0 || s.spellDay !== s.lastLoginDay) return
    const d = today - s.lastLoginDay - 1
    // only the day the engine scored at this midnight
    if (d < 0 || d >= QUESTION_DAYS || d !== s.spellScored - 1) return
    if (this.n === this.ts.length) this.grow()
    const i = this.n++
    this.ts[i] = due
    this.user[i] = this.userIndex(s.userId)
    this.spell[i] = s.spellDay
    this.score[i] = s.churnScore ?? Number.NaN
    this.inactive[i] = d
    spellFeatures(s, d, this.x)
    for (let k = 0; k < FEATURE_COUNT; k++) this.X[i * FEATURE_COUNT + k] = this.x[k]
  }

  /** Feature k of row i. */
  feature (i: number, k: number): number { return this.X[i * FEATURE_COUNT + k] }

  private grow (): void {
    const cap = this.ts.length * 2
    const f64 = (a: Float64Array, c: number): Float64Array<ArrayBuffer> => { const b = new Float64Array(c); b.set(a); return b }
    const i32 = (a: Int32Array, c: number): Int32Array<ArrayBuffer> => { const b = new Int32Array(c); b.set(a); return b }
    this.ts = f64(this.ts, cap)
    this.score = f64(this.score, cap)
    this.inactive = f64(this.inactive, cap)
    this.user = i32(this.user, cap)
    this.spell = i32(this.spell, cap)
    const X = new Float32Array(cap * FEATURE_COUNT); X.set(this.X); this.X = X
  }

  /** Logins sorted per user (the engine sees them in stream order, which may not be time order). */
  sortLogins (): void { for (const l of this.logins) l.sort((a, b) => a - b) }

  /** Row indices grouped by spell (user, spell day), each in time order; the spells in order of their first row. */
  spells (): Int32Array[] {
    const by = new Map<string, number[]>()
    for (let i = 0; i < this.n; i++) {
      const key = `${this.user[i]}:${this.spell[i]}`
      let l = by.get(key)
      if (l === undefined) { l = []; by.set(key, l) }
      l.push(i)
    }
    return [...by.values()].map((l) => Int32Array.from(l.sort((a, b) => this.ts[a] - this.ts[b])))
  }
}

/** Where the churn truth comes from: the events themselves, or the simulator's label file. */
export interface Labels {
  readonly source: string
  /** ground truth (a label file): every alert and row can be judged, not only those with 30 days of data after them */
  readonly truth: boolean
  /**
   * 1 when user u has churned at t. Derived: no LOGIN within (t, t + 30 d], the question the
   * model learns. From a label file: t at or after the user's churnAt (their last LOGIN), so a
   * user who comes back after a long silence is not churned, however long it was.
   */
  label: (u: number, t: number) => 0 | 1
  /** the churn points judged by `end`: user and the time of the last LOGIN before 30 silent days */
  churnEvents: (end: number) => Array<{ u: number, at: number }>
}

/** Labels derived from the accepted LOGIN times: churn at t = no LOGIN in (t, t + 30 days]. */
export function derivedLabels (snap: DailySnapshots): Labels {
  snap.sortLogins()
  const logins = snap.logins
  return {
    source: 'derived from LOGIN events (no LOGIN in the next 30 days)',
    truth: false,
    label (u, t) {
      const l = logins[u]
      // first login strictly after t
      let lo = 0
      let hi = l.length
      while (lo < hi) { const mid = (lo + hi) >>> 1; if (l[mid] <= t) lo = mid + 1; else hi = mid }
      return lo === l.length || l[lo] > t + LABEL_HORIZON_MS ? 1 : 0
    },
    churnEvents (end) {
      const out: Array<{ u: number, at: number }> = []
      for (let u = 0; u < logins.length; u++) {
        const l = logins[u]
        for (let i = 0; i < l.length; i++) {
          const next = i + 1 < l.length ? l[i + 1] : Number.POSITIVE_INFINITY
          if (next - l[i] > LABEL_HORIZON_MS && l[i] + LABEL_HORIZON_MS <= end) out.push({ u, at: l[i] })
        }
      }
      return out
    }
  }
}

/** A label file is one short line per user: 512 MiB is some millions of users. */
const LABEL_FILE_BYTES = 512 * 1024 * 1024

/**
 * Labels from a label file (`ebb simulate` writes one: `{ userId, churned, churnAt }` per line):
 * churn at t = the user churns and t is at or after churnAt (their last LOGIN). The truth is
 * known to the end of the data, so every alert can be judged. A file that names none of the
 * data's users (another population's labels, an empty file) is refused: every number judged by
 * it would be about nobody.
 */
export function fileLabels (file: string, snap: DailySnapshots): Labels {
  let text: string
  try {
    text = readSmallFile(file, LABEL_FILE_BYTES).toString('utf8')
  } catch (err) {
    throw new EbbError(Errors.INPUT_NOT_FOUND, file, (err as Error).message)
  }
  const churnAt = new Map<number, number>()
  const known = snap.users.length
  let line = 0
  let matched = 0
  for (const l of text.split('\n')) {
    line++
    if (l.trim() === '') continue
    let rec: { userId?: unknown, churned?: unknown, churnAt?: unknown }
    try { rec = JSON.parse(l) } catch { throw new EbbError(Errors.USAGE, `--labels ${file}:${line}: not JSON`) }
    if (rec === null || typeof rec.userId !== 'string') throw new EbbError(Errors.USAGE, `--labels ${file}:${line}: needs a userId`)
    const u = snap.index.get(rec.userId)
    if (u !== undefined && u < known) matched++
    if (rec.churned === true) {
      if (typeof rec.churnAt !== 'number') throw new EbbError(Errors.USAGE, `--labels ${file}:${line}: a churned user needs churnAt (epoch ms of their last LOGIN)`)
      churnAt.set(snap.userIndex(rec.userId), rec.churnAt)
    }
  }
  if (known > 0 && matched === 0) throw new EbbError(Errors.USAGE, `--labels ${file}: names none of the ${known} users of the input (${line > 1 ? 'the labels of another population?' : 'an empty file'}): give the label file written with these events`)
  return {
    source: `label file ${basename(file)}`,
    truth: true,
    label (u, t) { const c = churnAt.get(u); return c !== undefined && t >= c ? 1 : 0 },
    churnEvents (end) {
      // As with derived labels, a churn point counts once its 30 days are over by the end of the
      // data: a churner whose last LOGIN is days before the end could not have been caught yet.
      const out: Array<{ u: number, at: number }> = []
      for (const [u, at] of churnAt) if (at + LABEL_HORIZON_MS <= end) out.push({ u, at })
      return out
    }
  }
}

/**
 * The labels of `ebb train` / `ebb eval`: exactly one of `--labels F` (the simulator's file) and
 * `--derive-labels` (from the LOGIN events), else a usage error.
 */
export function labelsOption (command: string, file: string | undefined, derive: boolean | undefined): (snap: DailySnapshots) => Labels {
  if ((file === undefined) === (derive !== true)) throw new EbbError(Errors.USAGE, `ebb ${command}: give exactly one of --labels F and --derive-labels`)
  return (snap) => file !== undefined ? fileLabels(file, snap) : derivedLabels(snap)
}

export interface ReplayResult {
  snapshots: DailySnapshots
  /** the first and last event time of the file */
  start: number
  end: number
  users: number
  events: number
  /** what the partition learned by the end (null without a model) */
  learned: ReturnType<NonNullable<PartitionTask['learner']>['summary']> | null
}

/**
 * Replays an event file through the engine (RocksDB state in a temporary directory) with a
 * snapshot hook, then advances stream time to the last event so every due timer fires.
 */
export async function replayForModel (input: string, topology: Topology, opts: { label: string, sink?: OutputSink, from?: (start: number) => number }): Promise<ReplayResult> {
  const stateDir = mkdtempSync(join(tmpdir(), `ebb-${opts.label}-`))
  const sink = opts.sink ?? new AlertsOnlySink()
  const store = await RocksStore.open(stateDir)
  let snap: DailySnapshots | null = null
  let task: PartitionTask | null = null
  const progress = new Progress(opts.label)
  const file = basename(input)
  let start = Number.NaN
  try {
    const fileBytes = statSync(input).size
    for await (const { lines, lineNumbers, rejected, bytesRead } of readLineBatches(input, 4096)) {
      if (task === null || snap === null) {
        snap = new DailySnapshots()
        task = await PartitionTask.open({ topology, store, sink, snapshots: snap })
      }
      // The data's start: the first decodable event, in whichever batch it comes (a file may open
      // with thousands of broken lines).
      if (Number.isNaN(start)) {
        start = firstTs(lines)
        if (!Number.isNaN(start) && opts.from !== undefined) snap.from = opts.from(start)
      }
      await task.process(new LineBatch(lines, file, lineNumbers, rejected))
      if (task.cache.size > 500_000) await task.commit()
      const t = task
      const sn = snap
      progress.tick(() => `replay ${along(bytesRead, fileBytes, progress.elapsedMs)}: ${count(t.stats.recordsIn)} events (${rate(t.stats.recordsIn, progress.elapsedMs)}), ${count(sn.n)} scored days`)
    }
    if (task === null || snap === null) throw new EbbError(Errors.USAGE, `${input} holds no events`)
    const end = task.maxTs
    task.advanceTo(end)
    task.settleHeldAtEnd(end, 'the model commands replay into a temporary state')
    if (task.stats.eventsApplied === 0 || !Number.isFinite(end) || Number.isNaN(start)) {
      const t = task
      await t.close()
      const reasons = Object.entries(t.stats.deadLetters).filter(([, n]) => n > 0).map(([r, n]) => `${n} ${r}`).join(', ')
      throw new EbbError(Errors.USAGE, `${input} holds no events the engine could apply (${count(t.stats.recordsIn)} records${reasons === '' ? '' : `, dead letters: ${reasons}`}): nothing to learn or measure from`)
    }
    await task.close()
    return { snapshots: snap, start, end, users: task.stats.usersCreated, events: task.stats.eventsApplied, learned: task.learner === null ? null : task.learner.summary() }
  } finally {
    if (task === null) await store.close()
    rmSync(stateDir, { recursive: true, force: true })
  }
}

/** The time of the first decodable event (files are in time order; the start of the data). */
function firstTs (lines: string[]): number {
  for (const l of lines) {
    try { return decodeJsonEvent(l).ts } catch { /* a broken line: the engine dead-letters it */ }
  }
  return Number.NaN
}

/** Keeps the alerts (eval reads them), nothing else. */
export class AlertsOnlySink extends MemorySink {
  override task (): void {}
  override outcome (): void {}
  override deadLetter (): void {}
}
