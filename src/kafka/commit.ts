import type { EngineObserver } from '../runtime/partition-task.js'
import type { BatchSendResult, GroupConsumerPort, OutRecord, ProducerPort, SendPiece } from './client.js'
import { changelogTopic, type RunConfig, transactionTimeoutMs } from './config.js'
import type { OutputMessage } from './wire.js'

/** how long a failed commit waits for its transaction's abort before it reports the failure */
const ABORT_WAIT_MS = 1000

/** A record batch per partition and request stays under this (a broker refuses batches above max.message.bytes, 1 MB by default). */
const PIECE_BYTES = 512 * 1024
/**
 * With pipelinedCommits: the client encodes a request in one go, on the event loop the
 * partitions process on, so a pipelined commit sends smaller ones (~128 KB a partition: ~600
 * changelog records, a few milliseconds), more of them; the commit takes longer, the stream
 * waits less. Safe because a commit is one transaction whatever its number of requests.
 */
const PIPELINED_PIECE_BYTES = 128 * 1024

/** What one commit makes durable: the outputs of every partition, each partition's changelog records, and the input offsets. */
export interface CommitContent {
  outputs: { alerts: OutputMessage[], tasks: OutputMessage[], outcomes: OutputMessage[], deadLetters: OutputMessage[] }
  /** changelog partition p holds input partition p's store */
  changelogs: Array<{ partition: number, records: OutputMessage[] }>
  /** the next input offset to read, per input partition that processed records */
  offsets: Array<{ partition: number, offset: string }>
}

interface Piece { topic: string, partition?: number, records: OutRecord[] }

/**
 * Outputs and changelog records cut into pieces of at most PIECE_BYTES (PIPELINED_PIECE_BYTES), in
 * rounds of at most one piece per topic (or changelog partition): one request per round.
 */
function sendRounds (c: RunConfig, outputs: CommitContent['outputs'], changelogs: CommitContent['changelogs']): Piece[][] {
  const pieceBytes = c.pipelinedCommits ? PIPELINED_PIECE_BYTES : PIECE_BYTES
  const pieces: Piece[] = []
  const addPieces = (topic: string, list: OutputMessage[], partition?: number): void => {
    let cur: OutRecord[] = []
    let bytes = 0
    for (const m of list) {
      const size = (m.key?.length ?? 0) + (m.value?.length ?? 0) + 32
      if (cur.length > 0 && bytes + size > pieceBytes) { pieces.push({ topic, partition, records: cur }); cur = []; bytes = 0 }
      cur.push(partition === undefined ? { key: m.key, value: m.value } : { key: m.key, value: m.value, partition })
      bytes += size
    }
    if (cur.length > 0) pieces.push({ topic, partition, records: cur })
  }
  addPieces(c.topics.alerts, outputs.alerts)
  addPieces(c.topics.tasks, outputs.tasks)
  addPieces(c.topics.outcomes, outputs.outcomes)
  addPieces(c.topics.deadLetters, outputs.deadLetters)
  const cl = changelogTopic(c)
  for (const x of changelogs) addPieces(cl, x.records, x.partition)
  const rounds: Piece[][] = []
  const seen = new Map<string, number>()
  for (const piece of pieces) {
    const key = piece.partition === undefined ? piece.topic : `${piece.topic}/${piece.partition}`
    const round = seen.get(key) ?? 0
    seen.set(key, round + 1)
    const list = rounds[round] ?? []
    rounds[round] = list
    list.push(piece)
  }
  return rounds
}

/** Sends the rounds one after the other; notes, per changelog partition, the offset after its last record. */
async function sendInRounds (rounds: Piece[][], sender: (pieces: SendPiece[]) => Promise<BatchSendResult[]>, changelogEnd: Map<number, bigint>): Promise<void> {
  for (const round of rounds) {
    const sent = await sender(round.map((p) => ({ topic: p.topic, records: p.records }))).catch((err: unknown) => {
      // which topics the refused request wrote to, for the error a refusal becomes (client-errors.ts)
      if (err !== null && typeof err === 'object') (err as { ebbTopics?: string[] }).ebbTopics = [...new Set(round.map((p) => p.topic))]
      throw err
    })
    for (const piece of round) {
      if (piece.partition === undefined) continue
      const base = sent.find((m) => m.topic === piece.topic && m.partition === piece.partition)?.baseOffset
      if (base !== undefined) changelogEnd.set(piece.partition, base + BigInt(piece.records.length))
    }
  }
}

/**
 * At-least-once: outputs sent as soon as they are made, outside any commit (the commit that
 * carries their input offsets waits for them first: sendEarly in runner.ts).
 */
export async function sendOutputs (outputs: CommitContent['outputs'], io: { config: RunConfig, producer: ProducerPort }): Promise<void> {
  await sendInRounds(sendRounds(io.config, outputs, []), async (round) => await io.producer.sendBatch(round), new Map())
}

/**
 * The commit protocol: writes one commit's content and returns, per changelog partition, the
 * offset after the last record written there (the local store records it as its changelog
 * position). One Kafka transaction carries the outputs, the changelog records and the consumer
 * offsets (sendOffsets), and either all of it becomes visible to read_committed readers or none;
 * on failure it is aborted and the error thrown.
 *
 * At-least-once uses the same transaction without the outputs: the runner has sent them already,
 * as they were made, and waited for them, so a crash before the commit repeats them (their ids
 * are deterministic: consumers deduplicate on them). Its changelog is transactional all the same.
 * Sent outside a transaction, a commit cut into several requests (over 512 KB a partition) could
 * be torn by a kill: part of its states in the changelog, not the offsets, and the input replayed
 * on top of them. An at-least-once chaos run lost an alert and a task that way (docs/kafka.md).
 *
 * Records are cut into pieces of at most ~512 KB (128 KB pipelined) and sent in rounds: one request per round
 * instead of one per piece (each a round trip, in a transaction also an AddPartitionsToTxn), a
 * round holding at most one piece per topic, or per changelog partition, so no partition's record
 * batch grows past a piece.
 */
export async function writeCommit (content: CommitContent, io: { config: RunConfig, producer: ProducerPort, consumer: GroupConsumerPort, observer?: EngineObserver }): Promise<Map<number, bigint>> {
  const c = io.config
  const rounds = sendRounds(c, content.outputs, content.changelogs)
  const changelogEnd = new Map<number, bigint>()
  const t0 = performance.now()
  // Bounded by the transaction timeout: a transaction still open after it is aborted by the
  // coordinator, so waiting longer (the client's retries nest: a send's metadata refresh
  // retries inside each retry of the send) cannot make it commit, and would hold up the
  // runner's close in an outage. Giving up is safe: the next producer of this transactional id
  // fences this one, and the work is redone from the committed offsets.
  const limit = transactionTimeoutMs(c)
  let timer: NodeJS.Timeout | undefined
  /**
   * Set when the timeout gives up on the transaction while one of its steps is still in flight
   * (the client retries inside it). The steps after it are then never sent, and no abort is sent
   * beside it. An EndTxn(abort) that lands while the client is still between steps ends the
   * transaction without bumping the producer's epoch. The step in flight behind it then starts
   * a new transaction of the same producer: an AddOffsetsToTxn and a TxnOffsetCommit after it
   * leave the input offsets pending in the group, under the producer id, without the changelog
   * records they go with. The group coordinator keeps pending offsets by producer id. This
   * producer's next committed transaction therefore commits them, even one that no longer
   * holds the partition (a race in Kafka's protocol; docs/kafka.md). Without the abort, the transaction
   * stays open until this transactional id's next producer starts (it bumps the epoch, fencing
   * every late request of this one) or the broker aborts it at its timeout (with a bump too).
   */
  let abandoned = false
  const step = (): void => { if (abandoned) throw new Error('the transaction was given up at its timeout') }
  const overdue = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { abandoned = true; reject(new Error(`the transaction did not complete within its timeout (${limit / 1000} s)`)) }, limit)
    timer.unref()
  })
  const txn = await Promise.race([io.producer.transaction(), overdue]).catch((err: unknown) => { clearTimeout(timer); throw err })
  try {
    await Promise.race([(async () => {
      await sendInRounds(rounds, async (round) => { step(); return await txn.sendBatch(round) }, changelogEnd)
      step()
      if (content.offsets.length > 0) await txn.sendOffsets(io.consumer, content.offsets)
      step()
      await txn.commit()
    })(), overdue])
    clearTimeout(timer)
    io.observer?.transactionSeconds?.((performance.now() - t0) / 1000)
  } catch (err) {
    clearTimeout(timer)
    // A step failed and the client has finished with it: aborting is safe, and a courtesy,
    // bounded. When the broker is gone it would fail after the client's own retries, holding
    // up the runner's close. A transaction left open is aborted by the broker after the
    // transaction timeout, or at once when this transactional id's next producer starts (it
    // fences the old epoch). Given up at the timeout, a step may still be in flight: no abort
    // (above).
    if (!abandoned) await Promise.race([txn.abort().catch(() => {}), new Promise((resolve) => setTimeout(resolve, ABORT_WAIT_MS).unref())])
    throw err
  }
  return changelogEnd
}
