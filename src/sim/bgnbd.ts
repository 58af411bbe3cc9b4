import type { UserEvent } from '../events/user-event.js'
import { checkOptions, EventRows, labelsOf, localInstant, type Population, type PopulationOptions, Rng, type SimLabel, T, userIds, writtenSpan } from './population.js'

/**
 * `bgnbd`: the textbook model of customers who buy until they silently leave (Fader, Hardie and
 * Lee's BG/NBD, 2005), with logins as the transactions.
 *
 * While alive, a user logs in as a Poisson process with rate λ (gamma-distributed across users,
 * shape 1.5, mean 0.8 a day: from one login a fortnight to several a day), at waking hours of
 * their zone. After every login they leave for good with probability p (beta-distributed across
 * users, a = 1, its mean set so that about the requested share leaves inside the written days).
 * Nothing announces leaving: the only signal is a silence that is long for that user's rate.
 * Users joined up to `prehistoryDays` before day 0 (a tenth join during the written days).
 * Sessions: a LOGIN and a few VIEWs; nothing else. Zones: Asia/Singapore, Europe/Istanbul,
 * America/Mexico_City.
 */
const ZONES = ['Asia/Singapore', 'Europe/Istanbul', 'America/Mexico_City']

export class BgNbdPopulation implements Population {
  private readonly rows: EventRows
  private readonly kind: string[]
  private readonly leftAt: Float64Array
  private readonly end: number

  constructor (opts: PopulationOptions) {
    checkOptions('bgnbd', opts)
    const r = new Rng(opts.seed * 101 + 3)
    const n = opts.users
    const D = opts.days
    const pre = opts.prehistoryDays ?? 60
    const churn = opts.churnRate ?? 0.2
    const { day0, from, to } = writtenSpan(opts)
    this.end = to
    const ids = userIds('b', n)
    const zones = ids.map(() => r.pick(ZONES))
    this.rows = new EventRows(ids, zones, from, to)
    this.kind = new Array<string>(n)
    this.leftAt = new Float64Array(n).fill(Infinity)
    const meanRate = 0.8
    // P(leave within D days) ≈ 1 − exp(−p λ D) for the mean user: p from the requested share.
    const pMean = Math.min(0.5, -Math.log(1 - churn) / (meanRate * D))
    const b = (1 - pMean) / pMean
    for (let u = 0; u < n; u++) {
      const zone = zones[u]
      const lambda = r.gamma(1.5) / 1.5 * meanRate
      const p = r.beta(1, b)
      const late = r.chance(0.1)
      let t = late ? day0 + r.uniform(0, D - 3) : day0 - r.uniform(0, pre)
      this.kind[u] = lambda >= 0.5 ? 'frequent' : lambda >= 0.15 ? 'regular' : 'occasional'
      for (;;) {
        t += r.exp(1 / Math.max(lambda, 1e-3))
        if (t >= day0 + D) break
        const day = Math.floor(t)
        const at = localInstant(zone, day, 7 + 16 * (t - day))
        if (day >= day0) {
          this.rows.add(at, u, T.LOGIN)
          let s = at + 4_000
          const k = r.poisson(3)
          for (let i = 0; i < k; i++) { const dur = Math.round(r.exp(30_000)) + 800; this.rows.add(s, u, T.VIEW, r.int(1, 30_000), dur); s += dur + 1_000 }
        }
        if (r.chance(p)) { this.leftAt[u] = at; break }
      }
    }
  }

  days (): Generator<UserEvent[]> { return this.rows.days() }
  labels (): SimLabel[] { return labelsOf(this.rows, (u) => this.kind[u], (u) => this.leftAt[u], this.end) }
}
