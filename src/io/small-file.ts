import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs'

/** The most a configuration file (run config, topology, plans, model, TLS files) may hold. */
export const CONFIG_FILE_BYTES = 16 * 1024 * 1024
/** how long a pipe may stay silent before the read gives up */
const PIPE_SILENCE_MS = 10_000
const pause = new Int32Array(new SharedArrayBuffer(4))

/**
 * Reads a file that must be small, whatever the path names: a regular file, or a pipe (`--config
 * <(...)`), never more than `maxBytes`. A plain `readFileSync` on /dev/zero fills memory until the
 * process aborts, and on a FIFO nobody writes to blocks this thread for good, signals included;
 * here the first is refused at the limit, and the second after `silenceMs` without data (opened
 * non-blocking, a FIFO reads as ended while it has no writer, so before any data that is waited
 * out: a writer may be about to open it). Throws an Error whose message says what is wrong with
 * the file (callers wrap it in their own error code).
 */
export function readSmallFile (file: string, maxBytes = CONFIG_FILE_BYTES, silenceMs = PIPE_SILENCE_MS): Buffer {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK)
  try {
    const st = fstatSync(fd)
    if (st.isDirectory()) throw new Error('it is a directory')
    if (st.isFile() && st.size > maxBytes) throw new Error(`it holds ${st.size} bytes, more than the ${maxBytes} such a file may hold`)
    const chunks: Buffer[] = []
    const buf = Buffer.allocUnsafe(64 * 1024)
    let total = 0
    let lastData = Date.now()
    for (;;) {
      let n: number
      try {
        n = readSync(fd, buf, 0, buf.length, null)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err
        if (Date.now() - lastData > silenceMs) throw new Error(`nothing came from it for ${silenceMs / 1000} s (a pipe nobody writes to?)`)
        Atomics.wait(pause, 0, 0, 10)
        continue
      }
      if (n === 0 && total === 0 && st.isFIFO()) {
        if (Date.now() - lastData > silenceMs) throw new Error(`nothing came from it for ${silenceMs / 1000} s (a pipe nobody writes to?)`)
        Atomics.wait(pause, 0, 0, 10)
        continue
      }
      if (n === 0) break
      total += n
      if (total > maxBytes) throw new Error(`it holds more than the ${maxBytes} bytes such a file may hold (a device such as /dev/zero?)`)
      chunks.push(Buffer.from(buf.subarray(0, n)))
      lastData = Date.now()
    }
    return Buffer.concat(chunks)
  } finally {
    closeSync(fd)
  }
}
