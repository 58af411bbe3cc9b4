import { DEAD_LETTER_REASONS } from '../errors.js'
import { packageVersion } from '../paths.js'
import type { Topology } from '../rules/topology.js'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import { EVENT_TYPES } from '../events/user-event.js'
import type { KpiCounts } from '../intervention/kpis.js'
import type { EngineObserver, PartitionTask } from '../runtime/partition-task.js'

/**
 * Ebb's Prometheus metrics (prom-client), following Prometheus naming: `ebb_` prefix, base
 * units (seconds, bytes), `_total` for counters. Label values are bounded: event types, dead
 * letter reasons, rule ids, plan ids, channels, arms, decisions, partitions — never user ids.
 *
 * The hot path does not touch prom-client: counters are read from the engine's own counters
 * when Prometheus scrapes (each metric's collect()). Only the two histograms are fed as the
 * engine runs, through EngineObserver (1 in 64 events is timed; every commit).
 */
export interface PartitionView {
  readonly partition: number
  readonly task: PartitionTask
}

/** What the metrics read; the embedded demo has one partition, Kafka mode several. */
export interface MetricsSource {
  partitions (): Iterable<PartitionView>
  /** Kafka mode: per partition, records between the committed offset and the end of the log */
  consumerLag? (): Map<number, number>
  /** Kafka mode: group rebalances since start */
  rebalances? (): number
  /** Kafka mode: changelog records restored, and still to restore, per partition */
  restore? (): Map<number, { restored: number, remaining: number }>
  /** Kafka mode: times the Kafka clients were started again, by what failed (connect, commit, consumer) */
  kafkaRetries? (): Map<string, number>
  /** Kafka mode: hanging transactions aborted, by topic (hanging-watch.ts) */
  hangingTransactionsAborted? (): ReadonlyMap<string, number>
}

export class EbbMetrics {
  readonly registry = new Registry()
  readonly observer: EngineObserver

  constructor (source: MetricsSource, build: { topology: Topology, simulated?: boolean } | undefined = undefined) {
    const r = this.registry
    collectDefaultMetrics({ register: r })
    // prom-client exports each of nodejs_active_{handles,requests,resources} twice: as a gauge
    // of that name and again as a gauge named *_total, which breaks the convention that _total
    // names a counter (promtool flags it). The gauges without the suffix stay.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) r.removeSingleMetric(name)
    const model = build?.topology.model ?? null
    new Gauge({
      name: 'ebb_build_info',
      help: 'Always 1: the Ebb version, the churn model prior (kind-sha256 prefix, or none) and the Node version, as labels',
      labelNames: ['version', 'model', 'node'],
      registers: [r]
    }).set({ version: packageVersion(), model: model === null ? 'none' : model.version, node: process.version }, 1)
    const parts = (): PartitionView[] => [...source.partitions()]
    /** Sets a counter to the engine's running total (counters only grow: the engine's do too). */
    const setCounter = (c: Counter<string>, labels: Record<string, string>, v: number): void => {
      c.inc(labels, v)
    }
    const sum = (f: (t: PartitionTask) => number): number => parts().reduce((n, p) => n + f(p.task), 0)

    const eventHist = new Histogram({
      name: 'ebb_event_processing_seconds',
      help: 'Processing time of one event (state, signals, rules, intervention; decode excluded), sampled 1 in 64',
      buckets: [1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 5e-4, 1e-3, 1e-2],
      registers: [r]
    })
    const commitHist = new Histogram({
      name: 'ebb_commit_duration_seconds',
      help: 'Duration of a commit: outputs flushed, then state, timers and stream time written atomically',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [r]
    })
    const txnHist = new Histogram({
      name: 'ebb_transaction_duration_seconds',
      help: 'Kafka mode: one commit transaction carrying outputs, changelog records and offsets, from begin to commit',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [r]
    })
    const requestHist = new Histogram({
      name: 'ebb_kafka_request_duration_seconds',
      help: 'Kafka mode: one step of a transaction as the client port times it, named by its Kafka API (Produce: one send with its AddPartitionsToTxn; AddOffsetsToTxn; TxnOffsetCommit: the offsets of every partition; EndTxn), the client\'s retries included: where a transaction spends its time',
      labelNames: ['api'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [r]
    })
    this.observer = {
      eventSeconds: (s) => { eventHist.observe(s) },
      commitSeconds: (s) => { commitHist.observe(s) },
      transactionSeconds: (s) => { txnHist.observe(s) },
      kafkaRequestSeconds: (api, s) => { requestHist.observe({ api }, s) }
    }

    new Counter({
      name: 'ebb_events_processed_total',
      help: 'Events by type and outcome: applied, or rejected (late, duplicate) to the dead letters',
      labelNames: ['type', 'outcome'],
      registers: [r],
      collect () {
        this.reset()
        EVENT_TYPES.forEach((type, i) => {
          const applied = sum((t) => t.stats.byType[i])
          const rejected = sum((t) => t.stats.rejectedByType[i])
          if (applied > 0) setCounter(this, { type, outcome: 'applied' }, applied)
          if (rejected > 0) setCounter(this, { type, outcome: 'rejected' }, rejected)
        })
      }
    })
    new Counter({
      name: 'ebb_records_total',
      help: 'Input records read, whatever became of them',
      registers: [r],
      collect () { this.reset(); this.inc(sum((t) => t.stats.recordsIn)) }
    })
    new Counter({
      name: 'ebb_dead_letters_total',
      help: 'Records sent to the dead letters, by reason',
      labelNames: ['reason'],
      registers: [r],
      collect () {
        this.reset()
        for (const reason of DEAD_LETTER_REASONS) {
          setCounter(this, { reason }, sum((t) => t.stats.deadLetters[reason]))
        }
      }
    })
    new Gauge({
      name: 'ebb_event_time_lag_seconds',
      help: build?.simulated === true
        ? 'Wall clock minus the partition\'s watermark (stream time). In the demo the events are simulated and dated months back: this is simulated time, not a delay'
        : 'Wall clock minus the partition\'s watermark (stream time)',
      labelNames: ['partition'],
      registers: [r],
      collect () {
        this.reset()
        const now = Date.now()
        for (const p of parts()) if (Number.isFinite(p.task.watermark)) this.set({ partition: String(p.partition) }, (now - p.task.watermark) / 1000)
      }
    })
    new Gauge({
      name: 'ebb_watermark_timestamp_seconds',
      help: 'The partition\'s watermark (stream time) as a Unix time',
      labelNames: ['partition'],
      registers: [r],
      collect () {
        this.reset()
        for (const p of parts()) if (Number.isFinite(p.task.watermark)) this.set({ partition: String(p.partition) }, p.task.watermark / 1000)
      }
    })
    new Counter({
      name: 'ebb_alerts_total',
      help: 'Alerts fired, by rule',
      labelNames: ['rule'],
      registers: [r],
      collect () {
        this.reset()
        const first = parts()[0]
        if (first === undefined) return
        for (const rule of first.task.topology.rules) if (rule.enabled) setCounter(this, { rule: rule.id }, sum((t) => t.stats.alertsByRule.get(rule.id) ?? 0))
      }
    })
    new Counter({
      name: 'ebb_decisions_total',
      help: 'Intervention decisions on alerts (TASK, HOLDOUT, NO_CONSENT, CAPPED, DEFERRED, WINBACK, ALREADY_TASKED)',
      labelNames: ['decision'],
      registers: [r],
      collect () {
        this.reset()
        for (const p of parts()) for (const [decision, n] of p.task.intervention?.kpis.decisions ?? []) setCounter(this, { decision }, n)
      }
    })
    /** A counter per (plan, channel) summed over partitions from the attribution cells. */
    const sentCounter = (name: string, help: string, pick: (c: KpiCounts) => number): void => {
      new Counter({
        name, help, labelNames: ['plan', 'channel'], registers: [r],
        collect () {
          this.reset()
          for (const p of parts()) p.task.intervention?.kpis.forEachSent((plan, channel, _t, c) => { setCounter(this, { plan, channel }, pick(c)) })
        }
      })
    }
    /** A counter per (plan, arm) summed over partitions from the uplift cells. */
    const armCounter = (name: string, help: string, pick: (c: KpiCounts) => number): void => {
      new Counter({
        name, help, labelNames: ['plan', 'arm'], registers: [r],
        collect () {
          this.reset()
          for (const p of parts()) p.task.intervention?.kpis.forEachAssignment((plan, arm, c) => { setCounter(this, { plan, arm }, pick(c)) })
        }
      })
    }
    sentCounter('ebb_tasks_total', 'Recall tasks emitted to the dispatch output (first steps and follow-ups), by plan and channel', (c) => c.assigned)
    sentCounter('ebb_outcomes_total', 'Outcomes (recalls, last touch), by plan and channel', (c) => c.recalls)
    armCounter('ebb_recall_assigned_total', 'First-step tasks (TREATMENT) and holdout shadows (HOLDOUT): the denominators of recall rate and uplift', (c) => c.assigned)
    armCounter('ebb_recall_returned_total', 'First-step tasks and holdout shadows whose user logged in within the attribution window', (c) => c.recalls)
    new Gauge({
      name: 'ebb_recall_rate',
      help: 'Recall rate since start (returned ÷ assigned), by plan and arm; uplift = TREATMENT − HOLDOUT',
      labelNames: ['plan', 'arm'],
      registers: [r],
      collect () {
        this.reset()
        const totals = new Map<string, [string, string, number, number]>()
        for (const p of parts()) {
          p.task.intervention?.kpis.forEachAssignment((plan, arm, c) => {
            const k = `${plan}\u0000${arm}`
            const t = totals.get(k) ?? [plan, arm, 0, 0]
            t[2] += c.assigned
            t[3] += c.recalls
            totals.set(k, t)
          })
        }
        for (const [plan, arm, assigned, recalls] of totals.values()) if (assigned > 0) this.set({ plan, arm }, recalls / assigned)
      }
    })
    new Gauge({
      name: 'ebb_timers_pending',
      help: 'Timers armed since the last commit (held in memory until it)',
      registers: [r],
      collect () { this.set(sum((t) => t.timers.pendingTimers)) }
    })
    new Counter({
      name: 'ebb_timers_fired_total',
      help: 'User timers fired (local midnights)',
      registers: [r],
      collect () { this.reset(); this.inc(sum((t) => t.timers.fired)) }
    })
    new Counter({
      name: 'ebb_state_cache_hits_total',
      help: 'State lookups served by the write-back cache',
      registers: [r],
      collect () { this.reset(); this.inc(sum((t) => t.cache.hits)) }
    })
    new Counter({
      name: 'ebb_state_cache_misses_total',
      help: 'State lookups that went to RocksDB',
      registers: [r],
      collect () { this.reset(); this.inc(sum((t) => t.cache.misses)) }
    })
    new Gauge({
      name: 'ebb_state_cache_users',
      help: 'Users held in the state cache',
      registers: [r],
      collect () { this.set(sum((t) => t.cache.size)) }
    })
    new Gauge({
      name: 'ebb_state_store_bytes',
      help: 'Approximate size of the partition\'s RocksDB state on disk',
      labelNames: ['partition'],
      registers: [r],
      collect () {
        this.reset()
        for (const p of parts()) this.set({ partition: String(p.partition) }, p.task.stateStore.approximateSize())
      }
    })
    new Counter({
      name: 'ebb_commits_total',
      help: 'Commits (state and outputs made durable)',
      registers: [r],
      collect () { this.reset(); this.inc(sum((t) => t.stats.commits)) }
    })
    new Gauge({
      name: 'ebb_partitions_assigned',
      help: 'Input partitions this instance processes',
      registers: [r],
      collect () { this.set(parts().length) }
    })
    // Kafka mode reports these through the source; in embedded mode they stay empty or 0.
    new Gauge({
      name: 'ebb_consumer_lag_records',
      help: 'Records between the committed offset and the end of the input partition',
      labelNames: ['partition'],
      registers: [r],
      collect () {
        this.reset()
        for (const [partition, lag] of source.consumerLag?.() ?? []) this.set({ partition: String(partition) }, lag)
      }
    })
    new Counter({
      name: 'ebb_rebalances_total',
      help: 'Consumer group rebalances since start',
      registers: [r],
      collect () { this.reset(); this.inc(source.rebalances?.() ?? 0) }
    })
    new Counter({
      name: 'ebb_kafka_retries_total',
      help: 'Times the Kafka clients were started again from the last commit, by what failed: connect (the brokers could not be reached), commit (a transaction failed), consumer (the group consumer gave up)',
      labelNames: ['reason'],
      registers: [r],
      collect () {
        this.reset()
        for (const [reason, n] of source.kafkaRetries?.() ?? []) setCounter(this, { reason }, n)
      }
    })
    new Counter({
      name: 'ebb_hanging_transactions_aborted_total',
      help: 'Kafka mode: transactions aborted because they hung (open on a partition, owned by no coordinator, for hangingTransactionTimeout), hiding what follows them from read_committed readers: a restore of the changelog, the consumers of an output; by topic',
      labelNames: ['topic'],
      registers: [r],
      collect () {
        this.reset()
        for (const [topic, n] of source.hangingTransactionsAborted?.() ?? []) setCounter(this, { topic }, n)
      }
    })
    new Counter({
      name: 'ebb_restore_records_total',
      help: 'State changelog records restored, by partition',
      labelNames: ['partition'],
      registers: [r],
      collect () {
        this.reset()
        for (const [partition, s] of source.restore?.() ?? []) setCounter(this, { partition: String(partition) }, s.restored)
      }
    })
    new Gauge({
      name: 'ebb_restore_remaining_records',
      help: 'State changelog records still to restore before the partition is ready, by partition',
      labelNames: ['partition'],
      registers: [r],
      collect () {
        this.reset()
        for (const [partition, s] of source.restore?.() ?? []) this.set({ partition: String(partition) }, s.remaining)
      }
    })
  }

  async text (): Promise<string> { return await this.registry.metrics() }
  get contentType (): string { return this.registry.contentType }
}
