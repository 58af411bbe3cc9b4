import type { UserEvent } from '../events/user-event.js'
import { checkOptions, EventRows, labelsOf, localInstant, type Population, type PopulationOptions, Rng, type SimLabel, T, userIds, writtenSpan } from './population.js'

/**
 * `cadence`: users who come on a weekly rhythm — a class, a league, a weekend habit.
 *
 * Each user keeps one to three weekdays (half of them Saturday and/or Sunday, the others any
 * days), shows up on each with a chance of 0.65–0.95 and on any other day rarely (2–8%). Stayers
 * skip whole weeks now and then (5–12% of weeks, a skipped week continuing with a chance of 35%):
 * a skipped weekend makes a 13-day silence that means nothing. A churner either stops at once
 * (60%) or thins out over 2–6 weeks (their chance on each scheduled day falling to nothing). A
 * churner's day comes from a constant hazard over the written days. Sessions are long: a LOGIN,
 * views, interactions, posts and purchases (a tenth buys on a scheduled day). Zones:
 * America/New_York, America/Los_Angeles, Europe/Berlin, Europe/Madrid.
 */
const ZONES = ['America/New_York', 'America/Los_Angeles', 'Europe/Berlin', 'Europe/Madrid']

export class CadencePopulation implements Population {
  private readonly rows: EventRows
  private readonly kind: string[]
  private readonly leftAt: Float64Array
  private readonly end: number

  constructor (opts: PopulationOptions) {
    checkOptions('cadence', opts)
    const r = new Rng(opts.seed * 31 + 11)
    const n = opts.users
    const D = opts.days
    const pre = opts.prehistoryDays ?? 60
    const churn = opts.churnRate ?? 0.12
    const { day0, from, to } = writtenSpan(opts)
    this.end = to
    const ids = userIds('w', n)
    const zones = ids.map(() => r.pick(ZONES))
    this.rows = new EventRows(ids, zones, from, to)
    this.kind = new Array<string>(n)
    this.leftAt = new Float64Array(n).fill(Infinity)
    const h = -Math.log(1 - churn) / D
    for (let u = 0; u < n; u++) {
      const zone = zones[u]
      const days = new Uint8Array(7)
      const weekend = r.chance(0.5)
      const k = r.int(1, 3)
      if (weekend) { days[5 + r.int(0, 1)] = 1; if (k > 1) { days[5] = 1; days[6] = 1 } } else for (let i = 0; i < k; i++) days[r.int(0, 6)] = 1
      const show = r.uniform(0.65, 0.95)
      const off = r.uniform(0.02, 0.08)
      const skipWeek = r.uniform(0.05, 0.12)
      const hour = weekend ? r.uniform(9, 20) : r.uniform(17, 22)
      const buys = r.chance(0.1)
      const join = day0 - r.int(14, pre + 14)
      let quit = Infinity
      for (let day = day0; day < day0 + D; day++) if (r.chance(h)) { quit = day; break }
      const thins = quit !== Infinity && r.chance(0.4)
      const thinDays = r.int(14, 42)
      this.kind[u] = (weekend ? 'weekend' : 'weekly') + (quit === Infinity ? '' : thins ? '_thinning' : '_stop')
      if (quit !== Infinity) this.leftAt[u] = localInstant(zone, quit, 0)
      let skipping = false
      for (let day = join; day < Math.min(quit, day0 + D); day++) {
        const dow = (((day + 3) % 7) + 7) % 7 // 0 = Monday
        if (dow === 0) skipping = skipping ? r.chance(0.35) : r.chance(skipWeek)
        let p = days[dow] === 1 ? (skipping ? 0.05 : show) : off
        if (thins && quit - day < thinDays) p *= (quit - day) / thinDays
        if (!r.chance(p) || day < day0) continue
        const at = localInstant(zone, day, Math.min(23.5, Math.max(0, hour + r.normal())))
        this.rows.add(at, u, T.LOGIN)
        let t = at + 10_000
        const views = r.poisson(days[dow] === 1 ? 8 : 3)
        for (let i = 0; i < views; i++) {
          const dur = Math.round(r.exp(60_000)) + 2_000
          this.rows.add(t, u, T.VIEW, r.int(1, 20_000), dur)
          if (r.chance(0.35)) this.rows.add(t + dur, u, T.INTERACT, r.int(1, 20_000))
          t += dur + 3_000
        }
        if (r.chance(0.15)) this.rows.add(t, u, T.POST, r.int(1, 1e6))
        if (buys && days[dow] === 1 && r.chance(0.3)) this.rows.add(t + 1_000, u, T.PURCHASE, Math.round(r.uniform(5, 80) * 100) / 100)
      }
    }
  }

  days (): Generator<UserEvent[]> { return this.rows.days() }
  labels (): SimLabel[] { return labelsOf(this.rows, (u) => this.kind[u], (u) => this.leftAt[u], this.end) }
}
