import type { RecentRecords } from '../io/recent.js'
import type { Topology } from '../rules/topology.js'
import type { PartitionTask } from '../runtime/partition-task.js'
import type { UserState } from '../state/user-state.js'
import type { ChurnLearner } from '../model/learner.js'
import type { RuleSlots } from '../rules/slots.js'

/**
 * What the HTTP API sees of a running engine. The embedded demo holds every user in one
 * partition task; Kafka mode holds some partitions and knows which instance holds
 * the others, which is what `locate` answers.
 */
export type UserLocation = { local: true, state: UserState | undefined, streamTime: number, learner?: ChurnLearner | null, ruleSlots?: RuleSlots } | { local: false, owner: string }

export interface EngineView {
  readonly topology: Topology
  readonly recent: RecentRecords
  /** ready: state restored and partitions assigned; else why not */
  readiness (): { ready: boolean, reason: string }
  /** alive unless the process gave up and is exiting (GET /healthz); absent: always alive */
  liveness? (): { alive: boolean, reason: string }
  /** the user's state when this instance holds their partition, else the owner's base URL */
  locate (userId: string): Promise<UserLocation>
  /** what each partition this instance holds has learned (the churn model) */
  learners (): Array<{ partition: number, learner: ChurnLearner }>
}

/** One partition task in this process: the embedded demo (and tests). */
export class LocalEngineView implements EngineView {
  constructor (private readonly task: PartitionTask, readonly recent: RecentRecords, private ready = true) {}

  get topology (): Topology { return this.task.topology }

  setReady (ready: boolean): void { this.ready = ready }

  readiness (): { ready: boolean, reason: string } {
    return this.ready ? { ready: true, reason: 'state open, partition assigned' } : { ready: false, reason: 'starting' }
  }

  learners (): Array<{ partition: number, learner: ChurnLearner }> {
    return this.task.learner === null ? [] : [{ partition: 0, learner: this.task.learner }]
  }

  async locate (userId: string): Promise<UserLocation> {
    return { local: true, state: this.task.cache.peekSync(userId), streamTime: this.task.watermark, learner: this.task.learner, ruleSlots: this.task.ruleSlots }
  }
}
