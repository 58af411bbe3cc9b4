import { describe, expect, it } from 'vitest'
import type { AdminPort, OpenTransaction } from '../../src/kafka/client.js'
import { HangingTransactionWatch, OutputWatch } from '../../src/kafka/hanging-watch.js'

/** An admin port over one topic's partitions: their stable offsets, high watermarks and open transactions. */
function fakeAdmin (): { admin: AdminPort, stable: Map<number, bigint>, high: Map<number, bigint>, open: Map<number, OpenTransaction[]>, aborted: string[], asked: number[] } {
  const stable = new Map<number, bigint>()
  const high = new Map<number, bigint>()
  const open = new Map<number, OpenTransaction[]>()
  const aborted: string[] = []
  const asked: number[] = []
  const admin = {
    endOffsets: async () => new Map(stable),
    highWatermarks: async () => new Map(high),
    openTransactions: async (_topic: string, partition: number) => { asked.push(partition); return open.get(partition) ?? [] },
    abortTransaction: async (topic: string, partition: number, t: OpenTransaction) => {
      aborted.push(`${topic}/${partition}@${t.startOffset}`)
      open.set(partition, (open.get(partition) ?? []).filter((x) => x !== t))
    }
  } as unknown as AdminPort
  return { admin, stable, high, open, aborted, asked }
}

const txn = (startOffset: bigint, coordinatorHasIt: boolean, producerEpoch = 0): OpenTransaction => ({ producerId: 42n, producerEpoch, coordinatorEpoch: -1, startOffset, transactionalId: coordinatorHasIt ? 'ebb-0' : null, coordinatorHasIt })

describe('HangingTransactionWatch', () => {
  it('aborts a transaction only once the same one has hung for the timeout, and never one a coordinator owns', async () => {
    let now = 1_000_000
    const f = fakeAdmin()
    const watch = new HangingTransactionWatch(() => f.admin, 60_000, () => now)
    f.open.set(0, [txn(5n, false), txn(9n, true)])
    expect(await watch.abortHung('t', 0)).toBe(false) // first seen: noted
    now += 59_999
    expect(await watch.abortHung('t', 0)).toBe(false)
    now += 1
    expect(await watch.abortHung('t', 0)).toBe(true)
    expect(f.aborted).toEqual(['t/0@5'])
    expect([...watch.aborted]).toEqual([['t', 1]])
    now += 3_600_000
    expect(await watch.abortHung('t', 0)).toBe(false) // the owned one stays, whatever its age
    expect(f.aborted).toEqual(['t/0@5'])
  })

  it('starts over for a transaction that is not the one seen (another epoch or start offset), and forgets one that ended', async () => {
    let now = 0
    const f = fakeAdmin()
    const watch = new HangingTransactionWatch(() => f.admin, 10_000, () => now)
    f.open.set(0, [txn(5n, false, 0)])
    await watch.abortHung('t', 0)
    now += 10_000
    f.open.set(0, [txn(5n, false, 1)]) // the producer's next epoch: another transaction
    expect(await watch.abortHung('t', 0)).toBe(false)
    f.open.set(0, []) // it ended by itself
    now += 10_000
    await watch.abortHung('t', 0)
    f.open.set(0, [txn(5n, false, 1)]) // back: seen anew
    expect(await watch.abortHung('t', 0)).toBe(false)
    now += 9_999
    expect(await watch.abortHung('t', 0)).toBe(false)
    now += 1
    expect(await watch.abortHung('t', 0)).toBe(true)
    expect(f.aborted).toEqual(['t/0@5'])
  })

  it('starts the clock again when the partition was not looked at for longer than maxGapMs (not seen hanging all along)', async () => {
    let now = 0
    const f = fakeAdmin()
    const watch = new HangingTransactionWatch(() => f.admin, 10_000, () => now)
    f.open.set(0, [txn(5n, false)])
    await watch.abortHung('t', 0)
    now += watch.maxGapMs + 1 // e.g. the partition was elsewhere meanwhile
    expect(await watch.abortHung('t', 0)).toBe(false)
    now += 9_999
    expect(await watch.abortHung('t', 0)).toBe(false)
    now += 1
    expect(await watch.abortHung('t', 0)).toBe(true)
  })

  it('does nothing with a timeout of 0', async () => {
    const f = fakeAdmin()
    const watch = new HangingTransactionWatch(() => f.admin, 0, () => 0)
    f.open.set(0, [txn(5n, false)])
    expect(await watch.abortHung('t', 0)).toBe(false)
    expect(f.asked).toEqual([])
  })
})

describe('OutputWatch', () => {
  it('looks only at partitions whose stable offset stayed behind the high watermark between two checks', async () => {
    const f = fakeAdmin()
    const watch = new OutputWatch(() => f.admin, new HangingTransactionWatch(() => f.admin, 1, () => 0), ['out'])
    f.stable.set(0, 10n); f.high.set(0, 10n) // caught up
    f.stable.set(1, 3n); f.high.set(1, 8n) // behind, and stays
    f.stable.set(2, 4n); f.high.set(2, 9n) // behind, but moves
    await watch.check()
    expect(f.asked).toEqual([]) // one look says nothing: a commit may be in flight
    f.stable.set(2, 7n); f.high.set(2, 12n)
    await watch.check()
    expect(f.asked).toEqual([1])
    await watch.check()
    expect(f.asked).toEqual([1, 1, 2]) // partition 2 stayed at 7 since the last check
  })
})
