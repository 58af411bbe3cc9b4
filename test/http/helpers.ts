import { encodeJsonEvent } from '../../src/events/jsonl.js'
import type { UserEvent } from '../../src/events/user-event.js'
import { LocalEngineView } from '../../src/http/engine-view.js'
import { RecentRecordsSink } from '../../src/io/recent.js'
import { MemorySink } from '../../src/io/sinks.js'
import { EbbMetrics } from '../../src/metrics/metrics.js'
import { PartitionTask } from '../../src/runtime/partition-task.js'
import { LineBatch } from '../../src/runtime/record-batch.js'
import { MemoryStore } from '../../src/state/memory-store.js'
import { at, defaultTopology } from '../helpers.js'

/** A real engine (in-memory store) with the metrics and view the HTTP API serves. */
export async function engine (): Promise<{ task: PartitionTask, view: LocalEngineView, metrics: EbbMetrics, recent: RecentRecordsSink, pipe: (...e: Array<Partial<UserEvent> & Pick<UserEvent, 'userId' | 'type'> & { local: string }>) => Promise<void> }> {
  const recent = new RecentRecordsSink(new MemorySink())
  const holder: { task?: PartitionTask } = {}
  const metrics = new EbbMetrics({ partitions: () => holder.task === undefined ? [] : [{ partition: 0, task: holder.task }] })
  const task = await PartitionTask.open({ topology: defaultTopology(), store: new MemoryStore(), sink: recent, observer: metrics.observer })
  holder.task = task
  let seq = 0
  return {
    task,
    metrics,
    recent,
    view: new LocalEngineView(task, recent),
    pipe: async (...events) => {
      const lines = events.map(({ local, ...e }) => encodeJsonEvent({ eventId: `h-${++seq}`, tz: 'Asia/Shanghai', targetId: null, durationMs: null, amount: null, channel: null, taskId: null, ...e, ts: at(local) } as UserEvent))
      await task.process(new LineBatch(lines, 'http-test', 1))
    }
  }
}
