import type { UserEvent } from '../events/user-event.js'
import { checkOptions, EventRows, labelsOf, localInstant, type Population, type PopulationOptions, Rng, type SimLabel, T, userIds, writtenSpan } from './population.js'

/**
 * `fades`: sessions as a Poisson process whose intensity drifts, and churn as a slow fade.
 *
 * Each user has a session rate λ₀ (log-normal around 0.9 a day, 0.15–6) that moves day by day
 * as a mean-reverting log random walk (Ornstein–Uhlenbeck, σ 0.25 a day, reverting 15% a day),
 * so every user has dips that recover: the false alarms of a churn detector. A churner's rate
 * fades from a random day as exp(−t/τ), τ 3–12 days, and their viewing per session fades faster
 * (exp(−1.5 t/τ)); after 4τ they are gone. A quarter of the churners are social: in the first
 * third of their fade they unfollow half or more of the creators they follow. Users follow a
 * creator every 5–30 days of activity. Sessions: a LOGIN, views (Poisson around the user's
 * mean), interactions, a post now and then. A sixth of the users join during the written days.
 * Zones: Europe/London, America/Chicago, Asia/Tokyo, Australia/Sydney, Africa/Lagos.
 */
const ZONES = ['Europe/London', 'America/Chicago', 'Asia/Tokyo', 'Australia/Sydney', 'Africa/Lagos']

export class FadesPopulation implements Population {
  private readonly rows: EventRows
  private readonly kind: string[]
  private readonly leftAt: Float64Array
  private readonly end: number

  constructor (opts: PopulationOptions) {
    checkOptions('fades', opts)
    const r = new Rng(opts.seed * 13 + 5)
    const n = opts.users
    const D = opts.days
    const pre = opts.prehistoryDays ?? 60
    const churn = opts.churnRate ?? 0.2
    const { day0, from, to } = writtenSpan(opts)
    this.end = to
    const ids = userIds('f', n)
    const zones = ids.map(() => r.pick(ZONES))
    this.rows = new EventRows(ids, zones, from, to)
    this.kind = new Array<string>(n)
    this.leftAt = new Float64Array(n).fill(Infinity)
    for (let u = 0; u < n; u++) {
      const zone = zones[u]
      const lambda0 = Math.min(6, Math.max(0.15, Math.exp(Math.log(0.9) + 0.6 * r.normal())))
      const views = r.uniform(1, 15)
      const hour = r.uniform(6, 23)
      const late = r.chance(1 / 6)
      const join = late ? day0 + r.int(0, Math.max(0, D - 10)) : day0 - r.int(10, pre + 10)
      const churner = r.chance(churn)
      const tau = r.uniform(3, 12)
      // The fade ends inside the written days for a churner (so that `churn` of them leave there).
      const fadeStart = churner ? Math.max(join + 7, day0 + r.uniform(-tau, D - 1) - 4 * tau) : Infinity
      const social = churner && r.chance(0.25)
      this.kind[u] = churner ? (social ? 'social_fade' : 'fade') : (late ? 'stay_new' : 'stay')
      if (churner) this.leftAt[u] = localInstant(zone, Math.floor(fadeStart + 4 * tau), 0)
      let x = 0
      let following = 0
      let nextFollow = r.uniform(5, 30)
      let unfollowLeft = 0
      for (let day = join; day < day0 + D; day++) {
        x += -0.15 * x + 0.25 * r.normal()
        const age = day - join
        let rate = lambda0 * Math.exp(x) * (age < 7 ? 0.5 + age / 14 : 1)
        let viewMul = 1
        const f = day - fadeStart
        if (f >= 0) {
          if (f > 4 * tau) break
          rate *= Math.exp(-f / tau)
          viewMul = Math.exp(-1.5 * f / tau)
          if (social && f < 1) unfollowLeft = Math.ceil(following * r.uniform(0.5, 0.9))
        }
        const sessions = r.poisson(rate)
        if (sessions === 0) continue
        nextFollow -= 1
        const write = day >= day0
        for (let s = 0; s < sessions; s++) {
          const at = localInstant(zone, day, Math.min(23.95, Math.max(0, hour + 3 * r.normal())))
          if (!write) continue
          this.rows.add(at, u, T.LOGIN)
          let t = at + 3_000
          const k = r.poisson(views * viewMul)
          for (let i = 0; i < k; i++) {
            const dur = Math.round(r.exp(25_000)) + 500
            this.rows.add(t, u, T.VIEW, r.int(1, 80_000), dur)
            if (r.chance(0.2)) this.rows.add(t + dur, u, T.INTERACT, r.int(1, 80_000))
            t += dur + 1_500
          }
          if (r.chance(0.04)) this.rows.add(t, u, T.POST, r.int(1, 1e6))
          if (unfollowLeft > 0 && following > 0) {
            const k2 = Math.min(unfollowLeft, following, r.int(1, 4))
            for (let i = 0; i < k2; i++) this.rows.add(t + 1_000 * (i + 1), u, T.UNFOLLOW, (u * 31 + following - i) % 9973)
            unfollowLeft -= k2
            following -= k2
          }
        }
        if (nextFollow <= 0 && f < 0) {
          nextFollow = r.uniform(5, 30)
          following++
          if (write) this.rows.add(localInstant(zone, day, Math.min(23.99, hour + 0.5)), u, T.FOLLOW, (u * 31 + following) % 9973)
        }
      }
    }
  }

  days (): Generator<UserEvent[]> { return this.rows.days() }
  labels (): SimLabel[] { return labelsOf(this.rows, (u) => this.kind[u], (u) => this.leftAt[u], this.end) }
}
