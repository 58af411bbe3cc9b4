#!/usr/bin/env node
// The `ebb` command. Runs the compiled CLI (built by `npm ci` through the `prepare` script).
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
