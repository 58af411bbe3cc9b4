import type { UserEvent } from '../events/user-event.js'
import { checkOptions, EventRows, labelsOf, localInstant, type Population, type PopulationOptions, Rng, type SimLabel, T, userIds, writtenSpan } from './population.js'

/**
 * `habits`: a daily-habit app whose users quit without warning.
 *
 * Each user has a login chance per local day of the week (a base chance — 85% of users are
 * near-daily, 0.75–0.98, the rest regular, 0.35–0.75 — times a weekend factor), one to three
 * sessions on an active day, and holidays: breaks of 2–21 days (geometric around 4) that start
 * at a per-user rate of one per 150–500 days, in which they do not log in (a tenth glance once).
 * Leaving is a hazard per day, the same for every day of a user's life and different between
 * users (gamma-distributed around the rate that gives the population its churn share); on the
 * day they leave they simply stop. A fifth of them skip more in their last week first (login
 * chance halved), the only warning there is. Some users join during the written days (a tenth,
 * with twice the hazard in their first three weeks); the rest joined up to a year before day 0
 * and have a prehistory that is not written. Zones: Asia/Shanghai, Asia/Kolkata, Europe/Paris,
 * America/Sao_Paulo. Sessions: a LOGIN, 2–12 VIEWs with durations, INTERACTs on some.
 */
const ZONES = ['Asia/Shanghai', 'Asia/Kolkata', 'Europe/Paris', 'America/Sao_Paulo']
const ZONE_W = [0.4, 0.25, 0.2, 0.15]

export class HabitsPopulation implements Population {
  private readonly rows: EventRows
  private readonly kind: string[]
  private readonly leftAt: Float64Array
  private readonly end: number

  constructor (opts: PopulationOptions) {
    checkOptions('habits', opts)
    const r = new Rng(opts.seed * 7 + 1)
    const n = opts.users
    const D = opts.days
    const pre = opts.prehistoryDays ?? 60
    const churn = opts.churnRate ?? 0.15
    const { day0, from, to } = writtenSpan(opts)
    this.end = to
    const ids = userIds('h', n)
    const zones = ids.map(() => r.pick(ZONES, ZONE_W))
    this.rows = new EventRows(ids, zones, from, to)
    this.kind = new Array<string>(n)
    this.leftAt = new Float64Array(n).fill(Infinity)
    // The hazard that makes `churn` of a user alive over the written days leave inside them.
    const h = -Math.log(1 - churn) / D
    for (let u = 0; u < n; u++) {
      const zone = zones[u]
      const daily = r.chance(0.85)
      const base = daily ? r.uniform(0.75, 0.98) : r.uniform(0.35, 0.75)
      const weekend = r.uniform(0.6, 1.3)
      const hour = r.uniform(7, 22)
      const views = r.uniform(2, 12)
      const breakRate = 1 / r.uniform(150, 500)
      const hazard = h * r.gamma(2) / 2
      const warns = r.chance(0.2)
      const joinsLate = r.chance(0.1)
      const join = joinsLate ? day0 + r.int(0, Math.max(0, D - 7)) : day0 - r.int(0, pre)
      this.kind[u] = (daily ? 'daily' : 'regular') + (joinsLate ? '_new' : '')
      let breakLeft = 0
      let quit = Infinity
      // Walk the user's life from joining: the leaving day first (so a warning can precede it).
      for (let day = join; day < day0 + D; day++) {
        const young = day - join < 21 && joinsLate ? 2 : 1
        if (r.chance(Math.min(0.5, hazard * young))) { quit = day; break }
      }
      if (quit !== Infinity) this.leftAt[u] = localInstant(zone, quit, 0)
      for (let day = join; day < Math.min(quit, day0 + D); day++) {
        if (breakLeft > 0) {
          breakLeft--
          if (!r.chance(0.02)) continue // now and then a glance during the break
        } else if (day > join + 3 && r.chance(breakRate)) {
          breakLeft = Math.min(21, 2 + Math.floor(r.exp(3))) - 1
          continue
        }
        const dow = (((day + 3) % 7) + 7) % 7 // 0 = Monday (epoch day 0 was a Thursday)
        let p = base * (dow >= 5 ? weekend : 1)
        if (warns && quit - day <= 7) p *= 0.5
        if (!r.chance(Math.min(0.99, p))) continue
        if (day < day0) continue // prehistory: lived, not written
        const sessions = r.chance(0.3) ? r.int(2, 3) : 1
        for (let s = 0; s < sessions; s++) {
          const at = localInstant(zone, day, Math.min(23.9, Math.max(0, hour + s * 2.5 + r.normal() * 1.2)))
          this.session(r, u, at, views)
        }
      }
    }
  }

  private session (r: Rng, u: number, at: number, views: number): void {
    const rows = this.rows
    rows.add(at, u, T.LOGIN)
    let t = at + 5_000
    const k = r.poisson(views)
    for (let i = 0; i < k; i++) {
      const dur = Math.round(r.exp(40_000)) + 1_000
      rows.add(t, u, T.VIEW, r.int(1, 50_000), dur)
      if (r.chance(0.15)) rows.add(t + dur, u, T.INTERACT, r.int(1, 50_000))
      t += dur + 2_000
    }
  }

  days (): Generator<UserEvent[]> { return this.rows.days() }
  labels (): SimLabel[] { return labelsOf(this.rows, (u) => this.kind[u], (u) => this.leftAt[u], this.end) }
}
