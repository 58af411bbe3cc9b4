import { existsSync } from 'node:fs'
import { hostname } from 'node:os'
import { EbbError, Errors } from '../errors.js'
import type { EngineView } from '../http/engine-view.js'
import { listen } from '../http/listen.js'
import { buildServer } from '../http/server.js'
import { loadRunConfig } from '../kafka/config.js'
import { KafkaRunner } from '../kafka/runner.js'
import { log } from '../log.js'
import { EbbMetrics } from '../metrics/metrics.js'
import { loadTopology } from '../rules/topology.js'
import { parseOptions, requireOption } from './args.js'

export const RUN_HELP = `ebb run --config F
  Production mode on Kafka (SPEC §9): joins the consumer group <applicationId>, reads
  ebb.UserEvent (Avro) from the input topic, keeps each partition's state in RocksDB with a
  compacted changelog, and writes alerts, recall tasks, outcomes and dead letters as Avro, in one
  transaction per commit interval with the consumer offsets (exactly-once). Serves the HTTP API.
  Stops gracefully on SIGTERM / SIGINT. See README "Production mode" for the configuration.`

export async function run (argv: string[]): Promise<number> {
  const o = parseOptions('run', argv, { config: { type: 'string' }, help: { type: 'boolean' } })
  if (o.help === true) { process.stdout.write(RUN_HELP + '\n'); return 0 }
  // Signals are caught from the start: a SIGTERM while starting stops cleanly once started.
  const stopped = new Promise<string>((resolve) => {
    process.once('SIGINT', () => { resolve('SIGINT') })
    process.once('SIGTERM', () => { resolve('SIGTERM') })
  })
  const file = requireOption('run', 'config', o.config)
  if (!existsSync(file)) throw new EbbError(Errors.INPUT_NOT_FOUND, file, 'no such file')
  const config = loadRunConfig(file)
  const topology = loadTopology(config.topologyFile)
  const runner = new KafkaRunner(config, topology)
  const metrics = new EbbMetrics({
    partitions: () => [...runner.partitions.values()].map((p) => ({ partition: p.partition, task: p.task })),
    rebalances: () => runner.rebalances,
    consumerLag: () => runner.consumerLag(),
    restore: () => runner.restore
  })
  runner.attachMetrics(metrics)
  const view: EngineView = {
    topology,
    recent: runner.recent,
    readiness: () => runner.readiness(),
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
  const failed = new Promise<string>((resolve) => {
    const t = setInterval(() => { if (runner.failure !== undefined) { clearInterval(t); resolve('failure') } }, 200)
    t.unref()
  })
  await runner.start(advertised)
  const why = await Promise.race([stopped, failed])
  log.info({ why }, 'stopping')
  await runner.stop()
  await app.close()
  if (runner.failure !== undefined) {
    process.stderr.write(`ebb run: ${runner.failure.message}\n`)
    return 1
  }
  process.stderr.write(`[run] stopped (${why}): committed and closed\n`)
  return 0
}
