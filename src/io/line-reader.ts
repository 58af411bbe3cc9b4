import { isUtf8 } from 'node:buffer'
import { createHash, type Hash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { EbbError, Errors } from '../errors.js'

/** a line holding nothing but JSON whitespace (RFC 8259: space, tab, line feed, carriage return) */
const JSON_BLANK = /^[ \t\r]*$/

/** A line that never reaches the decoder: too long, or not UTF-8. Its bytes go to the dead letters. */
export interface RejectedLine {
  /** index in the batch's lines (whose entry is '') */
  index: number
  reason: 'too_large' | 'undecodable'
  /** the line's bytes, exactly (or their first DEAD_LETTER_PREFIX bytes, when too large) */
  raw: Buffer
  /** the line's length in bytes, and the SHA-256 of all of them */
  bytes: number
  sha256: string
  /** the reader's limit (for the message) */
  limit: number
}

export interface LineBatchData {
  lines: string[]
  lineNumbers: number[]
  rejected: RejectedLine[]
  /** whitespace-only lines skipped since the previous batch (not records, but counted) */
  blank: number
  /** bytes of the file read so far (up to the end of the chunk this batch ends in): progress */
  bytesRead: number
}

/** Default longest line (bytes): far beyond any real event, far below what a string can hold. */
export const DEFAULT_MAX_LINE_BYTES = 1 << 20
/** The bytes of a too-large line kept in its dead letter. */
export const DEAD_LETTER_PREFIX = 4096

/**
 * Reads a JSON Lines file as batches of lines with their 1-based line numbers, in one pass over
 * its bytes (linear in the file, whatever the line lengths). Whitespace-only lines are not records:
 * counted, not passed on. A line longer than `maxLineBytes` is never built in memory: its first
 * bytes, its length and its SHA-256 become a `too_large` rejection. A line that is not valid UTF-8
 * is an `undecodable` rejection with its exact bytes (decoding would replace them and could make
 * two different ids one). Every other line reaches the engine.
 */
export async function * readLineBatches (file: string, batchSize: number, maxLineBytes = DEFAULT_MAX_LINE_BYTES): AsyncGenerator<LineBatchData> {
  const stream = createReadStream(file, { highWaterMark: 1 << 20 })
  let lines: string[] = []
  let numbers: number[] = []
  let rejected: RejectedLine[] = []
  let blank = 0
  let bytesRead = 0
  let lineNo = 0
  // the line being read: its pieces while it is short enough, else a prefix and a running hash
  let parts: Buffer[] = []
  let partBytes = 0
  let hash: Hash | null = null
  let prefix: Buffer = Buffer.alloc(0)

  const reject = (reason: RejectedLine['reason'], raw: Buffer, bytes: number, sha256: string): void => {
    lineNo++
    rejected.push({ index: lines.length, reason, raw, bytes, sha256, limit: maxLineBytes })
    lines.push('')
    numbers.push(lineNo)
  }
  const finish = (last: Buffer): void => {
    if (hash !== null) {
      hash.update(last)
      reject('too_large', prefix, partBytes + last.length, hash.digest('hex'))
      hash = null
      parts = []
      partBytes = 0
      return
    }
    let line = parts.length === 0 ? last : Buffer.concat([...parts, last], partBytes + last.length)
    parts = []
    partBytes = 0
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1)
    if (line.length > maxLineBytes) {
      reject('too_large', Buffer.from(line.subarray(0, DEAD_LETTER_PREFIX)), line.length, createHash('sha256').update(line).digest('hex'))
      return
    }
    if (!isUtf8(line)) {
      reject('undecodable', Buffer.from(line), line.length, createHash('sha256').update(line).digest('hex'))
      return
    }
    const text = line.toString('utf8')
    lineNo++
    // Blank by JSON's own whitespace (space, tab, CR): a line of other white space (a no-break
    // space, a form feed, a lone byte order mark) is a record that breaks the contract, dead-lettered
    // as one, not skipped unseen.
    if (JSON_BLANK.test(text)) { blank++; return }
    lines.push(text)
    numbers.push(lineNo)
  }
  const keep = (piece: Buffer): void => {
    if (piece.length === 0) return
    if (hash !== null) { hash.update(piece); partBytes += piece.length; return }
    parts.push(piece)
    partBytes += piece.length
    if (partBytes > maxLineBytes) {
      // Too long: from here on only its first bytes, its length and its hash are kept.
      const h = createHash('sha256')
      for (const p of parts) h.update(p)
      hash = h
      prefix = Buffer.from(Buffer.concat(parts, Math.min(partBytes, DEAD_LETTER_PREFIX + 1)).subarray(0, DEAD_LETTER_PREFIX))
      parts = []
    }
  }

  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      bytesRead += chunk.length
      let start = 0
      for (;;) {
        const nl = chunk.indexOf(0x0a, start)
        if (nl < 0) break
        finish(chunk.subarray(start, nl))
        start = nl + 1
        if (lines.length >= batchSize) {
          yield { lines, lineNumbers: numbers, rejected, blank, bytesRead }
          lines = []
          numbers = []
          rejected = []
          blank = 0
        }
      }
      keep(chunk.subarray(start))
    }
  } catch (err) {
    throw new EbbError(Errors.INPUT_NOT_FOUND, file, (err as Error).message)
  }
  if (partBytes > 0 || hash !== null) finish(Buffer.alloc(0))
  if (lines.length > 0 || blank > 0) yield { lines, lineNumbers: numbers, rejected, blank, bytesRead }
}
