export * from './signals.js'
export { allSignals, signalValue, SIGNALS, SIGNALS_BY_NAME, SignalId } from './registry.js'
