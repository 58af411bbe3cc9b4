import { afterEach, describe, expect, it } from 'vitest'
import { encodeJsonEvent } from '../../src/events/jsonl.js'
import { alertJson, deadLetterJson, MemorySink, outcomeJson, taskJson } from '../../src/io/sinks.js'
import { PartitionTask } from '../../src/runtime/partition-task.js'
import { LineBatch } from '../../src/runtime/record-batch.js'
import { Simulator } from '../../src/sim/simulator.js'
import { RocksStore } from '../../src/state/rocks-store.js'
import { defaultTopology, tempDir } from '../helpers.js'

/** A simulated population with noise (duplicates, late events), as JSON Lines. */
function population (): string[] {
  const sim = new Simulator({ users: 400, days: 50, seed: 11, noise: true })
  const lines: string[] = []
  for (const day of sim.days()) for (const e of day) lines.push(encodeJsonEvent(e))
  return lines
}

function outputs (sink: MemorySink): string[] {
  return [...sink.alerts.map(alertJson), ...sink.tasks.map(taskJson), ...sink.outcomes.map(outcomeJson), ...sink.deadLetters.map(deadLetterJson)]
}

async function run (dir: string, lines: string[], from: number, to: number, sink: MemorySink, cacheCapacity: number, until?: number): Promise<void> {
  const store = await RocksStore.open(dir)
  const task = await PartitionTask.open({ topology: defaultTopology(), store, sink, cacheCapacity })
  for (let i = from; i < to; i += 1000) {
    await task.process(new LineBatch(lines.slice(i, Math.min(i + 1000, to)), 'pop.jsonl', i + 1))
    if ((i / 1000) % 7 === 6) await task.commit()
  }
  if (until !== undefined) task.advanceTo(until)
  await task.close()
}

describe('state round trip through RocksDB', () => {
  const cleanups: Array<() => void> = []
  afterEach(() => { for (const c of cleanups.splice(0)) c() })

  it('closing mid-stream and reopening on the same directory gives the outputs of an uninterrupted run', async () => {
    const lines = population()
    const until = JSON.parse(lines[lines.length - 1]).ts + 2 * 86_400_000
    const a = tempDir(); const b = tempDir()
    cleanups.push(a.cleanup, b.cleanup)

    const clean = new MemorySink()
    await run(a.dir, lines, 0, lines.length, clean, 1_000_000, until)

    // Interrupted twice, at odd points, with a cache smaller than the population (evictions,
    // reloads from RocksDB): the same alerts and dead letters, in the same order.
    const resumed = new MemorySink()
    const cut1 = Math.floor(lines.length * 0.37)
    const cut2 = Math.floor(lines.length * 0.81)
    await run(b.dir, lines, 0, cut1, resumed, 50)
    await run(b.dir, lines, cut1, cut2, resumed, 50)
    await run(b.dir, lines, cut2, lines.length, resumed, 50, until)

    expect(clean.alerts.length).toBeGreaterThan(50)
    const rules = new Set(clean.alerts.map((x) => x.rule))
    expect(rules).toEqual(new Set(['inactive_7d', 'unfollow_burst', 'consumption_drop', 'inactive_31d', 'model_risk']))
    expect(clean.deadLetters.some((d) => d.reason === 'duplicate')).toBe(true)
    // Restarts never duplicate a task: the same taskIds, each once.
    expect(clean.tasks.length).toBeGreaterThan(20)
    expect(clean.outcomes.length).toBeGreaterThan(0)
    expect(new Set(resumed.tasks.map((t) => t.taskId)).size).toBe(resumed.tasks.length)
    expect(outputs(resumed)).toEqual(outputs(clean))
  })
})
