/**
 * Gradient-boosted trees for the logistic loss (the XGBoost recipe, small): each round fits a
 * depth-limited regression tree to the gradients g = y − p and hessians h = p(1 − p), choosing
 * splits by the gain G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ) over per-feature histograms of
 * quantile bins, and adds η·G/(H+λ) per leaf to the log-odds.
 *
 * Why trees as well as logistic regression: the risk of a silence is not linear in its length
 * (it rises steeply over the first days, then flattens) and depends on how often the user
 * usually comes (four silent days mean little for a weekly user). A linear model cannot bend
 * like that; `ebb train` fits both and keeps the one that validates better.
 *
 * A tree is stored flat: node k splits on feature[k] at threshold[k] (x ≤ threshold goes left);
 * a leaf has feature −1. value[k] is the node's log-odds contribution: the leaf's for leaves, and
 * the hessian-weighted mean of its leaves for inner nodes (for path-based reason codes).
 */
export interface FlatTree {
  feature: number[]
  threshold: number[]
  left: number[]
  right: number[]
  value: number[]
}

export interface GbtFit {
  baseScore: number
  trees: FlatTree[]
}

export interface GbtOptions {
  rounds?: number
  depth?: number
  learningRate?: number
  lambda?: number
  /** minimum hessian sum in a leaf */
  minChildWeight?: number
  bins?: number
  onRound?: (round: number, trees: number) => void
}

export function fitGbt (X: Float64Array, y: Uint8Array, n: number, d: number, opts: GbtOptions = {}): GbtFit {
  const rounds = opts.rounds ?? 120
  const depth = opts.depth ?? 4
  const eta = opts.learningRate ?? 0.2
  const lambda = opts.lambda ?? 1
  const minChild = opts.minChildWeight ?? 5
  const nb = Math.min(255, opts.bins ?? 64)

  // Quantile bin edges per feature, from the sorted distinct values (a sample for big inputs).
  const edges: Float64Array[] = []
  const B = new Uint8Array(n * d)
  const stride = Math.max(1, Math.floor(n / 200_000))
  for (let j = 0; j < d; j++) {
    const sample: number[] = []
    for (let i = 0; i < n; i += stride) sample.push(X[i * d + j])
    sample.sort((a, b) => a - b)
    const cuts: number[] = []
    for (let q = 1; q < nb; q++) {
      const v = sample[Math.floor(q * (sample.length - 1) / nb)]
      if (cuts.length === 0 || v > cuts[cuts.length - 1]) cuts.push(v)
    }
    const e = Float64Array.from(cuts)
    edges.push(e)
    // bin b holds values in (e[b−1], e[b]]; values above the last edge go to bin e.length
    for (let i = 0; i < n; i++) {
      const v = X[i * d + j]
      let lo = 0
      let hi = e.length
      while (lo < hi) { const mid = (lo + hi) >>> 1; if (v <= e[mid]) hi = mid; else lo = mid + 1 }
      B[i * d + j] = lo
    }
  }

  let pos = 0
  for (let i = 0; i < n; i++) pos += y[i]
  const p0 = Math.min(1 - 1e-9, Math.max(1e-9, pos / n))
  const baseScore = Math.log(p0 / (1 - p0))
  const F = new Float64Array(n).fill(baseScore)
  const g = new Float64Array(n)
  const h = new Float64Array(n)
  const node = new Int32Array(n)
  const maxNodes = (1 << (depth + 1)) - 1
  const histG = new Float64Array(maxNodes * d * nb)
  const histH = new Float64Array(maxNodes * d * nb)
  const trees: FlatTree[] = []

  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < n; i++) {
      const p = 1 / (1 + Math.exp(-F[i]))
      g[i] = y[i] - p
      h[i] = p * (1 - p)
    }
    // Nodes are numbered heap-style while growing (children of k: 2k+1, 2k+2), then compacted.
    const feat = new Int32Array(maxNodes).fill(-2) // −2: absent, −1: leaf
    const thrBin = new Int32Array(maxNodes)
    const sumG = new Float64Array(maxNodes)
    const sumH = new Float64Array(maxNodes)
    node.fill(0)
    feat[0] = -1
    for (let i = 0; i < n; i++) { sumG[0] += g[i]; sumH[0] += h[i] }
    for (let level = 0; level < depth; level++) {
      const first = (1 << level) - 1
      const last = (1 << (level + 1)) - 2
      histG.fill(0, first * d * nb, (last + 1) * d * nb)
      histH.fill(0, first * d * nb, (last + 1) * d * nb)
      for (let i = 0; i < n; i++) {
        const k = node[i]
        if (k < first || feat[k] !== -1) continue // finished in an earlier level
        const base = k * d * nb
        const gi = g[i]
        const hi = h[i]
        for (let j = 0; j < d; j++) {
          const o = base + j * nb + B[i * d + j]
          histG[o] += gi
          histH[o] += hi
        }
      }
      let split = false
      for (let k = first; k <= last; k++) {
        if (feat[k] !== -1) continue
        const G = sumG[k]
        const H = sumH[k]
        const parent = G * G / (H + lambda)
        let best = 1e-9
        let bestJ = -1
        let bestB = -1
        let bestGL = 0
        let bestHL = 0
        for (let j = 0; j < d; j++) {
          let GL = 0
          let HL = 0
          const nbj = edges[j].length
          for (let b = 0; b < nbj; b++) {
            const o = k * d * nb + j * nb + b
            GL += histG[o]
            HL += histH[o]
            const GR = G - GL
            const HR = H - HL
            if (HL < minChild || HR < minChild) continue
            const gain = GL * GL / (HL + lambda) + GR * GR / (HR + lambda) - parent
            if (gain > best) { best = gain; bestJ = j; bestB = b; bestGL = GL; bestHL = HL }
          }
        }
        if (bestJ < 0) continue
        feat[k] = bestJ
        thrBin[k] = bestB
        const l = 2 * k + 1
        const r = 2 * k + 2
        feat[l] = -1
        feat[r] = -1
        sumG[l] = bestGL
        sumH[l] = bestHL
        sumG[r] = G - bestGL
        sumH[r] = H - bestHL
        split = true
      }
      if (!split) break
      for (let i = 0; i < n; i++) {
        const k = node[i]
        if (feat[k] >= 0) node[i] = B[i * d + feat[k]] <= thrBin[k] ? 2 * k + 1 : 2 * k + 2
      }
    }
    // Leaf values, and inner values as the hessian-weighted mean of their leaves (bottom up).
    const val = new Float64Array(maxNodes)
    for (let k = maxNodes - 1; k >= 0; k--) {
      if (feat[k] === -1) val[k] = eta * sumG[k] / (sumH[k] + lambda)
      else if (feat[k] >= 0) {
        const l = 2 * k + 1
        const r = 2 * k + 2
        const w = sumH[l] + sumH[r]
        val[k] = w > 0 ? (val[l] * sumH[l] + val[r] * sumH[r]) / w : (val[l] + val[r]) / 2
      }
    }
    for (let i = 0; i < n; i++) F[i] += val[node[i]]
    trees.push(compact(feat, thrBin, val, edges))
    if (opts.onRound !== undefined) opts.onRound(round + 1, trees.length)
  }
  return { baseScore, trees }
}

/** Heap-numbered nodes to a flat tree with explicit children, thresholds as feature values. */
function compact (feat: Int32Array, thrBin: Int32Array, val: Float64Array, edges: Float64Array[]): FlatTree {
  const t: FlatTree = { feature: [], threshold: [], left: [], right: [], value: [] }
  const walk = (k: number): number => {
    const id = t.feature.length
    t.feature.push(feat[k] >= 0 ? feat[k] : -1)
    t.threshold.push(feat[k] >= 0 ? edges[feat[k]][thrBin[k]] : 0)
    t.left.push(-1)
    t.right.push(-1)
    t.value.push(val[k])
    if (feat[k] >= 0) {
      t.left[id] = walk(2 * k + 1)
      t.right[id] = walk(2 * k + 2)
    }
    return id
  }
  walk(0)
  return t
}
