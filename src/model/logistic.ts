/**
 * L2-regularised logistic regression on standardised features, fitted by Newton's method
 * (iteratively reweighted least squares): d ≤ a few dozen features, so each step solves a d+1
 * system exactly, and a fit over a million samples converges in under ten passes.
 *
 * X is row-major, n × d. The intercept is not penalised.
 */
export interface LogisticFit {
  mean: number[]
  std: number[]
  weights: number[]
  intercept: number
  iterations: number
}

export interface LogisticOptions {
  /** L2 penalty on the standardised weights, as a total over the sample (default 1) */
  l2?: number
  maxIterations?: number
  /** stop when no coefficient moves more than this (default 1e-6) */
  tolerance?: number
  /** called after each pass with the pass number and the mean log loss */
  onIteration?: (iteration: number, logLoss: number) => void
}

export function fitLogistic (X: Float64Array, y: Uint8Array, n: number, d: number, opts: LogisticOptions = {}): LogisticFit {
  const l2 = opts.l2 ?? 1
  const maxIt = opts.maxIterations ?? 25
  const tol = opts.tolerance ?? 1e-6
  const mean = new Float64Array(d)
  const std = new Float64Array(d)
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += X[i * d + j]
  for (let j = 0; j < d; j++) mean[j] /= n
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) { const c = X[i * d + j] - mean[j]; std[j] += c * c }
  // A constant feature gets std 1: its standardised value is always 0 and its weight stays 0.
  for (let j = 0; j < d; j++) { const s = Math.sqrt(std[j] / n); std[j] = s > 1e-12 ? s : 1 }

  const m = d + 1 // coefficient 0 is the intercept
  const beta = new Float64Array(m)
  let pos = 0
  for (let i = 0; i < n; i++) pos += y[i]
  const p0 = Math.min(1 - 1e-9, Math.max(1e-9, pos / n))
  beta[0] = Math.log(p0 / (1 - p0))
  const z = new Float64Array(m)
  const H = new Float64Array(m * m)
  const g = new Float64Array(m)
  const trial = new Float64Array(m)
  let it = 0
  for (; it < maxIt; it++) {
    H.fill(0)
    g.fill(0)
    let loss = 0
    for (let i = 0; i < n; i++) {
      z[0] = 1
      let eta = beta[0]
      for (let j = 0; j < d; j++) { const v = (X[i * d + j] - mean[j]) / std[j]; z[j + 1] = v; eta += beta[j + 1] * v }
      const p = 1 / (1 + Math.exp(-eta))
      const r = y[i] - p
      const w = p * (1 - p)
      loss += (eta > 0 ? eta + Math.log1p(Math.exp(-eta)) : Math.log1p(Math.exp(eta))) - (y[i] === 1 ? eta : 0)
      for (let a = 0; a < m; a++) {
        const za = z[a]
        g[a] += r * za
        const wa = w * za
        for (let b = a; b < m; b++) H[a * m + b] += wa * z[b]
      }
    }
    for (let a = 1; a < m; a++) { g[a] -= l2 * beta[a]; H[a * m + a] += l2 }
    for (let a = 0; a < m; a++) for (let b = 0; b < a; b++) H[a * m + b] = H[b * m + a]
    const step = solve(H, g, m)
    // Backtracking: a full Newton step can overshoot when classes are nearly separable (the
    // sigmoid saturates); halve it until the penalised loss goes down.
    const f0 = loss + penalty(beta, l2)
    let t = 1
    let f1 = Number.POSITIVE_INFINITY
    for (let h = 0; h < 30; h++) {
      for (let a = 0; a < m; a++) trial[a] = beta[a] + t * step[a]
      f1 = objective(X, y, n, d, mean, std, trial) + penalty(trial, l2)
      if (f1 <= f0) break
      t /= 2
    }
    let moved = 0
    if (f1 <= f0) for (let a = 0; a < m; a++) { moved = Math.max(moved, Math.abs(trial[a] - beta[a])); beta[a] = trial[a] }
    if (opts.onIteration !== undefined) opts.onIteration(it + 1, Math.min(f0, f1) / n)
    if (moved < tol || f0 - f1 < 1e-9 * n) { it++; break }
  }
  return { mean: [...mean], std: [...std], weights: [...beta.subarray(1)], intercept: beta[0], iterations: it }
}

function penalty (beta: Float64Array, l2: number): number {
  let s = 0
  for (let a = 1; a < beta.length; a++) s += beta[a] * beta[a]
  return l2 * s / 2
}

/** Total log loss of coefficients `beta` on the standardised rows. */
function objective (X: Float64Array, y: Uint8Array, n: number, d: number, mean: Float64Array, std: Float64Array, beta: Float64Array): number {
  let loss = 0
  for (let i = 0; i < n; i++) {
    let eta = beta[0]
    for (let j = 0; j < d; j++) eta += beta[j + 1] * (X[i * d + j] - mean[j]) / std[j]
    // log(1 + e^η) without overflow
    const sp = eta > 0 ? eta + Math.log1p(Math.exp(-eta)) : Math.log1p(Math.exp(eta))
    loss += sp - (y[i] === 1 ? eta : 0)
  }
  return loss
}

/** Solves A x = b for a symmetric positive definite A (Cholesky); A and b are not modified. */
function solve (A: Float64Array, b: Float64Array, m: number): Float64Array {
  const L = new Float64Array(m * m)
  for (let i = 0; i < m; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * m + j]
      for (let k = 0; k < j; k++) s -= L[i * m + k] * L[j * m + k]
      if (i === j) L[i * m + i] = Math.sqrt(Math.max(s, 1e-12))
      else L[i * m + j] = s / L[j * m + j]
    }
  }
  const yv = new Float64Array(m)
  for (let i = 0; i < m; i++) {
    let s = b[i]
    for (let k = 0; k < i; k++) s -= L[i * m + k] * yv[k]
    yv[i] = s / L[i * m + i]
  }
  const x = new Float64Array(m)
  for (let i = m - 1; i >= 0; i--) {
    let s = yv[i]
    for (let k = i + 1; k < m; k++) s -= L[k * m + i] * x[k]
    x[i] = s / L[i * m + i]
  }
  return x
}
