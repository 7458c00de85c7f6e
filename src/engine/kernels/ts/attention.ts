/**
 * TypeScript oracle: the attention-specific kernels: the masked attention softmax, the ALiBi bias,
 * rotary embeddings and the head split/merge copy.
 */


/** Last visible key index for query i (−1 when none), ignoring the explicit mask. */
function causalLimit(lk: number, i: number, causal: boolean, causalOffset: number): number {
  if (!causal) return lk - 1;
  const lim = i + causalOffset;
  return lim < lk - 1 ? lim : lk - 1;
}

export function maskedSoftmaxImpl(
  x: Float32Array, out: Float32Array, batch: number, heads: number, lq: number, lk: number,
  mask: Uint8Array | null, mbs: number, mqs: number, causal: boolean, causalOffset: number, uniform: boolean,
): void {
  const uniformValue = 1 / lk;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < lq; i++) {
        const o = ((b * heads + h) * lq + i) * lk;
        const lim = causalLimit(lk, i, causal, causalOffset);
        const mo = b * mbs + i * mqs;
        let max = -Infinity;
        let visible = 0;
        for (let j = 0; j <= lim; j++) {
          if (mask !== null && mask[mo + j] === 0) continue;
          const v = x[o + j]!;
          if (v > max || v !== v) max = v;
          visible++;
        }
        if (visible === 0) {
          out.fill(uniform ? uniformValue : 0, o, o + lk);
          continue;
        }
        let sum = 0;
        for (let j = 0; j < lk; j++) {
          if (j > lim || (mask !== null && mask[mo + j] === 0)) {
            out[o + j] = 0;
          } else {
            const e = Math.exp(x[o + j]! - max);
            out[o + j] = e;
            sum += e;
          }
        }
        const inv = 1 / sum;
        for (let j = 0; j <= lim; j++) out[o + j] = out[o + j]! * inv;
      }
    }
  }
}

export function maskedSoftmaxBackwardImpl(
  y: Float32Array, dy: Float32Array, dx: Float32Array, batch: number, heads: number, lq: number, lk: number,
  mask: Uint8Array | null, mbs: number, mqs: number, causal: boolean, causalOffset: number,
): void {
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < lq; i++) {
        const o = ((b * heads + h) * lq + i) * lk;
        const lim = causalLimit(lk, i, causal, causalOffset);
        const mo = b * mbs + i * mqs;
        let dot = 0;
        for (let j = 0; j <= lim; j++) {
          if (mask !== null && mask[mo + j] === 0) continue;
          dot += dy[o + j]! * y[o + j]!;
        }
        for (let j = 0; j < lk; j++) {
          if (j > lim || (mask !== null && mask[mo + j] === 0)) dx[o + j] = 0;
          else dx[o + j] = y[o + j]! * (dy[o + j]! - dot);
        }
        // A fully masked row has no visible entry, so the loop above already wrote zeros.
      }
    }
  }
}

export function alibiBiasImpl(x: Float32Array, batch: number, heads: number, lq: number, lk: number, slopes: Float32Array, off: number): void {
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const sl = slopes[h]!;
      for (let i = 0; i < lq; i++) {
        const o = ((b * heads + h) * lq + i) * lk;
        const base = -(i + off);
        // float32 product as the native kernel computes it (Math.fround), then the float32 add
        for (let j = 0; j < lk; j++) x[o + j] = x[o + j]! + Math.fround(sl * (base + j));
      }
    }
  }
}

export function alibiBiasBackwardImpl(dx: Float32Array, batch: number, heads: number, lq: number, lk: number, off: number, ds: Float32Array): void {
  for (let h = 0; h < heads; h++) {
    let acc = 0;
    for (let b = 0; b < batch; b++) {
      for (let i = 0; i < lq; i++) {
        const o = ((b * heads + h) * lq + i) * lk;
        const base = -(i + off);
        for (let j = 0; j < lk; j++) acc += dx[o + j]! * (base + j);
      }
    }
    ds[h] = ds[h]! + acc;
  }
}

// ---------------------------------------------------------------------------------------------
// Rotary embedding.

export function ropeImpl(
  x: Float32Array, out: Float32Array, batch: number, seq: number, heads: number, dim: number,
  positions: Int32Array, theta: number, inverse: boolean, invFreq: Float64Array, cos: Float32Array, sin: Float32Array,
): void {
  const half = dim >> 1;
  for (let i = 0; i < half; i++) invFreq[i] = Math.pow(theta, (-2 * i) / dim);
  const sign = inverse ? -1 : 1;
  for (let b = 0; b < batch; b++) {
    for (let s = 0; s < seq; s++) {
      const pos = positions[b * seq + s]!;
      // Angles in float64, then cos/sin rounded to float32 (the tables HF keeps are float32).
      for (let i = 0; i < half; i++) {
        const ang = pos * invFreq[i]!;
        cos[i] = Math.cos(ang);
        sin[i] = sign * Math.sin(ang);
      }
      for (let h = 0; h < heads; h++) {
        const o = ((b * seq + s) * heads + h) * dim;
        for (let i = 0; i < half; i++) {
          const x1 = x[o + i]!;
          const x2 = x[o + half + i]!;
          const c = cos[i]!;
          const sn = sin[i]!;
          // rotate_half(x) = [−x2, x1]
          out[o + i] = x1 * c - x2 * sn;
          out[o + half + i] = x2 * c + x1 * sn;
        }
      }
    }
  }
}

/** out (B, C, A, D) = x (B, A, C, D): rows of D copied whole. */
export function swapMiddleAxesImpl(x: Float32Array, out: Float32Array, B: number, A: number, C: number, D: number): void {
  let o = 0;
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      for (let a = 0; a < A; a++) {
        const src = ((b * A + a) * C + c) * D;
        for (let d = 0; d < D; d++) out[o + d] = x[src + d]!;
        o += D;
      }
    }
  }
}
