import { commandHelp, COMMANDS, parseCommand } from './commands.js'
import { hostname } from 'node:os'
import { EbbError, Errors, isEbbError } from '../errors.js'
import type { EngineView } from '../http/engine-view.js'
import { listen } from '../http/listen.js'
import { buildServer } from '../http/server.js'
import { loadRunConfig } from '../kafka/config.js'
import { claimStateDir, stateInstanceId } from '../kafka/instance-id.js'
import { KafkaRunner } from '../kafka/runner.js'
import { errorText, isKafkaClientError, kafkaRefusal } from '../kafka/client-errors.js'
import { withDeadline } from '../kafka/waits.js'
import { log } from '../log.js'
import { EbbMetrics } from '../metrics/metrics.js'
import { loadTopology } from '../rules/topology.js'
import { requireInputFile, requireOption } from './args.js'
import { count, rate } from './progress.js'

export async function run (argv: string[]): Promise<number> {
  const o = parseCommand(COMMANDS.run, argv)
  if (o.help === true) { process.stdout.write(commandHelp(COMMANDS.run)); return 0 }
  // Signals are caught from the start: a SIGTERM while starting stops cleanly once started.
  const stopped = new Promise<string>((resolve) => {
    process.once('SIGINT', () => { resolve('SIGINT') })
    process.once('SIGTERM', () => { resolve('SIGTERM') })
  })
  const file = requireOption('run', 'config', o.config)
  requireInputFile(file, { streams: true })
  const loaded = loadRunConfig(file)
  // One process per state directory (its stores, its instance id), released at exit however it comes.
  const release = claimStateDir(loaded.stateDir, loaded.applicationId)
  process.once('exit', release)
  const config = loaded.instanceIdConfigured ? loaded : { ...loaded, instanceId: stateInstanceId(loaded.stateDir, loaded.applicationId) }
  const topology = loadTopology(config.topologyFile)
  // One runner per attempt to reach the brokers; the API and metrics read whichever is current.
  let runner = new KafkaRunner(config, topology)
  /** Kafka clients started again, by what failed: connect (start), commit, consumer */
  const retries = new Map<string, number>([['connect', 0], ['commit', 0], ['consumer', 0]])
  const retried = (err: Error): void => {
    const reason = !isEbbError(err) ? 'connect' : err.code === Errors.SINK_WRITE.code ? 'commit' : err.code === Errors.KAFKA_CONSUMER_FAILED.code ? 'consumer' : 'connect'
    retries.set(reason, (retries.get(reason) ?? 0) + 1)
  }
  /** set once this process gave up (a fatal error, or retryTimeout passed): /healthz says so while it stops */
  let givenUp: string | undefined
  let rebalancesBefore = 0
  let restartsBefore = 0
  /** hanging transactions aborted by the runners before the current one, by topic */
  const hangingBefore = new Map<string, number>()
  const addHanging = (into: Map<string, number>, from: ReadonlyMap<string, number>): Map<string, number> => { for (const [t, n] of from) into.set(t, (into.get(t) ?? 0) + n); return into }
  const metrics = new EbbMetrics({
    partitions: () => [...runner.partitions.values()].map((p) => ({ partition: p.partition, task: p.task })),
    rebalances: () => rebalancesBefore + runner.rebalances,
    kafkaRetries: () => new Map([...retries].map(([reason, n]) => [reason, reason === 'consumer' ? n + restartsBefore + runner.consumerRestarts : n])),
    consumerLag: () => runner.consumerLag(),
    restore: () => runner.restore,
    hangingTransactionsAborted: () => addHanging(new Map(hangingBefore), runner.hangingTransactionsAborted)
  }, { topology })
  const view: EngineView = {
    topology,
    get recent () { return runner.recent },
    readiness: () => givenUp === undefined ? runner.readiness() : { ready: false, reason: `gave up: ${givenUp}` },
    liveness: () => givenUp === undefined ? { alive: true, reason: 'running' } : { alive: false, reason: `gave up, exiting: ${givenUp}` },
    learners: () => [...runner.partitions.values()].flatMap((p) => p.task.learner === null ? [] : [{ partition: p.partition, learner: p.task.learner }]),
    locate: async (userId) => {
      const partition = runner.owners.partitionOf(userId, runner.inputPartitions)
      const held = runner.partitions.get(partition)
      if (held !== undefined) return { local: true, state: held.task.cache.peekSync(userId), streamTime: held.task.watermark, learner: held.task.learner, ruleSlots: held.task.ruleSlots }
      if (runner.holds(partition)) return { local: true, state: undefined, streamTime: Number.NaN } // assigned, not opened yet
      const owner = await runner.owners.ownerOf(partition)
      // Nobody holds it (a rebalance is under way): answer 404 here rather than send the caller in a loop.
      return owner === undefined || owner === advertised ? { local: true, state: undefined, streamTime: Number.NaN } : { local: false, owner }
    }
  }
  const app = await buildServer({ engine: view, metrics, token: config.http.token })
  const url = await listen(app, config.http)
  // The address other instances send callers to: EBB_ADVERTISED_URL, else the bound one
  // (with the host name when bound to all interfaces).
  const advertised = process.env.EBB_ADVERTISED_URL ?? url.replace('//0.0.0.0:', `//${hostname()}:`)
  process.stderr.write(`[run] ${config.applicationId}/${config.instanceId}: ${config.topics.input} → ${config.topics.alerts}, ${config.topics.tasks}, ${config.topics.outcomes}, ${config.topics.deadLetters} (${config.processingGuarantee}); API ${url}\n`)
  // Reaching the brokers, and reaching them again. A broker that is down at start, a commit that
  // failed, a consumer that gave up (a broker outage, a coordinator that moved): the runner's
  // clients and stores are closed, its work since the last commit dropped, and a new runner starts
  // from the committed offsets and the stores' position — the path a restarted process takes, in
  // the same process, with the API up and /readyz saying why it is not ready. Retried with backoff
  // for retryTimeout from the start of the outage, then exit 1. What the brokers refuse for good
  // (a missing topic, partitions that do not match) and a corrupt state are not retried.
  let outageSince: number | undefined = Date.now()
  let attempt = 0
  const status = statusLines(() => runner)
  let interrupted: string | undefined
  void stopped.then((why) => { interrupted = why })
  let why: string
  let gaveUp: EbbError | undefined
  /** why the last attempt failed (said when a later one gives up without an error of its own) */
  let previous: string | undefined
  for (;;) {
    runner.attachMetrics(metrics)
    runner.waiting ??= 'connecting to the brokers'
    let lastError: Error
    let fatal: boolean
    try {
      // A signal while starting (the client's own retries can take a while) is not left waiting,
      // nor is the outage's deadline: the client retries each request by itself, and a broker that
      // takes the connection and then closes it (TLS without the client certificate the broker
      // asks for) made those retries last a minute past a retryTimeout of 3 s.
      const starting = runner.start(advertised)
      starting.catch(() => {})
      // What the brokers refuse for good is said as soon as the client first retries it.
      // Only a start that is failing (its client retried an error) is cut off: a slow one that
      // fails nothing (a group join waiting for its rebalance) finishes.
      const current = runner
      const outcome = await Promise.race([starting.then(() => 'started'), stopped, startDeadline(outageSince === undefined ? undefined : outageSince + config.retryTimeoutMs, () => current.lastRetried !== undefined), runner.refused])
      if (outcome instanceof EbbError) throw outcome
      if (outcome === 'overdue') throw new StartOverdue(errorText(runner.lastRetried))
      if (outcome !== 'started') {
        await withDeadline(runner.stop(), STOP_DEADLINE_MS, 'stopping')
        await withDeadline(app.close(), 5000, 'stopping')
        process.stderr.write(`[run] stopped (${interrupted ?? 'signal'}) while starting the Kafka clients\n`)
        return 0
      }
      runner.waiting = undefined
      // Running: the outage is over once the runner committed, or was ready for HEALTHY_AFTER_MS
      // (a quiet input commits nothing); a commit that fails again and again never gets there,
      // so its retries end at the deadline.
      why = await untilStoppedOrFailed(runner, stopped, () => outageSince === undefined ? undefined : outageSince + config.retryTimeoutMs, () => { outageSince = undefined; attempt = 0; previous = undefined }, config.retryTimeoutMs)
      if (why === 'unavailable') {
        // Not healthy again within retryTimeout of the outage's start (the client kept restarting
        // its consumer, or the group never settled, or its partitions never opened): give up.
        // Said as what it was: brokers out of reach only when the consumer kept failing.
        const secs = Math.round(config.retryTimeoutMs / 1000)
        const err = runner.lastCrash !== undefined
          ? new EbbError(Errors.KAFKA_UNREACHABLE, config.brokers.join(','), secs, `no partition was processed since (${runner.lastCrash})`)
          : new EbbError(Errors.RUN_STALLED, secs, `${runner.readiness().reason}${previous === undefined ? '' : `; the attempt before failed: ${previous}`}`)
        givenUp = err.message
        await withDeadline(runner.stop(), STOP_DEADLINE_MS, 'stopping')
        await withDeadline(app.close(), 5000, 'stopping')
        gaveUp = err
        throw err
      }
      if (why !== 'failure') break
      lastError = runner.failure as Error
      // Retried: what the engine marks retriable (a commit, the consumer); not a bug or a corrupt
      // state, nor what already waited for retryTimeout (a schema registry that stayed down).
      fatal = !(isEbbError(lastError) && lastError.retriable) || lastError.code === Errors.SCHEMA_REGISTRY_UNAVAILABLE.code
      outageSince ??= runner.unavailableSince ?? Date.now()
    } catch (err) {
      // (given up above: not one more round of the retry below, which would wrap its message again)
      if (err === gaveUp) throw err
      // The client's errors keep their cause nested: said in words here, once for every message below.
      lastError = isKafkaClientError(err) ? Object.assign(new Error(errorText(err)), { code: (err as { code: string }).code }) : err as Error
      // Retriable: the client's own errors (connection refused, no leader yet), a registry that
      // cannot answer, and Ebb's errors that say so; anything else (a bug) is not waited out.
      fatal = isEbbError(err) ? !err.retriable : !(isKafkaClientError(lastError) || lastError.name === 'SchemaRegistryUnavailable' || err instanceof StartOverdue)
      // What the brokers refuse for good (credentials, an ACL) is said at once, not waited out.
      const refused = isEbbError(err) ? undefined : kafkaRefusal(err, config.brokers.join(','))
      if (refused !== undefined) { lastError = refused; fatal = true }
      outageSince ??= Date.now()
    }
    if (!fatal) retried(lastError)
    previous = lastError.message
    // Closed before anything new starts: the stores' locks, the old member's partitions.
    const closed = await withDeadline(runner.stop(), STOP_DEADLINE_MS, 'stopping') && runner.closeFailures.length === 0
    const deadline = (outageSince ?? Date.now()) + config.retryTimeoutMs
    if (fatal || !closed || interrupted !== undefined || Date.now() >= deadline) {
      givenUp = lastError.message
      await withDeadline(app.close(), 5000, 'stopping')
      if (interrupted !== undefined && !fatal) { process.stderr.write(`[run] stopped (${interrupted}) while Kafka was unavailable\n`); return 0 }
      if (!closed) throw new EbbError(Errors.KAFKA_UNREACHABLE, config.brokers.join(','), Math.round((Date.now() - (outageSince ?? Date.now())) / 1000), `${lastError.message}; and closing the Kafka clients and stores did not finish (${runner.closeFailures.join('; ') || `not within ${STOP_DEADLINE_MS / 1000} s, at: ${runner.closingStep ?? 'the last commit'}`}), so this process cannot be sure they are gone and exits`)
      if (fatal) throw lastError
      if (lastError.name === 'SchemaRegistryUnavailable') throw new EbbError(Errors.SCHEMA_REGISTRY_UNAVAILABLE, Math.round(config.retryTimeoutMs / 1000), lastError.message)
      throw new EbbError(Errors.KAFKA_UNREACHABLE, config.brokers.join(','), Math.round(config.retryTimeoutMs / 1000), lastError.message)
    }
    attempt++
    // (not past the deadline: the last attempt starts before it, and gets its chance)
    const wait = Math.max(0, Math.min(10_000, 500 * 2 ** Math.min(attempt, 5), deadline - Date.now() - 1000))
    const waiting = `Kafka is unavailable (attempt ${attempt}: ${lastError.message}); retrying from the last commit until ${new Date(deadline).toISOString()}`
    log.warn({ attempt, retryInSeconds: wait / 1000, err: lastError.message }, 'Kafka is unavailable; starting the clients again from the last commit')
    process.stderr.write(`[run] Kafka (${config.brokers.join(', ')}) is unavailable: ${lastError.message}; retrying from the last commit in ${wait / 1000} s (gives up ${new Date(deadline).toISOString()})\n`)
    rebalancesBefore += runner.rebalances
    restartsBefore += runner.consumerRestarts
    addHanging(hangingBefore, runner.hangingTransactionsAborted)
    runner = new KafkaRunner(config, topology)
    runner.waiting = waiting
    await Promise.race([new Promise((resolve) => setTimeout(resolve, wait)), stopped])
    if (interrupted !== undefined) {
      await withDeadline(app.close(), 5000, 'stopping')
      process.stderr.write(`[run] stopped (${interrupted}) while Kafka was unavailable\n`)
      return 0
    }
  }
  clearInterval(status)
  log.info({ why }, 'stopping')
  // A second SIGTERM / SIGINT while stopping exits at once; a stop that hangs (a broker that went
  // away mid-commit) is cut off: a process that gave up must exit, or nothing restarts it.
  const now = (): void => { process.stderr.write('[run] stopping at once (second signal)\n'); process.exit(runner.failure === undefined ? 130 : 1) }
  process.once('SIGINT', now)
  process.once('SIGTERM', now)
  const clean = await withDeadline(runner.stop(), STOP_DEADLINE_MS, 'stopping')
  await withDeadline(app.close(), 5000, 'stopping')
  if (runner.failure !== undefined) {
    process.stderr.write(`ebb run: ${runner.failure.message}\n`)
    return 1
  }
  if (!clean) {
    process.stderr.write(`[run] stopped (${why}), but closing the Kafka clients took longer than ${STOP_DEADLINE_MS / 1000} s: the last commit may not have landed; a restart resumes from the last committed offsets\n`)
    return 1
  }
  process.stderr.write(`[run] stopped (${why}): committed and closed\n`)
  return 0
}

/** The Kafka clients, failing, had not finished starting at the outage's deadline (retryTimeout). */
class StartOverdue extends Error {
  constructor (lastClientError: string) {
    super(`the Kafka clients were still retrying their start when retryTimeout ran out (last error: ${lastClientError})`)
    this.name = 'StartOverdue'
  }
}

/**
 * Resolves 'overdue' at `at`, or later, once `failing()` says the start has retried an error
 * (never when `at` is undefined). Unref'd timers: they keep no process alive.
 */
function startDeadline (at: number | undefined, failing: () => boolean): Promise<string> {
  if (at === undefined) return new Promise(() => {})
  return new Promise((resolve) => {
    const check = (): void => { if (failing()) resolve('overdue'); else setTimeout(check, 200).unref() }
    setTimeout(check, Math.max(0, at - Date.now())).unref()
  })
}

/** How long a runner must stay ready, without a commit, for an outage to count as over. */
const HEALTHY_AFTER_MS = 30_000

/**
 * Waits for a signal, the runner's failure, or the outage's deadline passing before the runner
 * is healthy again ('unavailable'; when it was healthy, a consumer the client keeps restarting by
 * itself for retryTimeout counts too). `healthy` is called once the runner committed, restores,
 * or was ready (every assigned partition running) for HEALTHY_AFTER_MS.
 */
async function untilStoppedOrFailed (runner: KafkaRunner, stopped: Promise<string>, deadline: () => number | undefined, healthy: () => void, retryTimeoutMs: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined
  let reported = false
  let readySince: number | undefined
  const failed = new Promise<string>((resolve) => {
    timer = setInterval(() => {
      if (runner.failure !== undefined) { resolve('failure'); return }
      const now = Date.now()
      const until = deadline()
      if (until !== undefined && now >= until) { resolve('unavailable'); return }
      if (until === undefined && runner.unavailableSince !== undefined && now - runner.unavailableSince >= retryTimeoutMs) { resolve('unavailable'); return }
      readySince = runner.readiness().ready ? (readySince ?? now) : undefined
      // A restore that reads records is Kafka answering (a large state can take longer than
      // retryTimeout to restore): healthy too. (Only records count: after an aborted commit a
      // restore skips the aborted ones, which must not end the outage of a commit that keeps failing.)
      const restoring = [...runner.restore.values()].some((r) => r.restored > 0)
      if (!reported && (runner.commits > 0 || restoring || (readySince !== undefined && now - readySince >= HEALTHY_AFTER_MS))) { reported = true; healthy() }
    }, 200)
    timer.unref()
  })
  try {
    return await Promise.race([stopped, failed])
  } finally {
    clearInterval(timer)
  }
}

/** How long a stop may take (the last commit, leaving the group, closing the stores) before the process exits anyway. */
const STOP_DEADLINE_MS = 20_000


/**
 * Every 30 s, a line in words on stderr (the JSON logs are for machines): the partitions held,
 * restore progress, lag, throughput and outputs since the last line; and "caught up" the first
 * time the lag reaches 0.
 */
function statusLines (current: () => KafkaRunner, everyMs = 30_000): NodeJS.Timeout {
  let last = { at: performance.now(), records: 0, alerts: 0 }
  let caughtUp = false
  const t = setInterval(() => {
    const runner = current()
    const parts = [...runner.partitions.values()]
    const now = { at: performance.now(), records: 0, alerts: 0 }
    for (const p of parts) {
      now.records += p.task.stats.recordsIn
      now.alerts += p.task.stats.alertTotal
    }
    const restoring = [...runner.restore.entries()].filter(([, r]) => r.remaining > 0)
    const lag = [...runner.consumerLag().values()].reduce((a, b) => a + b, 0)
    const secs = (now.at - last.at) / 1000
    const ready = runner.readiness()
    const words = [
      `partitions ${runner.partitions.size === 0 ? 'none' : [...runner.partitions.keys()].sort((a, b) => a - b).join(',')}`,
      ...restoring.map(([p, r]) => `restoring ${p}: ${Math.round(100 * r.restored / Math.max(1, r.restored + r.remaining))}% (${count(r.remaining)} records to go)`),
      `lag ${count(lag)} records`,
      `${rate(Math.max(0, now.records - last.records), secs * 1000)} over the last ${Math.round(secs)} s`,
      `alerts +${Math.max(0, now.alerts - last.alerts)}`,
      ready.ready ? 'ready' : `not ready: ${ready.reason}`
    ]
    process.stderr.write(`[run] ${words.join('; ')}\n`)
    if (!caughtUp && ready.ready && lag === 0 && parts.length > 0) { caughtUp = true; process.stderr.write('[run] caught up with the input\n') }
    last = now
  }, everyMs)
  t.unref()
  return t
}
