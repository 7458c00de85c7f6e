/**
 * TypeScript oracle: LayerNorm and RMSNorm over the last axis, with saved statistics for backward.
 */

export function layerNormImpl(
  x: Float32Array, w: Float32Array | null, b: Float32Array | null, out: Float32Array,
  meanOut: Float32Array, rstdOut: Float32Array, rows: number, cols: number, eps: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const end = o + cols;
    let s = 0;
    for (let j = o; j < end; j++) s += x[j]!;
    const mean = s / cols;
    // Two-pass variance: no cancellation when |mean| ≫ std.
    let v = 0;
    for (let j = o; j < end; j++) {
      const d = x[j]! - mean;
      v += d * d;
    }
    const rstd = 1 / Math.sqrt(v / cols + eps);
    meanOut[r] = mean;
    rstdOut[r] = rstd;
    if (w !== null && b !== null) {
      for (let j = 0; j < cols; j++) out[o + j] = (x[o + j]! - mean) * rstd * w[j]! + b[j]!;
    } else if (w !== null) {
      for (let j = 0; j < cols; j++) out[o + j] = (x[o + j]! - mean) * rstd * w[j]!;
    } else if (b !== null) {
      for (let j = 0; j < cols; j++) out[o + j] = (x[o + j]! - mean) * rstd + b[j]!;
    } else {
      for (let j = o; j < end; j++) out[j] = (x[j]! - mean) * rstd;
    }
  }
}

export function layerNormBackwardImpl(
  x: Float32Array, w: Float32Array | null, meanIn: Float32Array, rstdIn: Float32Array, dy: Float32Array,
  dx: Float32Array, dwAcc: Float64Array | null, dbAcc: Float64Array | null, rows: number, cols: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const mean = meanIn[r]!;
    const rstd = rstdIn[r]!;
    let sumG = 0;
    let sumGX = 0;
    for (let j = 0; j < cols; j++) {
      const d = dy[o + j]!;
      const xhat = (x[o + j]! - mean) * rstd;
      const g = w !== null ? d * w[j]! : d;
      sumG += g;
      sumGX += g * xhat;
      if (dwAcc !== null) dwAcc[j] += d * xhat;
      if (dbAcc !== null) dbAcc[j] += d;
    }
    const mG = sumG / cols;
    const mGX = sumGX / cols;
    for (let j = 0; j < cols; j++) {
      const xhat = (x[o + j]! - mean) * rstd;
      const g = w !== null ? dy[o + j]! * w[j]! : dy[o + j]!;
      dx[o + j] = rstd * (g - mG - xhat * mGX);
    }
  }
}

export function rmsNormImpl(
  x: Float32Array, w: Float32Array | null, out: Float32Array, rstdOut: Float32Array,
  rows: number, cols: number, eps: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let ss = 0;
    for (let j = 0; j < cols; j++) {
      const v = x[o + j]!;
      ss += v * v;
    }
    const rstd = 1 / Math.sqrt(ss / cols + eps);
    rstdOut[r] = rstd;
    if (w !== null) for (let j = 0; j < cols; j++) out[o + j] = w[j]! * (x[o + j]! * rstd);
    else for (let j = 0; j < cols; j++) out[o + j] = x[o + j]! * rstd;
  }
}

export function rmsNormBackwardImpl(
  x: Float32Array, w: Float32Array | null, rstdIn: Float32Array, dy: Float32Array,
  dx: Float32Array, dwAcc: Float64Array | null, rows: number, cols: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const rstd = rstdIn[r]!;
    let sumGX = 0;
    for (let j = 0; j < cols; j++) {
      const d = dy[o + j]!;
      const xv = x[o + j]!;
      const g = w !== null ? d * w[j]! : d;
      sumGX += g * xv;
      if (dwAcc !== null) dwAcc[j] += d * xv * rstd;
    }
    // d/dx_k of x_j·r with r = (mean x² + eps)^−½:  r·δ_jk − r³·x_j·x_k / cols.
    const k = (rstd * rstd * rstd * sumGX) / cols;
    for (let j = 0; j < cols; j++) {
      const g = w !== null ? dy[o + j]! * w[j]! : dy[o + j]!;
      dx[o + j] = rstd * g - k * x[o + j]!;
    }
  }
}
