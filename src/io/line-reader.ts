import { createReadStream } from 'node:fs'
import { EbbError, Errors } from '../errors.js'

/**
 * Reads a JSON Lines file as batches of lines with their 1-based line numbers. Empty lines
 * (whitespace only) are not records and are skipped; every other line reaches the engine, so a
 * broken one goes to the dead letters with its line number.
 */
export async function * readLineBatches (file: string, batchSize: number): AsyncGenerator<{ lines: string[], lineNumbers: number[] }> {
  const stream = createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 })
  let rest = ''
  let lineNo = 0
  let lines: string[] = []
  let numbers: number[] = []
  try {
    for await (const chunk of stream as AsyncIterable<string>) {
      const text = rest + chunk
      let start = 0
      for (;;) {
        const nl = text.indexOf('\n', start)
        if (nl < 0) break
        lineNo++
        let line = text.slice(start, nl)
        if (line.endsWith('\r')) line = line.slice(0, -1)
        start = nl + 1
        if (line.trim().length === 0) continue
        lines.push(line)
        numbers.push(lineNo)
        if (lines.length >= batchSize) {
          yield { lines, lineNumbers: numbers }
          lines = []
          numbers = []
        }
      }
      rest = text.slice(start)
    }
  } catch (err) {
    throw new EbbError(Errors.INPUT_NOT_FOUND, file, (err as Error).message)
  }
  if (rest.trim().length > 0) { lines.push(rest.endsWith('\r') ? rest.slice(0, -1) : rest); numbers.push(lineNo + 1) }
  if (lines.length > 0) yield { lines, lineNumbers: numbers }
}
