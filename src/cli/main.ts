import { EbbError, Errors, isEbbError } from '../errors.js'
import { badLogLevel, log, LOG_LEVELS } from '../log.js'
import { commandHelp, COMMANDS, generalHelp, version } from './commands.js'
import { holdSignals, releaseSignals } from './signals.js'

/** Runs one command; returns the exit code. Errors become one line that says what to fix. */
export async function main (argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  // A SIGTERM while the command's modules load is held, and given to the command once it has
  // started (signals.ts): `ebb run` then stops cleanly instead of being killed by it.
  holdSignals()
  const started = <T>(p: Promise<T>): Promise<T> => { releaseSignals(); return p }
  try {
    if (badLogLevel !== null && command !== undefined && !['help', '--help', '-h', '--version', 'version'].includes(command)) {
      throw new EbbError(Errors.CONFIG_INVALID, 'EBB_LOG_LEVEL', `"${badLogLevel}" is not a log level: use one of ${LOG_LEVELS.join(', ')} (or unset it for warn)`)
    }
    switch (command) {
      case 'replay': return await started((await import('./replay.js')).replay(rest))
      case 'run': return await started((await import('./run.js')).run(rest))
      case 'check': return await started((await import('./check.js')).check(rest))
      case 'tail': return await started((await import('./tail.js')).tail(rest))
      case 'reset': return await started((await import('./reset.js')).reset(rest))
      case 'simulate': return await started((await import('./simulate.js')).simulate(rest))
      case 'demo': return await started((await import('./demo.js')).demo(rest))
      case 'train': return await started((await import('./train.js')).train(rest))
      case 'eval': return await started((await import('./eval.js')).evaluate(rest))
      case 'bench': return await started((await import('../../bench/run.js')).runBench(rest))
      case 'help': case '--help': case '-h': {
        const topic = rest[0]
        if (topic === undefined) { process.stdout.write(generalHelp()); return 0 }
        if (!Object.hasOwn(COMMANDS, topic)) {
          process.stderr.write(`ebb help: unknown command "${topic}" (commands: ${Object.keys(COMMANDS).join(', ')})\n`)
          return 2
        }
        process.stdout.write(commandHelp(COMMANDS[topic as keyof typeof COMMANDS]))
        return 0
      }
      case undefined:
        process.stderr.write(generalHelp())
        return 2
      case '--version': case 'version':
        process.stdout.write(`ebb ${version()}\n`)
        return 0
      default:
        process.stderr.write(`ebb: unknown command "${command}" (commands: ${Object.keys(COMMANDS).join(', ')}). \`ebb help\` says what each does.\n`)
        return 2
    }
  } catch (err) {
    if (isEbbError(err)) {
      if (err.exitCode === 1) log.error({ code: err.code, retriable: err.retriable, command }, err.message)
      // One prefix: messages written for a command may name it already.
      let message = err.message.startsWith(`ebb ${command ?? ''}: `) ? err.message.slice(`ebb ${command ?? ''}: `.length) : err.message
      if (err.code === 'EBB_USAGE' && !message.includes('--help') && command !== undefined && Object.hasOwn(COMMANDS, command)) message += `. \`ebb ${command} --help\` lists its options`
      process.stderr.write(`ebb ${command ?? ''}: ${message} [${err.code}]\n`)
      return err.exitCode
    }
    log.error({ err, command }, 'unexpected failure')
    process.stderr.write(`ebb ${command ?? ''}: unexpected failure: ${(err as Error).message}\n`)
    return 1
  } finally {
    // (a command that never started: help, a module that failed to load)
    releaseSignals()
  }
}
