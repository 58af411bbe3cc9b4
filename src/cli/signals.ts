/**
 * Signals that arrive while a command's modules load. `ebb run` imports fastify, the Kafka
 * client and RocksDB before it can install its SIGTERM handler (about a second); with no
 * handler, Node's default ends the process by the signal. An orchestrator that stops a process
 * it has just started (a rolling update, a supervisor, a test) then saw it killed, not stopped.
 * So bin/ebb.js holds SIGINT and SIGTERM from its first line, and `main` gives them to the
 * command once the command has started (`ebb run` stops cleanly, exit 0); a command without
 * handlers of its own gets the default, as before: the signal ends the process.
 *
 * The listener stays after the release and forwards: a signal that libuv caught while a
 * synchronous stretch kept the event loop busy is dispatched later, and with no listener by then
 * Node drops it (measured: a replay sent SIGTERM 200 ms after its start ran to its end).
 */
const SIGNALS = ['SIGINT', 'SIGTERM'] as const
const held: NodeJS.Signals[] = []
let installed = false
let holding = false

function listener (signal: NodeJS.Signals): void {
  if (holding) { held.push(signal); return }
  // Released: the command's own handlers (if any) run beside this one; alone, the default.
  if (process.listenerCount(signal) > 1) return
  process.off(signal, listener)
  process.kill(process.pid, signal)
}

/** From here until releaseSignals, SIGINT and SIGTERM are held (bin/ebb.js calls it first, main again). */
export function holdSignals (): void {
  holding = true
  if (installed) return
  installed = true
  for (const s of SIGNALS) process.on(s, listener)
}

/** The command has started (its handlers, if any, are in place): the held signals go to them. */
export function releaseSignals (): void {
  if (!holding) return
  holding = false
  for (const s of held.splice(0)) process.emit(s as 'SIGTERM', s)
}
