import { BgNbdPopulation } from './bgnbd.js'
import { CadencePopulation } from './cadence.js'
import { FadesPopulation } from './fades.js'
import { HabitsPopulation } from './habits.js'
import { MixedPopulation } from './mixed.js'
import type { Population, PopulationOptions } from './population.js'
import { Simulator } from './simulator.js'

/** The population generators of `ebb simulate --population`, each its own generative code. */
export const POPULATION_KINDS = ['archetypes', 'habits', 'fades', 'cadence', 'bgnbd', 'mixed'] as const
export type PopulationKind = typeof POPULATION_KINDS[number]

export function isPopulationKind (k: string): k is PopulationKind {
  return (POPULATION_KINDS as readonly string[]).includes(k)
}

export function makePopulation (kind: PopulationKind, opts: PopulationOptions & { noise?: boolean }): Population {
  switch (kind) {
    case 'archetypes': return new Simulator(opts)
    case 'habits': return new HabitsPopulation(opts)
    case 'fades': return new FadesPopulation(opts)
    case 'cadence': return new CadencePopulation(opts)
    case 'bgnbd': return new BgNbdPopulation(opts)
    case 'mixed': return new MixedPopulation(opts)
  }
}
