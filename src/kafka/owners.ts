import { type Admin, AssignerProtocol, Partitioners, type PartitionMetadata } from 'kafkajs'

/**
 * Who holds which input partition, for the interactive query (GET /users/:id): each instance
 * joins the group with the client id `<instanceId>@<its API URL>`, so the group description
 * names every member's API. Cached for two seconds; a rebalance is seen at the next refresh.
 */
export class PartitionOwners {
  private cache: { at: number, owners: Map<number, string> } | undefined
  private readonly partitioner = Partitioners.DefaultPartitioner()
  private metadata: PartitionMetadata[] = []

  constructor (private readonly admin: () => Admin | undefined, private readonly groupId: string, private readonly topic: string) {}

  /** The input partition of a user: the producer's murmur2 partitioning of the key (Java-compatible). */
  partitionOf (userId: string, partitions: number): number {
    if (this.metadata.length !== partitions) {
      this.metadata = Array.from({ length: partitions }, (_, i) => ({ partitionErrorCode: 0, partitionId: i, leader: 1, replicas: [1], isr: [1] }))
    }
    return this.partitioner({ topic: this.topic, partitionMetadata: this.metadata, message: { key: userId, value: null } })
  }

  /** The API URL of the member holding `partition`, or undefined when none does (yet). */
  async ownerOf (partition: number): Promise<string | undefined> {
    const now = Date.now()
    if (this.cache === undefined || now - this.cache.at > 2000) {
      const admin = this.admin()
      if (admin === undefined) return undefined
      const owners = new Map<number, string>()
      const { groups } = await admin.describeGroups([this.groupId])
      for (const m of groups[0]?.members ?? []) {
        const at = m.clientId.indexOf('@')
        if (at < 0 || m.memberAssignment.length === 0) continue
        const assignment = AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
        for (const p of assignment?.assignment[this.topic] ?? []) owners.set(p, m.clientId.slice(at + 1))
      }
      this.cache = { at: now, owners }
    }
    return this.cache.owners.get(partition)
  }
}
