/**
 * TypeScript oracle: the row-wise softmax family and cross-entropy (max-subtracted, float64 sums).
 */

// ---------------------------------------------------------------------------------------------
// Row-wise softmax family.

/** The largest of x[o..end), NaN when any is NaN (so a NaN row stays NaN, as in PyTorch). */
function rowMax(x: Float32Array, o: number, end: number): number {
  let max = -Infinity;
  for (let j = o; j < end; j++) {
    const v = x[j]!;
    if (v > max || v !== v) max = v;
  }
  return max;
}

export function softmaxRows(x: Float32Array, out: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const end = o + cols;
    const max = rowMax(x, o, end);
    let sum = 0;
    for (let j = o; j < end; j++) {
      const e = Math.exp(x[j]! - max);
      out[j] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let j = o; j < end; j++) out[j] = out[j]! * inv;
  }
}

export function logSoftmaxRows(x: Float32Array, out: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const end = o + cols;
    const max = rowMax(x, o, end);
    let sum = 0;
    for (let j = o; j < end; j++) sum += Math.exp(x[j]! - max);
    const logSum = Math.log(sum);
    for (let j = o; j < end; j++) out[j] = x[j]! - max - logSum;
  }
}

export function softmaxBackwardRows(y: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const end = o + cols;
    let dot = 0;
    for (let j = o; j < end; j++) dot += dy[j]! * y[j]!;
    for (let j = o; j < end; j++) dx[j] = y[j]! * (dy[j]! - dot);
  }
}

export function logSoftmaxBackwardRows(y: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const end = o + cols;
    let sum = 0;
    for (let j = o; j < end; j++) sum += dy[j]!;
    for (let j = o; j < end; j++) dx[j] = dy[j]! - Math.exp(y[j]!) * sum;
  }
}
// ---------------------------------------------------------------------------------------------
// Cross-entropy.

export function crossEntropyImpl(
  logits: Float32Array, targets: Int32Array, rows: number, cols: number, ignoreIndex: number,
  losses: Float32Array, lse: Float32Array,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const end = o + cols;
    const max = rowMax(logits, o, end);
    let sum = 0;
    for (let j = o; j < end; j++) sum += Math.exp(logits[j]! - max);
    const l = max + Math.log(sum);
    lse[r] = l;
    const t = targets[r]!;
    losses[r] = t === ignoreIndex ? 0 : l - logits[o + t]!;
  }
}

export function crossEntropyBackwardImpl(
  logits: Float32Array, targets: Int32Array, lse: Float32Array, rows: number, cols: number,
  ignoreIndex: number, scale: number, dlogits: Float32Array,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const t = targets[r]!;
    if (t === ignoreIndex) {
      dlogits.fill(0, o, o + cols);
      continue;
    }
    const l = lse[r]!;
    for (let j = 0; j < cols; j++) {
      const p = Math.exp(logits[o + j]! - l);
      dlogits[o + j] = scale * (j === t ? p - 1 : p);
    }
  }
}
