import { isEbbError } from '../errors.js'
import { log } from '../log.js'
import { REPLAY_HELP } from './replay.js'

const HELP = `ebb — real-time churn early-warning engine

Commands:
  ebb demo        embedded mode, no Kafka: simulate a population, run it through the engine
                  with RocksDB state, print progress and a summary (= npm start)
  ebb run         production mode on Kafka (--config F)
  ebb replay      deterministic file-to-file run (--in events.jsonl --out DIR)
  ebb check       verify a replay's recall tasks keep channel rules, consent, caps, quiet hours
  ebb simulate    write a synthetic population with ground-truth churn labels
  ebb train       fit the churn model on labelled events (--in F --derive-labels --out model.json)
  ebb eval        AUC, precision, recall, alert volume and lead time of the model against inactive_7d
  ebb bench       the benchmark suite (ebb bench core)
  ebb help [cmd]  this text, or a command's options

Exit codes: 0 success, 2 bad usage or configuration, 1 runtime failure.

${REPLAY_HELP}`


/** Runs one command; returns the exit code. Errors become one line that says what to fix. */
export async function main (argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case 'replay': return await (await import('./replay.js')).replay(rest)
      case 'run': return await (await import('./run.js')).run(rest)
      case 'check': return await (await import('./check.js')).check(rest)
      case 'simulate': return await (await import('./simulate.js')).simulate(rest)
      case 'demo': return await (await import('./demo.js')).demo(rest)
      case 'train': return await (await import('./train.js')).train(rest)
      case 'eval': return await (await import('./eval.js')).evaluate(rest)
      case 'bench': return await (await import('../../bench/run.js')).runBench(rest)
      case undefined: case 'help': case '--help': case '-h':
        process.stdout.write(HELP + '\n')
        return command === undefined ? 2 : 0
      case '--version': case 'version':
        process.stdout.write('ebb 0.1.0\n')
        return 0
      default:
        process.stderr.write(`ebb: unknown command "${command}". Run \`ebb help\` for the commands.\n`)
        return 2
    }
  } catch (err) {
    if (isEbbError(err)) {
      if (err.exitCode === 1) log.error({ code: err.code, retriable: err.retriable, command }, err.message)
      process.stderr.write(`ebb ${command ?? ''}: ${err.message} [${err.code}]\n`)
      return err.exitCode
    }
    log.error({ err, command }, 'unexpected failure')
    process.stderr.write(`ebb ${command ?? ''}: unexpected failure: ${(err as Error).message}\n`)
    return 1
  }
}
