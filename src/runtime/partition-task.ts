import { decodeAvroEvent } from '../events/avro.js'
import { decodeJsonEvent } from '../events/jsonl.js'
import { EventType, eventTypeIndex, type UserEvent } from '../events/user-event.js'
import { validateDecodedEvent } from '../events/validate.js'
import { EbbError, Errors, isEbbError } from '../errors.js'
import type { OutputSink } from '../io/sinks.js'
import { InterventionStage } from '../intervention/intervention-stage.js'
import type { RecallKpis } from '../intervention/kpis.js'
import { ChurnLearner, sigmoid, Z_SCALE } from '../model/learner.js'
import { clearSpell, MIN_EVIDENCE_DAYS, QUESTION_DAYS, spellEvidenceDays } from '../model/spell.js'
import { RuleEvaluator } from '../rules/evaluator.js'
import type { Topology } from '../rules/topology.js'
import { applyEvent } from '../signals/apply.js'
import type { KvStore, StoreBatch } from '../state/kv-store.js'
import { metaKey } from '../state/keys.js'
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

  private constructor (opts: PartitionTaskOptions, maxTs: number, watermark: number, timerSeq: number) {
    this.topology = opts.topology
    this.store = opts.store
    this.sink = opts.sink
    this.cache = new StateCache(opts.store, opts.cacheCapacity ?? 200_000)
    this.timers = new TimerService(opts.store, watermark, timerSeq)
    const iv = opts.topology.intervention
    this.intervention = iv === null ? null : new InterventionStage(iv, opts.topology.rules, opts.topology.params, opts.sink, opts.kpis)
    const model = opts.topology.model
    this.learner = model === null ? null : new ChurnLearner(model, opts.topology.modelThresholds)
    this.rules = new RuleEvaluator(opts.topology, opts.sink, this.stats.alertsByRule, this.intervention, this.learner)
    this.defaultZone = zoneClock(opts.topology.defaultTimezone)
    this.maxTs = maxTs
    this.watermark = watermark
    this.latency = opts.latency
    this.observer = opts.observer
    this.snapshots = opts.snapshots
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
    const task = new PartitionTask(opts, maxTs, watermark, timerSeq)
    if (task.learner !== null) await task.learner.load(opts.store)
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
        if (rejected !== null) throw new EbbError(Errors.EVENT_UNDECODABLE, rejected)
        if (batch.format === 'json') {
          e = decodeJsonEvent(batch.value(i) as string)
        } else {
          e = decodeAvroEvent(batch.value(i) as Buffer)
          const problem = validateDecodedEvent(e)
          if (problem !== null) { fail = new EbbError(Errors.EVENT_INVALID, problem); e = null }
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
    if (ts > this.maxTs) {
      this.maxTs = ts
      const wm = ts - this.topology.allowedLatenessMs
      if (wm > this.watermark) this.advanceWatermark(wm)
    }
    const type = eventTypeIndex(e.type) as EventType
    // The state seen at decode time, unless the user was erased since (or was not cached then).
    let s = known !== undefined && !known.erased ? known : this.cache.getOrLoadSync(e.userId)
    if (type === EventType.ERASE) {
      // Right to be forgotten: honoured however late the request arrives (it is not a
      // behaviour signal, so lateness does not apply). The user's timer entry becomes stale:
      // with no state, its current due is 0.
      if (s !== undefined) this.cache.erase(s.userId)
      this.stats.usersErased++
      this.stats.byType[type]++
      this.stats.eventsApplied++
      return
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
    if (s.seen(eventIdHash(e.eventId))) {
      this.stats.rejectedByType[type]++
      this.deadLetter(batch, i, new EbbError(Errors.EVENT_DUPLICATE))
      return
    }
    this.cache.markDirty(s)
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
      s.spellResolved = k + 1
    }
    if (d < QUESTION_DAYS && d >= s.spellScored) {
      const z = learner.z(s, d)
      const zQ = Math.round(z * Z_SCALE)
      const p = sigmoid(z)
      s.churnScore = p
      learner.scoredDay(s.spellMax, zQ, p)
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
    if (spellEvidenceDays(s) >= MIN_EVIDENCE_DAYS) {
      for (let k = s.spellResolved; k < s.spellScored; k++) {
        const at = s.zone.startOfDay(s.spellDay + 1 + k)
        if (at < ts) learner.label(s, k, at, 0)
      }
    }
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
    if (streamTime <= this.watermark) return
    const maxTs = streamTime + this.topology.allowedLatenessMs
    if (maxTs > this.maxTs) this.maxTs = maxTs
    this.advanceWatermark(streamTime)
  }

  private deadLetter (batch: RecordBatch, i: number, err: EbbError): void {
    const reason = err.deadLetter ?? 'processing'
    this.stats.deadLetters[reason]++
    const v = batch.raw === undefined ? batch.value(i) : batch.raw(i)
    this.sink.deadLetter({
      reason,
      code: err.code,
      detail: err.message,
      raw: (typeof v === 'string' ? Buffer.from(v, 'utf8') : v).toString('base64'),
      source: batch.source(i)
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
    if (this.observer !== undefined) this.observer.commitSeconds((performance.now() - t0) / 1000)
  }

  /**
   * The first half of a commit, for runners that make it durable another way (Kafka mode: the
   * batch's operations also go to the changelog inside a transaction): every dirty state, the
   * timer buckets and stream time, added to `batch`. Nothing is marked clean until committed().
   */
  prepareCommit (batch: StoreBatch): void {
    this.cache.drainDirty(batch)
    this.timers.drain(batch)
    if (this.learner !== null) this.learner.drain(batch)
    const meta = Buffer.allocUnsafe(24)
    meta.writeDoubleBE(this.maxTs, 0)
    meta.writeDoubleBE(this.watermark, 8)
    meta.writeDoubleBE(this.timers.seq, 16) // after drain: the next bucket number
    batch.put(META_TIME, meta)
  }

  /** The second half: the prepared batch is durable; dirty flags, timers and the cache move on. */
  committed (): void {
    if (this.learner !== null) this.learner.committed()
    this.timers.committed()
    this.cache.afterFlush()
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

