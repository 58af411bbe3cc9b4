import type { UserEvent } from '../events/user-event.js'
import { BgNbdPopulation } from './bgnbd.js'
import { CadencePopulation } from './cadence.js'
import { FadesPopulation } from './fades.js'
import { HabitsPopulation } from './habits.js'
import type { Population, PopulationOptions, SimLabel } from './population.js'

/**
 * `--population mixed`: the users of four generators — daily habits, slow faders, weekly cadences
 * and BG/NBD — in one stream, a quarter each (the remainder to the first), every generator with
 * its own seed (below four users, habits gets them all). A real deployment sees its kinds of users side by side in every partition, so
 * the model learns, and its threshold is set, on all of them at once: what one kind allows (early
 * alerts on faders) must not cost another (weekly users' seven-day silences). User ids do not
 * collide (each generator has its own prefix); each written day's events are merged by time.
 */
export class MixedPopulation implements Population {
  /** the generators with users (fewer than four users leave some out), and their names */
  private readonly parts: Array<{ name: string, population: Population }> = []

  constructor (opts: PopulationOptions) {
    const quarter = Math.floor(opts.users / 4)
    const users = [opts.users - 3 * quarter, quarter, quarter, quarter]
    const make = [
      (o: PopulationOptions) => new HabitsPopulation(o),
      (o: PopulationOptions) => new FadesPopulation(o),
      (o: PopulationOptions) => new CadencePopulation(o),
      (o: PopulationOptions) => new BgNbdPopulation(o)
    ]
    const names = ['habits', 'fades', 'cadence', 'bgnbd']
    for (let i = 0; i < 4; i++) if (users[i] > 0) this.parts.push({ name: names[i], population: make[i]({ ...opts, users: users[i], seed: opts.seed * 4 + i }) })
  }

  * days (): Generator<UserEvent[]> {
    const gens = this.parts.map((p) => p.population.days())
    for (;;) {
      const day: UserEvent[] = []
      let done = 0
      for (const g of gens) {
        const next = g.next()
        if (next.done === true) done++
        else for (const e of next.value) day.push(e)
      }
      if (done === gens.length) return
      // each part's day is sorted by ts: one sort of the concatenation keeps the file time-ordered
      day.sort((a, b) => a.ts - b.ts)
      yield day
    }
  }

  /** each user's kind prefixed with its generator ("habits/daily", "bgnbd/regular") */
  labels (): SimLabel[] { return this.parts.flatMap((p) => p.population.labels().map((l) => ({ ...l, archetype: `${p.name}/${l.archetype}` }))) }
}
