/**
 * Scores against labels: AUC (the Mann–Whitney statistic, ties counted half), log loss and a
 * calibration table. Pure functions over typed arrays; `ebb train` and `ebb eval` share them.
 */

/** Area under the ROC curve: P(score of a random positive > score of a random negative), ties ½. NaN without both classes. */
export function auc (scores: ArrayLike<number>, labels: ArrayLike<number>, n = scores.length): number {
  const order = new Uint32Array(n)
  for (let i = 0; i < n; i++) order[i] = i
  order.sort((a, b) => scores[a] - scores[b])
  let pos = 0
  let rankSum = 0
  let i = 0
  while (i < n) {
    // A run of tied scores shares the average of its ranks (1-based).
    let j = i
    while (j + 1 < n && scores[order[j + 1]] === scores[order[i]]) j++
    const avgRank = (i + j + 2) / 2
    for (let k = i; k <= j; k++) if (labels[order[k]] === 1) { pos++; rankSum += avgRank }
    i = j + 1
  }
  const neg = n - pos
  if (pos === 0 || neg === 0) return Number.NaN
  return (rankSum - pos * (pos + 1) / 2) / (pos * neg)
}

export function logLoss (p: ArrayLike<number>, labels: ArrayLike<number>, n = p.length): number {
  let sum = 0
  for (let i = 0; i < n; i++) {
    const q = Math.min(1 - 1e-12, Math.max(1e-12, p[i]))
    sum -= labels[i] === 1 ? Math.log(q) : Math.log(1 - q)
  }
  return n === 0 ? Number.NaN : sum / n
}

export interface CalibrationBin { from: number, to: number, count: number, meanScore: number, churnRate: number }

/** Ten equal-width score bins [0, 0.1), …, [0.9, 1]: the mean predicted probability against the observed churn rate. */
export function calibration (p: ArrayLike<number>, labels: ArrayLike<number>, n = p.length, bins = 10): CalibrationBin[] {
  const count = new Float64Array(bins)
  const sum = new Float64Array(bins)
  const pos = new Float64Array(bins)
  for (let i = 0; i < n; i++) {
    const b = Math.min(bins - 1, Math.floor(p[i] * bins))
    count[b]++
    sum[b] += p[i]
    if (labels[i] === 1) pos[b]++
  }
  const out: CalibrationBin[] = []
  for (let b = 0; b < bins; b++) {
    out.push({ from: b / bins, to: (b + 1) / bins, count: count[b], meanScore: count[b] === 0 ? Number.NaN : sum[b] / count[b], churnRate: count[b] === 0 ? Number.NaN : pos[b] / count[b] })
  }
  return out
}

/** Quartiles (linear interpolation between closest ranks) of a list; NaN for an empty one. */
export function quartiles (values: number[]): { p25: number, median: number, p75: number } {
  const v = [...values].sort((a, b) => a - b)
  const q = (f: number): number => {
    if (v.length === 0) return Number.NaN
    const x = f * (v.length - 1)
    const lo = Math.floor(x)
    const hi = Math.ceil(x)
    return v[lo] + (v[hi] - v[lo]) * (x - lo)
  }
  return { p25: q(0.25), median: q(0.5), p75: q(0.75) }
}

/** x rounded to `digits` decimals (reports and model files); NaN and infinities as they are. */
export function roundTo (x: number, digits: number): number {
  return Number.isFinite(x) ? Math.round(x * 10 ** digits) / 10 ** digits : x
}
