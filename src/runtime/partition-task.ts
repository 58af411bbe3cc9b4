import { createHash } from 'node:crypto'
import { encodeAvroEvent } from '../events/avro.js'
import { decodeRecord } from '../events/decode.js'
import { encodeJsonEvent } from '../events/jsonl.js'
import { DEAD_LETTER_PREFIX } from '../io/line-reader.js'
import { EventType, eventTypeIndex, type UserEvent } from '../events/user-event.js'
import { EbbError, Errors, isEbbError } from '../errors.js'
import type { DeadLetterSource } from '../io/records.js'
import type { OutputSink } from '../io/sinks.js'
import { InterventionStage } from '../intervention/intervention-stage.js'
import type { RecallKpis } from '../intervention/kpis.js'
import { ChurnLearner, sigmoid, Z_SCALE } from '../model/learner.js'
import { clearSpell, MIN_EVIDENCE_DAYS, QUESTION_DAYS, setSpellRefZ, spellEvidenceDays } from '../model/spell.js'
import { type AlertHandler, RuleEvaluator } from '../rules/evaluator.js'
import { RuleSlots } from '../rules/slots.js'
import type { Topology } from '../rules/topology.js'
import { applyEvent } from '../signals/apply.js'
import type { KvStore, StoreBatch } from '../state/kv-store.js'
import { metaKey } from '../state/keys.js'
import { hex32 } from '../state/hash.js'
import { StateCache } from '../state/state-cache.js'
import { eventIdHash, NEVER_DAY, SPELL_MAX_NONE, UserState } from '../state/user-state.js'
import { type ZoneClock, zoneClock } from '../time/zones.js'
import { EngineStats } from './engine-stats.js'
import type { RecordBatch } from './record-batch.js'
import { type TimerOwner, TimerService } from './timer-service.js'

export interface PartitionTaskOptions {
  topology: Topology
  store: KvStore
  sink: OutputSink
  /** users kept in memory between commits (default 200,000) */
  cacheCapacity?: number
  /** benchmark hook: receives each event's decode + processing time in nanoseconds */
  latency?: LatencyRecorder
  observer?: EngineObserver
  /** `ebb train` / `ebb eval`: sees every user at each local-midnight timer, and every accepted LOGIN */
  snapshots?: SnapshotHook
  /** recall KPIs to count into (shared by the partitions of one replay); a new one by default */
  kpis?: RecallKpis
  /** how errors name the store (its directory) */
  stateName?: string
  /** the largest raw record a dead letter carries whole (default 512 KiB: a Kafka message holds 1 MB) */
  maxDeadLetterBytes?: number
}

/** Daily snapshots of users for training and evaluating the churn model (not used in production). */
export interface SnapshotHook {
  /** at a user's local-midnight timer, after the score and the rules of the new day */
  daily (s: UserState, today: number, due: number): void
  login (s: UserState, ts: number): void
}

export interface LatencyRecorder { recordValue (ns: number): void }

/** Operational hooks (Prometheus): a sample of event processing times, and every commit's duration. */
export interface EngineObserver {
  eventSeconds (s: number): void
  commitSeconds (s: number): void
  /** Kafka mode: one commit transaction (outputs, changelog, offsets), from begin to commit */
  transactionSeconds? (s: number): void
  /** Kafka mode: one producer request's round trip, by API (Produce, EndTxn, …) */
  kafkaRequestSeconds? (api: string, s: number): void
}

/** 1 in 64 events is timed for the observer: two clock reads per 64 events on the hot path. */
const SAMPLE_MASK = 63

const META_TIME = metaKey('time')
/** the event waiting for the next one to confirm its time (bounded event time) */
const META_HELD = metaKey('held')
/** hashed ids of recently erased users, with the time of their ERASE */
const META_ERASED = metaKey('erased')
/** Base64 makes 4 bytes of 3, and a dead letter has other fields: 512 KiB of raw fit a 1 MB message. */
export const DEFAULT_MAX_DEAD_LETTER_BYTES = 512 * 1024
const DAY_MS = 86_400_000

/**
 * One partition's processor (Kafka Streams' StreamTask): owns the partition's state store, its
 * write-back cache, its timers and its stream time. `process` takes a batch of raw records and
 * runs the record's path for each, in order:
 *
 *   decode → stream time (+ due timers) → late? → state (dedup) → apply → rules → timer re-arm
 *
 * The only await of a batch is the multi-get of its cache misses, before the loop; the loop
 * itself is synchronous (no per-event promise, closure or JSON on the Avro path). `commit`
 * flushes outputs, then state, timers and stream time in one atomic store write.
 */
export class PartitionTask {
  readonly stats = new EngineStats()
  readonly topology: Topology
  readonly cache: StateCache
  readonly timers: TimerService
  private readonly store: KvStore
  private readonly sink: OutputSink
  private readonly rules: RuleEvaluator
  /** alert → recall task, LOGIN → outcome (null when the topology has no `intervention:`) */
  readonly intervention: InterventionStage | null
  private readonly defaultZone: ZoneClock
  /** largest event time seen */
  maxTs: number
  /** stream time: maxTs − allowed lateness, or later when advanced explicitly */
  watermark: number
  private readonly latency: LatencyRecorder | undefined
  private readonly observer: EngineObserver | undefined
  private readonly snapshots: SnapshotHook | undefined
  private readonly maxDeadLetterBytes: number
  /** what this partition learns about its population (null when the topology has no model) */
  readonly learner: ChurnLearner | null
  private decodeNs = new Float64Array(0)
  private decoded: Array<UserEvent | null> = []
  /** the state of each record's user when the batch was decoded (one Map lookup per event) */
  private states: Array<UserState | undefined> = []
  private failures: Array<EbbError | null> = []
  /** The timer service asks the user's state which due counts, and calls back when one fires. */
  private readonly timerOwner: TimerOwner = {
    currentDue: (userId) => this.cache.getOrLoadSync(userId)?.timerDue ?? 0,
    onTimer: (userId, due) => { this.fireUserTimer(userId, due) },
    prefetch: (userIds) => { this.cache.loadMissingSync(userIds) }
  }

  /** which bit of a user's rule state each rule owns (kept by rule id across topology changes) */
  readonly ruleSlots: RuleSlots
  /**
   * An event dated more than `time.future.maxStep` after stream time: it waits here, not applied,
   * until the partition's next event says whether the stream really moved on (docs/time.md).
   */
  private held: HeldEvent | null = null
  private heldStored = false
  /**
   * Erased users (by a 64-bit hash of the id, never the id) → the time of their ERASE: an event
   * of theirs dated before it that arrives later is refused (`erased`). Entries leave once stream
   * time is past them by more than the grace, when such an event would be `late` anyway.
   */
  private readonly erasedAt = new Map<string, number>()
  private erasedDirty = false
  /** users erased since the store last dropped erased data from its files */
  erasuresToPurge = 0

  private constructor (opts: PartitionTaskOptions, maxTs: number, watermark: number, timerSeq: number, slots: RuleSlots) {
    this.ruleSlots = slots
    this.topology = opts.topology
    this.store = opts.store
    this.sink = opts.sink
    this.cache = new StateCache(opts.store, opts.cacheCapacity ?? 200_000)
    this.timers = new TimerService(opts.store, watermark, timerSeq)
    const iv = opts.topology.intervention
    this.intervention = iv === null ? null : new InterventionStage(iv, opts.topology.rules, opts.topology.params, opts.sink, opts.kpis, slots)
    const model = opts.topology.model
    this.learner = model === null ? null : new ChurnLearner(model, opts.topology.modelThresholds.map((t) => ({ ...t, refSlot: t.refIndex < 0 ? -1 : slots.slotOf[t.refIndex] })))
    // The stages after the rules, in order: the recall stage fills the alert's decision (and
    // emits its task), then the alert leaves, so every alert says what was done about it.
    const intervention = this.intervention
    const sink = opts.sink
    const afterRules: AlertHandler = intervention === null
      ? (_s, alert) => { sink.alert(alert) }
      : (s, alert, rule, today, at) => { intervention.decide(s, alert, rule, today, at); sink.alert(alert) }
    this.rules = new RuleEvaluator(opts.topology, afterRules, this.stats.alertsByRule, this.learner, slots)
    this.defaultZone = zoneClock(opts.topology.defaultTimezone)
    this.maxTs = maxTs
    this.watermark = watermark
    this.latency = opts.latency
    this.observer = opts.observer
    this.snapshots = opts.snapshots
    this.maxDeadLetterBytes = opts.maxDeadLetterBytes ?? DEFAULT_MAX_DEAD_LETTER_BYTES
  }

  /** Opens the task on its store, resuming the stream time a previous run committed. */
  static async open (opts: PartitionTaskOptions): Promise<PartitionTask> {
    const [meta] = await opts.store.getMany([META_TIME])
    let maxTs = Number.NEGATIVE_INFINITY
    let watermark = Number.NEGATIVE_INFINITY
    let timerSeq = 0
    if (meta !== undefined) {
      maxTs = meta.readDoubleBE(0)
      watermark = meta.readDoubleBE(8)
      timerSeq = meta.readDoubleBE(16)
    }
    const slots = await RuleSlots.load(opts.store, opts.topology, opts.stateName ?? 'the partition\'s state store')
    const task = new PartitionTask(opts, maxTs, watermark, timerSeq, slots)
    if (task.learner !== null) await task.learner.load(opts.store)
    const [held, erased] = await opts.store.getMany([META_HELD, META_ERASED])
    if (held !== undefined) {
      task.heldStored = true
      try {
        task.held = HeldEvent.decode(held)
      } catch (err) {
        // Held by an older version under rules it met then (a targetId over 256 characters was
        // valid before 12-07): refused now, it goes to the dead letters like any record these
        // rules refuse, instead of stopping the partition at every open.
        task.deadLetter(HeldEvent.stored(held), 0, isEbbError(err) ? err : new EbbError(Errors.EVENT_UNDECODABLE, (err as Error).message))
      }
    }
    if (erased !== undefined) {
      for (let o = 0; o + 16 <= erased.length; o += 16) task.erasedAt.set(erased.toString('hex', o, o + 8), erased.readDoubleBE(o + 8))
    }
    return task
  }

  /** Runs a batch of raw records through the engine. */
  async process (batch: RecordBatch): Promise<void> {
    const n = batch.length
    const decoded = this.decoded
    const failures = this.failures
    decoded.length = n
    failures.length = n
    // Only users not in the cache are collected: the common case (a hit) costs one Map lookup.
    const misses: string[] = []
    const cache = this.cache
    const states = this.states
    states.length = n
    const latency = this.latency
    const observer = this.observer
    if (latency !== undefined && this.decodeNs.length < n) this.decodeNs = new Float64Array(n)
    for (let i = 0; i < n; i++) {
      const t0 = latency !== undefined ? performance.now() : 0
      let e: UserEvent | null = null
      let fail: EbbError | null = null
      try {
        const rejected = batch.rejection === undefined ? null : batch.rejection(i)
        if (rejected !== null) throw typeof rejected === 'string' ? new EbbError(Errors.EVENT_UNDECODABLE, rejected) : rejected
        e = decodeRecord(batch.format, batch.value(i))
        if (batch.key !== undefined) {
          const k = batch.key(i)
          if (k !== null && !keyIsUserId(k, e.userId)) { e = null; throw new EbbError(Errors.EVENT_INVALID, KEY_NOT_USER) }
        }
      } catch (err) {
        fail = isEbbError(err) ? err : new EbbError(Errors.EVENT_UNDECODABLE, (err as Error).message)
      }
      decoded[i] = e
      failures[i] = fail
      if (e !== null) {
        const st = cache.get(e.userId)
        states[i] = st
        if (st === undefined && !cache.isKnownAbsent(e.userId)) misses.push(e.userId)
      }
      if (latency !== undefined) this.decodeNs[i] = (performance.now() - t0) * 1e6
    }
    if (misses.length > 0) await cache.loadMissing(misses)
    for (let i = 0; i < n; i++) {
      this.stats.recordsIn++
      const e = decoded[i]
      if (e === null) {
        this.deadLetter(batch, i, failures[i] as EbbError)
        continue
      }
      // Bounded event time: an event from the future never moves stream time (docs/time.md).
      if (e.type !== 'ERASE') {
        if (batch.recordTime !== undefined && e.ts > batch.recordTime(i) + this.topology.maxAheadOfRecordMs) {
          this.deadLetter(batch, i, new EbbError(Errors.EVENT_FUTURE, new Date(e.ts).toISOString(), `its Kafka record's timestamp ${new Date(batch.recordTime(i)).toISOString()}`, 'time.future.maxAheadOfRecord'))
          decoded[i] = null
          states[i] = undefined
          continue
        }
        // Only an event of the stream's present says anything about the held one: an older one
        // (out of order beyond the allowed lateness) neither confirms nor refutes it.
        if (this.held !== null && e.ts >= this.maxTs - this.topology.allowedLatenessMs) this.resolveHeld(e.ts)
        // The partition's first event has no present to be compared with: it waits for the
        // second to confirm it like a jump does (docs/time.md, "The first event").
        if (this.maxTs === Number.NEGATIVE_INFINITY ? this.held === null : e.ts > this.maxTs + this.topology.maxStepMs) {
          this.held = HeldEvent.of(e, batch, i)
          decoded[i] = null
          states[i] = undefined
          continue
        }
      }
      const t0 = latency !== undefined ? performance.now() : 0
      const sampled = observer !== undefined && (this.stats.recordsIn & SAMPLE_MASK) === 0
      const t1 = sampled ? performance.now() : 0
      try {
        this.processEvent(e, batch, i, states[i])
      } catch (err) {
        // Per-phase policy (Kafka Streams' processing handler): a failing record goes to the
        // dead letters with its reason; a store failure is not the record's fault and stops the task.
        if (isEbbError(err) && (err.code === Errors.STORE_IO.code || err.code === Errors.STATE_CORRUPT.code)) throw err
        this.deadLetter(batch, i, new EbbError(Errors.EVENT_PROCESSING, (err as Error).message))
      }
      if (sampled) (observer as EngineObserver).eventSeconds((performance.now() - t1) / 1000)
      decoded[i] = null
      states[i] = undefined
      if (latency !== undefined) latency.recordValue(Math.round(this.decodeNs[i] + (performance.now() - t0) * 1e6))
    }
  }

  private processEvent (e: UserEvent, batch: RecordBatch, i: number, known: UserState | undefined): void {
    const ts = e.ts
    const type = eventTypeIndex(e.type) as EventType
    // The state seen at decode time, unless the user was erased since (or was not cached then).
    let s = known !== undefined && !known.erased ? known : this.cache.getOrLoadSync(e.userId)
    if (type === EventType.ERASE) {
      this.erase(e, s)
      return
    }
    if (ts > this.maxTs) {
      this.maxTs = ts
      const wm = ts - this.topology.allowedLatenessMs
      if (wm > this.watermark) this.advanceWatermark(wm)
    }
    if (this.erasedAt.size > 0) {
      const at = this.erasedAt.get(userIdHash(e.userId))
      if (at !== undefined && ts < at) {
        this.stats.rejectedByType[type]++
        this.deadLetter(batch, i, new EbbError(Errors.EVENT_ERASED, new Date(ts).toISOString(), new Date(at).toISOString()))
        return
      }
    }
    if (ts < this.watermark - this.topology.graceMs) {
      this.stats.rejectedByType[type]++
      this.deadLetter(batch, i, new EbbError(Errors.EVENT_LATE, new Date(ts).toISOString(), new Date(this.watermark - this.topology.graceMs).toISOString()))
      return
    }
    if (s === undefined) {
      s = new UserState(e.userId, e.tz !== null ? zoneClock(e.tz) : this.defaultZone)
      this.cache.put(s)
      this.stats.usersCreated++
    }
    // Before the first change to the state, `seen` included (it records the event's id): a
    // pipelined commit that has not encoded this user yet does so now (StateCache.deferDirty).
    // A duplicate is then written once more, unchanged; duplicates are rare.
    this.cache.markDirty(s)
    eventIdHash.of(e.eventId)
    if (s.seen(eventIdHash.h1, eventIdHash.h2)) {
      this.stats.rejectedByType[type]++
      this.deadLetter(batch, i, new EbbError(Errors.EVENT_DUPLICATE))
      return
    }
    const zone = s.zone
    if (e.tz !== null) s.setZone(e.tz)
    const day = s.zone.localDay(ts)
    // A LOGIN on a later day than the silence the model is watching answers its question.
    if (type === EventType.LOGIN && this.learner !== null && s.spellDay !== NEVER_DAY && day > s.spellDay) this.endSpell(s, ts)
    applyEvent(s, e, type, day)
    if (type === EventType.LOGIN) {
      if (this.snapshots !== undefined) this.snapshots.login(s, ts)
      if (this.intervention !== null) this.intervention.onLogin(s, ts)
      this.rules.closeEpisodeOnLogin(s, ts)
    } else if (e.taskId !== null && this.intervention !== null && (type === EventType.MESSAGE_DELIVERED || type === EventType.MESSAGE_OPENED)) {
      this.intervention.onMessage(s, e.taskId, type === EventType.MESSAGE_OPENED)
    }
    const mask = this.topology.rulesByEventType[type]
    if (mask !== 0) this.rules.evaluate(s, mask, s.headDay, ts)
    // A user has one timer, at the next local midnight after their newest day. An armed timer
    // is never later than that, so it is replaced only when the zone changed.
    if (s.timerDue === 0 || s.zone !== zone) this.armTimer(s, s.zone.startOfDay(s.headDay + 1))
    this.stats.byType[type]++
    this.stats.eventsApplied++
  }

  /**
   * Right to be forgotten: honoured however late the request arrives and whatever it carries
   * besides its userId (it is not a behaviour signal: it neither moves stream time nor is late).
   * The state goes (a tombstone in the store and the changelog), the timers forget the id, the
   * API's recent records drop it, and the store rewrites its files at the commit so that no
   * file holds the user (docs/erase.md). A small marker (a hash of the id and a time) refuses
   * the user's events dated before the ERASE that arrive after it.
   */
  private erase (e: UserEvent, s: UserState | undefined): void {
    const present = this.maxTs
    const at = Number.isFinite(e.ts) && !(e.ts > present + this.topology.maxStepMs) ? Math.max(e.ts, present) : present
    if (Number.isFinite(at)) {
      const key = userIdHash(e.userId)
      const prev = this.erasedAt.get(key)
      if (prev === undefined || at > prev) { this.erasedAt.set(key, at); this.erasedDirty = true }
    }
    if (s !== undefined) {
      this.cache.erase(s.userId)
      this.timers.forget(s.userId)
      this.erasuresToPurge++
    }
    // the learner's copies of the user's spell records (the veto's recent alerts)
    this.learner?.forget(e.userId)
    if (this.held !== null && this.held.event.userId === e.userId) {
      // the waiting event is the erased user's: it is refused, not applied after the ERASE
      const h = this.held
      this.held = null
      this.stats.rejectedByType[eventTypeIndex(h.event.type)]++
      this.deadLetter(h, 0, new EbbError(Errors.EVENT_ERASED, new Date(h.event.ts).toISOString(), 'the ERASE that followed it'))
    }
    this.sink.erased?.(e.userId)
    this.stats.usersErased++
    this.stats.byType[EventType.ERASE]++
    this.stats.eventsApplied++
  }

  /**
   * The held event meets the partition's next event (dated `nextTs`): if that one is not much
   * older (within maxStep of it), the stream did move on and the held event is applied; if it
   * is, the held event was from the future and goes to the dead letters (`future`).
   */
  private resolveHeld (nextTs: number): void {
    const h = this.held as HeldEvent
    this.held = null
    if (nextTs >= h.event.ts - this.topology.maxStepMs) this.applyHeld(h)
    else this.refuseHeld(h, new EbbError(Errors.EVENT_FUTURE, new Date(h.event.ts).toISOString(), `stream time ${Number.isFinite(this.maxTs) ? new Date(this.maxTs).toISOString() : '(none)'} (the next event is dated ${new Date(nextTs).toISOString()})`, 'time.future.maxStep'))
  }

  /**
   * A present given from outside the partition's own events (replay --until, another partition's
   * stream time) within maxStep of the held event confirms it: it is applied. True if it was.
   */
  private confirmHeld (present: number): boolean {
    const h = this.held
    if (h === null || h.event.ts > present + this.topology.maxStepMs) return false
    this.held = null
    this.applyHeld(h)
    return true
  }

  private applyHeld (h: HeldEvent): void {
    try {
      this.processEvent(h.event, h, 0, undefined)
    } catch (err) {
      if (isEbbError(err) && (err.code === Errors.STORE_IO.code || err.code === Errors.STATE_CORRUPT.code)) throw err
      this.deadLetter(h, 0, new EbbError(Errors.EVENT_PROCESSING, (err as Error).message))
    }
  }

  private refuseHeld (h: HeldEvent, why: EbbError): void {
    this.stats.rejectedByType[eventTypeIndex(h.event.type)]++
    this.deadLetter(h, 0, why)
  }

  /**
   * The input ended with an event still waiting for a later one to confirm its time, and nothing
   * will keep it waiting (a replay into a temporary state, which is deleted). If `present` (the
   * largest event time any partition applied) is within maxStep of it, that confirms it and it is
   * applied; otherwise it goes to the dead letters (`future`, EBB_EVENT_UNCONFIRMED, `what` to do),
   * rather than away with the state.
   */
  settleHeldAtEnd (present: number, what: string): void {
    // Another partition's stream time confirms it as an idle partition's is in Kafka mode
    // (advanceTo), without moving this one's: the time was real, the event is applied.
    const h = this.held
    if (h === null || this.confirmHeld(present)) return
    this.held = null
    const now = Number.isFinite(present) ? `stream time was ${new Date(present).toISOString()}` : 'no event was applied'
    this.refuseHeld(h, new EbbError(Errors.EVENT_UNCONFIRMED, new Date(h.event.ts).toISOString(), now, what))
  }

  /** The event waiting for confirmation of its time, if any (its time, for the summary and tests). */
  get heldEventTime (): number | null { return this.held === null ? null : this.held.event.ts }

  private armTimer (s: UserState, due: number): void {
    this.timers.set(s.userId, due)
    s.timerDue = due
  }

  private advanceWatermark (wm: number): void {
    this.watermark = wm
    const learner = this.learner
    if (learner !== null) {
      // The learner moves on at each UTC midnight of stream time, between the timers due
      // before it and those due after: a fixed point in event time, whatever the batches.
      const day = Math.floor(wm / DAY_MS)
      if (Number.isNaN(learner.day)) learner.roll(day)
      while (learner.day < day) {
        const boundary = (learner.day + 1) * DAY_MS
        if (boundary - 1 >= this.timers.nextDue) this.timers.fire(boundary - 1, this.timerOwner)
        learner.roll(learner.day + 1)
      }
    }
    if (wm >= this.timers.nextDue) this.timers.fire(wm, this.timerOwner)
  }

  /**
   * The model's daily question for a user at their local midnight (starting local day `today`): will they
   * log in within 30 days? A new silence freezes its spell record; each of its first 30 days is
   * scored; and each scored day 30 days old with no LOGIN since gets its label, churned.
   */
  private scoreSpell (s: UserState, today: number, learner: ChurnLearner): void {
    if (s.lastLoginTs < 0 || s.lastLoginDay >= today) return // never logged in, or already today
    const d = today - s.lastLoginDay - 1
    if (s.spellDay !== s.lastLoginDay) {
      learner.freeze(s, this.topology.params)
      s.spellFirst = d
      s.spellScored = d
      s.spellResolved = d
      s.spellMax = SPELL_MAX_NONE
    }
    const learns = spellEvidenceDays(s) >= MIN_EVIDENCE_DAYS
    while (s.spellResolved < s.spellScored && s.spellResolved + QUESTION_DAYS <= d) {
      const k = s.spellResolved
      if (learns) learner.label(s, k, s.zone.startOfDay(s.spellDay + 1 + k), 1)
      learner.churnedDay(s, k)
      s.spellResolved = k + 1
    }
    if (d < QUESTION_DAYS && d >= s.spellScored) {
      const z = learner.z(s, d)
      const zQ = Math.round(z * Z_SCALE)
      const p = sigmoid(z)
      s.churnScore = p
      learner.scoredDay(s.spellMax, zQ, p)
      if (d === learner.refRecordDay) setSpellRefZ(s, zQ)
      learner.refScored(s, d)
      if (zQ > s.spellMax) s.spellMax = zQ
      s.spellScored = d + 1
    }
  }

  /**
   * A LOGIN (at `ts`) ends the user's silence: every scored day of it still waiting for its label
   * was followed by a LOGIN within 30 days — stayed. (Days scored after `ts`, known only because
   * the LOGIN arrived late, are dropped: they asked a question this LOGIN had already answered.)
   * The model's rules start over: the next silence is a new question.
   */
  private endSpell (s: UserState, ts: number): void {
    const learner = this.learner as ChurnLearner
    const known = spellEvidenceDays(s) >= MIN_EVIDENCE_DAYS
    if (known) {
      for (let k = s.spellResolved; k < s.spellScored; k++) {
        const at = s.zone.startOfDay(s.spellDay + 1 + k)
        if (at < ts) learner.label(s, k, at, 0)
      }
    }
    learner.silenceEnded(s, known)
    clearSpell(s)
    s.spellFirst = s.spellScored = s.spellResolved = 0
    s.spellMax = SPELL_MAX_NONE
    s.churnScore = null
    s.ruleCond &= ~this.rules.modelRules
  }

  /**
   * A user's local-midnight timer: every enabled rule is evaluated for the new day (this is how
   * inactive_7d fires for a user who sends nothing), then the next midnight is armed while the
   * user is still within the topology's horizon of their last activity.
   */
  private fireUserTimer (userId: string, due: number): void {
    const s = this.cache.getOrLoadSync(userId)
    if (s === undefined || s.timerDue !== due) return // the service checked; kept as the invariant
    this.cache.markDirty(s)
    s.timerDue = 0
    let today = s.zone.localDay(due)
    if (today < s.headDay) today = s.headDay
    // The churn score is a daily quantity (docs/churn-model.md): the score of silent day d of the
    // user's spell, at their local midnight, before the rules of the new day.
    const learner = this.learner
    if (learner !== null) this.scoreSpell(s, today, learner)
    this.rules.evaluate(s, this.topology.timerRules, today, due)
    if (this.intervention !== null) this.intervention.onTimer(s, due)
    if (this.snapshots !== undefined) this.snapshots.daily(s, today, due)
    // Watched while within the topology's horizon of their last activity, and while a scored
    // day of their silence still waits for its label (up to 30 days after it).
    const waiting = learner !== null && s.spellDay !== NEVER_DAY && s.spellResolved < s.spellScored
    if (today - s.headDay < this.topology.timerHorizonDays || waiting) this.armTimer(s, s.zone.startOfDay(today + 1))
  }

  /**
   * Moves stream time forward without an event (replay --until, idle partitions): fires every
   * timer due by then.
   */
  advanceTo (streamTime: number): void {
    this.confirmHeld(streamTime)
    if (streamTime <= this.watermark) return
    const maxTs = streamTime + this.topology.allowedLatenessMs
    if (maxTs > this.maxTs) this.maxTs = maxTs
    this.advanceWatermark(streamTime)
  }

  /**
   * A record to the dead letters, with its bytes. Nothing about one record may stop a partition:
   * bytes beyond `maxDeadLetterBytes` (what the output can carry: a Kafka message has a size
   * limit) are cut to their first DEAD_LETTER_PREFIX, with the whole length and its SHA-256.
   */
  private deadLetter (batch: RecordBatch, i: number, err: EbbError): void {
    const reason = err.deadLetter ?? 'processing'
    this.stats.deadLetters[reason]++
    const v = batch.raw === undefined ? batch.value(i) : batch.raw(i)
    const { raw, whole } = deadLetterBytes(typeof v === 'string' ? Buffer.from(v, 'utf8') : v, batch.rawWhole === undefined ? undefined : batch.rawWhole(i), this.maxDeadLetterBytes)
    this.sink.deadLetter({
      reason,
      code: err.code,
      detail: err.message,
      raw: raw.toString('base64'),
      source: batch.source(i),
      rawBytes: whole?.bytes ?? raw.length,
      rawSha256: whole?.sha256 ?? null
    })
  }

  /** Commit point: outputs first, then state + timers + stream time in one atomic write. */
  async commit (): Promise<void> {
    const t0 = performance.now()
    await this.sink.flush()
    const batch = this.store.batch()
    try {
      this.prepareCommit(batch)
      await batch.write()
    } catch (err) {
      batch.discard()
      throw new EbbError(Errors.STORE_IO, (err as Error).message)
    }
    this.committed()
    await this.purgeErased()
    if (this.observer !== undefined) this.observer.commitSeconds((performance.now() - t0) / 1000)
  }

  /**
   * The first half of a commit, for runners that make it durable another way (Kafka mode: the
   * batch's operations also go to the changelog inside a transaction): every dirty state, the
   * timer buckets and stream time, added to `batch`. Nothing is marked clean until committed().
   * With `deferStates`, the dirty states are taken as they are now but encoded later, into that
   * batch, by encodeDeferred (and any of them changed before its turn just before the change),
   * so a pipelined commit does not stop the partition for the encoding of every dirty user.
   * Returns how many states wait to be encoded.
   */
  prepareCommit (batch: StoreBatch, deferStates?: StoreBatch): number {
    let deferred = 0
    if (deferStates === undefined) this.cache.drainDirty(batch)
    else deferred = this.cache.deferDirty(deferStates)
    this.timers.drain(batch)
    if (this.learner !== null) this.learner.drain(batch)
    this.ruleSlots.drain(batch)
    if (this.held !== null) { batch.put(META_HELD, this.held.encode()); this.heldStored = true } else if (this.heldStored) { batch.del(META_HELD); this.heldStored = false }
    if (this.erasedDirty || this.erasedAt.size > 0) this.drainErased(batch)
    const meta = Buffer.allocUnsafe(24)
    meta.writeDoubleBE(this.maxTs, 0)
    meta.writeDoubleBE(this.watermark, 8)
    meta.writeDoubleBE(this.timers.seq, 16) // after drain: the next bucket number
    batch.put(META_TIME, meta)
    return deferred
  }

  /** Encodes up to `max` states of a commit prepared with `deferStates`; true when all are. */
  encodeDeferred (max: number): boolean { return this.cache.encodeDeferred(max) }

  /** Erase markers older than stream time − grace are dropped: such events are `late` anyway. */
  private drainErased (batch: StoreBatch): void {
    const horizon = this.watermark - this.topology.graceMs
    for (const [k, at] of this.erasedAt) if (at < horizon) { this.erasedAt.delete(k); this.erasedDirty = true }
    if (!this.erasedDirty) return
    if (this.erasedAt.size === 0) batch.del(META_ERASED)
    else {
      const b = Buffer.allocUnsafe(16 * this.erasedAt.size)
      let o = 0
      for (const [k, at] of this.erasedAt) { b.write(k, o, 8, 'hex'); b.writeDoubleBE(at, o + 8); o += 16 }
      batch.put(META_ERASED, b)
    }
    this.erasedDirty = false
  }

  /**
   * After a commit that erased users: the store rewrites its files without them (RocksDB keeps
   * deleted values in its log and tables until a compaction reaches them). O(store size).
   */
  async purgeErased (): Promise<void> {
    if (this.erasuresToPurge === 0) return
    await this.store.purgeDeleted?.()
    this.erasuresToPurge = 0
  }

  /** The second half: the prepared batch is durable; dirty flags, timers and the cache move on. */
  committed (): void {
    this.prepared()
    this.written()
  }

  /**
   * Kafka mode's pipelined commit, the first step: the prepared batch is on its way (its
   * transaction in flight), and the partition goes on processing meanwhile. Changes from now on
   * belong to the next batch; the drained timers stay readable (fire() sees them) and nothing
   * drained is evicted until written(). If the batch never lands, the runner drops this task
   * and opens the partition again from its store (runner.ts).
   */
  prepared (): void {
    if (this.learner !== null) this.learner.committed()
    this.ruleSlots.committed()
    this.timers.drainedUnwritten()
    this.cache.flushing()
  }

  /** The second step: the prepared batch is in the local store. */
  written (): void {
    this.timers.inflightWritten()
    this.cache.written()
    this.stats.commits++
  }

  /** Commits and closes the store. */
  async close (): Promise<void> {
    await this.commit()
    await this.store.close()
  }

  /** The store under this task (metrics read its size). */
  get stateStore (): KvStore { return this.store }

  /** A user's state, from the cache or the store (API, tests, demo; not the hot path). */
  userState (userId: string): UserState | undefined {
    return this.cache.getOrLoadSync(userId)
  }
}

/**
 * The bytes a dead letter carries: whole up to `limit` (what the output takes: a Kafka message
 * has a size limit), beyond it their first DEAD_LETTER_PREFIX bytes with the whole length and its
 * SHA-256; bytes already cut so (`whole` given) stay as they are.
 */
function deadLetterBytes (raw: Buffer, whole: { bytes: number, sha256: string } | undefined, limit: number): { raw: Buffer, whole: { bytes: number, sha256: string } | undefined } {
  if (whole !== undefined || raw.length <= limit) return { raw, whole }
  return { raw: raw.subarray(0, Math.min(DEAD_LETTER_PREFIX, limit)), whole: { bytes: raw.length, sha256: createHash('sha256').update(raw).digest('hex') } }
}

/** A 64-bit hash of a user id, as 16 hex digits (erase markers: the id itself is not kept). */
function userIdHash (userId: string): string {
  eventIdHash.of(userId)
  return hex32(eventIdHash.h1 >>> 0) + hex32(eventIdHash.h2 >>> 0)
}

/**
 * A Kafka record keyed by something else than its userId is refused: the producer's partitioner
 * puts a user's events on the partition of their key, and the user's state lives on one
 * partition. Keyed otherwise, one user's events split over partitions, their state and
 * duplicate check with them, and an ERASE reaches one part only (a hostile-input run, 12-07). A
 * record with no key is read: on a one-partition topic nothing can split, and on more it is the
 * producer's to key them (README, "Production mode on Kafka").
 */
const KEY_NOT_USER = 'key: the Kafka record\'s key is not its userId; produce each event keyed by its userId, so that all of a user\'s events land on one partition'

/** Whether `k` is the UTF-8 of `userId`, without allocating for an ASCII id (every record is checked). */
function keyIsUserId (k: Buffer, userId: string): boolean {
  const n = userId.length
  if (k.length === n) {
    for (let j = 0; j < n; j++) {
      const c = userId.charCodeAt(j)
      // (a character past ASCII is more than one UTF-8 byte: a key of the same length is Latin-1 or another encoding)
      if (c >= 0x80 || k[j] !== c) return k.equals(Buffer.from(userId, 'utf8'))
    }
    return true
  }
  return k.length > n && k.equals(Buffer.from(userId, 'utf8'))
}

/**
 * A held event is one changelog record, and a topic refuses a record over its max.message.bytes
 * (1 MB by default): a valid 600 KB record kept as its raw bytes and its body made a 1.2 MB one,
 * which stopped `ebb run` at every start (a hostile-input run, 12-07). Above this many raw bytes,
 * the body is the event's own record (its fields are bounded; what made the record large is
 * unknown JSON fields or a writer schema's extra ones), and the raw bytes are kept as the dead
 * letter it may become keeps them: whole up to DEFAULT_MAX_DEAD_LETTER_BYTES, else the first
 * DEAD_LETTER_PREFIX bytes with the whole length and its SHA-256. Older versions cannot read a
 * held event written with this (first byte 2 or 3): a rollback across 12-07 must not find one.
 */
const HELD_BODY_LIMIT = 64 * 1024

/**
 * The event that waits for its time to be confirmed, as a one-record batch (so that it reaches
 * the dead letters with its own bytes and source, whenever it is resolved). Persisted with the
 * task's metadata, so a restart or a restore resumes the wait.
 */
class HeldEvent implements RecordBatch {
  readonly length = 1
  private constructor (readonly event: UserEvent, readonly format: 'json' | 'avro', private readonly body: string | Buffer, private readonly bytes: Buffer, private readonly where: DeadLetterSource, private readonly whole: { bytes: number, sha256: string } | undefined) {}

  static of (e: UserEvent, batch: RecordBatch, i: number): HeldEvent {
    const v = batch.value(i)
    let body: string | Buffer = typeof v === 'string' ? v : Buffer.from(v)
    const bytes = batch.raw === undefined ? (typeof body === 'string' ? Buffer.from(body, 'utf8') : body) : Buffer.from(batch.raw(i))
    const given = batch.rawWhole === undefined ? undefined : batch.rawWhole(i)
    if (given === undefined && bytes.length > HELD_BODY_LIMIT) body = batch.format === 'json' ? encodeJsonEvent(e) : encodeAvroEvent(e)
    const { raw, whole } = deadLetterBytes(bytes, given, DEFAULT_MAX_DEAD_LETTER_BYTES)
    // (a cut prefix is copied, so that the large record's memory is not kept for it)
    return new HeldEvent(e, batch.format, body, raw === bytes ? raw : Buffer.from(raw), batch.source(i), whole)
  }

  value (): string | Buffer { return this.body }
  raw (): Buffer { return this.bytes }
  rawWhole (): { bytes: number, sha256: string } | undefined { return this.whole }
  source (): DeadLetterSource { return this.where }

  /**
   * format (1 B; +2 when the raw bytes are the body, stored once), source and the whole raw
   * record's length and SHA-256 as JSON (length 4 B, UTF-8), the raw record (length 4 B), the
   * decodable body
   */
  encode (): Buffer {
    const where = Buffer.from(JSON.stringify(this.whole === undefined ? this.where : { ...this.where, whole: this.whole }), 'utf8')
    const body = typeof this.body === 'string' ? Buffer.from(this.body, 'utf8') : this.body
    const same = this.whole === undefined && this.bytes.equals(body)
    const head = Buffer.allocUnsafe(9)
    head[0] = (this.format === 'json' ? 0 : 1) + (same ? 2 : 0)
    head.writeUInt32BE(where.length, 1)
    head.writeUInt32BE(same ? 0 : this.bytes.length, 5)
    return Buffer.concat(same ? [head, where, body] : [head, where, this.bytes, body])
  }

  /** The stored parts, not decoded as an event. */
  private static parts (b: Buffer): { format: 'json' | 'avro', body: string | Buffer, raw: Buffer, where: DeadLetterSource, whole: { bytes: number, sha256: string } | undefined } {
    const format = (b[0] & 1) === 0 ? 'json' : 'avro'
    const same = (b[0] & 2) !== 0
    const wl = b.readUInt32BE(1)
    const rl = b.readUInt32BE(5)
    const { whole, ...where } = JSON.parse(b.toString('utf8', 9, 9 + wl)) as DeadLetterSource & { whole?: { bytes: number, sha256: string } }
    const bodyBytes = Buffer.from(b.subarray(9 + wl + rl))
    const raw = same ? bodyBytes : Buffer.from(b.subarray(9 + wl, 9 + wl + rl))
    return { format, body: format === 'json' ? bodyBytes.toString('utf8') : bodyBytes, raw, where: where as DeadLetterSource, whole }
  }

  static decode (b: Buffer): HeldEvent {
    const p = HeldEvent.parts(b)
    return new HeldEvent(decodeRecord(p.format, p.body), p.format, p.body, p.raw, p.where, p.whole)
  }

  /** A stored held event that no longer decodes, as a record batch of one for its dead letter. */
  static stored (b: Buffer): RecordBatch {
    const p = HeldEvent.parts(b)
    return { length: 1, format: p.format, value: () => p.body, raw: () => p.raw, rawWhole: () => p.whole, source: () => p.where }
  }
}
