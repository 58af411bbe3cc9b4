#!/usr/bin/env -S node --max-semi-space-size=64
// The `ebb` command. Runs the compiled CLI (built by `npm ci` through the `prepare` script).
// A young generation of up to 64 MB a semi-space instead of 16: Ebb's records (a fetched batch,
// a commit's changelog) live a little longer than V8's default nursery, and its collections
// paused the event loop every few hundred ms (README, "Node flags"). Launch it as
// `node --max-semi-space-size=64 bin/ebb.js` where the line above is not used.
// Signals are held before anything else loads (src/cli/signals.ts): a SIGTERM while the CLI's
// modules load goes to the command once it has started, instead of killing the process.
import { holdSignals } from '../dist/src/cli/signals.js'
holdSignals()
const { main } = await import('../dist/src/cli/main.js')
main(process.argv.slice(2)).then((code) => {
  process.exitCode = code
  // Whatever a command left open (a client socket, a timer of a library) gets a moment to close;
  // then the process exits: a command that returned must never linger with nothing to stop it.
  setTimeout(() => { process.exit(code) }, 3000).unref()
})
