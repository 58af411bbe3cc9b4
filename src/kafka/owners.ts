import type { AdminPort, KafkaClient } from './client.js'

/**
 * Who holds which input partition, for the interactive query (GET /users/:id): each instance
 * joins the group with the client id `<instanceId>@<its API URL>`, so the group description
 * names every member's API. Cached for two seconds; a rebalance is seen at the next refresh.
 */
export class PartitionOwners {
  private cache: { at: number, owners: Map<number, string> } | undefined

  constructor (private readonly client: KafkaClient, private readonly admin: () => AdminPort | undefined, private readonly groupId: string, private readonly topic: string) {}

  /** The input partition of a user: the producer's murmur2 partitioning of the key (Java-compatible). */
  partitionOf (userId: string, partitions: number): number {
    return this.client.partitionOf(this.topic, userId, partitions)
  }

  /** The API URL of the member holding `partition`, or undefined when none does (yet). */
  async ownerOf (partition: number): Promise<string | undefined> {
    const now = Date.now()
    if (this.cache === undefined || now - this.cache.at > 2000) {
      const admin = this.admin()
      if (admin === undefined) return undefined
      const owners = new Map<number, string>()
      for (const m of await admin.groupAssignments(this.groupId, this.topic)) {
        const at = m.clientId.indexOf('@')
        if (at < 0) continue
        for (const p of m.partitions) owners.set(p, m.clientId.slice(at + 1))
      }
      this.cache = { at: now, owners }
    }
    return this.cache.owners.get(partition)
  }
}
