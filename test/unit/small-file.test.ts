import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { readSmallFile } from '../../src/io/small-file.js'
import { topologyPath } from '../../src/paths.js'
import { loadTopology } from '../../src/rules/topology.js'
import { tempDir } from '../helpers.js'

/** Configuration files named by the user may name anything: a device, a FIFO, a directory. */
describe('readSmallFile', () => {
  const tmp = tempDir('ebb-small-file-')
  afterAll(() => { tmp.cleanup() })

  it('reads a regular file, and refuses one over the limit before reading it', () => {
    const f = join(tmp.dir, 'a.yaml')
    writeFileSync(f, 'x'.repeat(1000))
    expect(readSmallFile(f).length).toBe(1000)
    expect(() => readSmallFile(f, 999)).toThrow(/holds 1000 bytes, more than the 999/)
  })

  it('stops at the limit on an endless device instead of filling memory', () => {
    const t0 = Date.now()
    expect(() => readSmallFile('/dev/zero', 1 << 20)).toThrow(/more than the 1048576 bytes .*\/dev\/zero/)
    expect(Date.now() - t0).toBeLessThan(5000)
  })

  it('refuses a directory', () => {
    expect(() => readSmallFile(tmp.dir)).toThrow(/it is a directory/)
  })

  it('gives up on a FIFO nobody writes to after a bounded wait, and reads one whose writer opens it later to its end', async () => {
    const fifo = join(tmp.dir, 'fifo')
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0)
    const t0 = Date.now()
    expect(() => readSmallFile(fifo, 1 << 20, 300)).toThrow(/nothing came from it for 0\.3 s/)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300)
    expect(Date.now() - t0).toBeLessThan(3000)
    // a writer that opens the FIFO (once a reader has), waits, then writes and closes; the read
    // may open the FIFO before the writer has it open: it waits for the first data
    const writer = spawn('bash', ['-c', `exec 3>${fifo}; sleep 0.3; printf 'hello' >&3; exec 3>&-`])
    const exited = new Promise((resolve) => writer.on('exit', resolve))
    expect(readSmallFile(fifo, 1 << 20, 10_000).toString()).toBe('hello')
    await exited
  })

  it('a topology naming /dev/zero for its plans is refused (exit 2), not read until memory runs out', () => {
    const f = join(tmp.dir, 'topology.yaml')
    const text = readFileSync(topologyPath('default.yaml'), 'utf8').replace(/^( +plans:) \S+/m, '$1 /dev/zero')
    expect(text).toContain('plans: /dev/zero')
    writeFileSync(f, text)
    expect(() => loadTopology(f)).toThrow(expect.objectContaining({ code: 'EBB_INPUT_NOT_FOUND', message: expect.stringMatching(/\/dev\/zero: it holds more than/) }))
  })
})
