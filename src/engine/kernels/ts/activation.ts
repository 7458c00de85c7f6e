/**
 * TypeScript oracle: activations (erf GELU, tanh GELU, quick GELU, SiLU, tanh, ReLU, sigmoid), their
 * derivatives and the fused SwiGLU gate. Transcendental functions are evaluated in float64 and
 * rounded once on store.
 */
import type { Activation } from '../types.ts';
import { TsKernelError } from './check.ts';

// ---------------------------------------------------------------------------------------------
// erf / erfc in float64.
//
// g(z) = erfc(z)·exp(z²) is smooth and slowly varying on z ≥ 0 (g(0) = 1, g(z) ~ 1/(z√π)), so it
// is tabulated once at load time as piecewise Chebyshev interpolants on [0, 6]; beyond 6 its
// asymptotic series converges to double precision within a few terms. The table is built from
// slow but exact-in-double definitions: the all-positive-term series of erf for z < 2 and the
// continued fraction of erfc for z ≥ 2. Keeping erfc (not 1 − erf) preserves relative accuracy
// in the far tail, which GELU's negative side needs.

const SQRT_PI = Math.sqrt(Math.PI);
const TWO_OVER_SQRT_PI = 2 / SQRT_PI;

/** erf(z) = 2/√π · e^{−z²} · Σ 2ⁿ z^{2n+1} / (2n+1)!!  (no cancellation; z ≥ 0). */
function erfSeries(z: number): number {
  const z2 = z * z;
  let term = z;
  let sum = z;
  for (let n = 0; n < 500; n++) {
    term *= (2 * z2) / (2 * n + 3);
    sum += term;
    if (term < sum * 1e-18) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-z2) * sum;
}

/** g(z) = erfc(z)·e^{z²} via the continued fraction 1/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …)))). */
function gContinuedFraction(z: number): number {
  let f = z;
  for (let n = 4000; n >= 1; n--) f = z + (n / 2) / f;
  return 1 / (f * SQRT_PI);
}

function gExact(z: number): number {
  if (z < 2) return (1 - erfSeries(z)) * Math.exp(z * z);
  return gContinuedFraction(z);
}

const G_INTERVAL = 0.25;
const G_MAX = 6;
const G_DEGREE = 14;
const G_NCOEF = G_DEGREE + 1;
const G_INTERVALS = Math.round(G_MAX / G_INTERVAL);
const G_TABLE = buildGTable();

function buildGTable(): Float64Array {
  const table = new Float64Array(G_INTERVALS * G_NCOEF);
  const fx = new Float64Array(G_NCOEF);
  for (let iv = 0; iv < G_INTERVALS; iv++) {
    const a = iv * G_INTERVAL;
    for (let k = 0; k < G_NCOEF; k++) {
      const t = Math.cos((Math.PI * (k + 0.5)) / G_NCOEF);
      fx[k] = gExact(a + (t + 1) * 0.5 * G_INTERVAL);
    }
    for (let j = 0; j < G_NCOEF; j++) {
      let s = 0;
      for (let k = 0; k < G_NCOEF; k++) s += fx[k]! * Math.cos((Math.PI * j * (k + 0.5)) / G_NCOEF);
      table[iv * G_NCOEF + j] = (2 / G_NCOEF) * s * (j === 0 ? 0.5 : 1);
    }
  }
  return table;
}

/** g(z) = erfc(z)·e^{z²} for z ≥ 0. */
function gScaled(z: number): number {
  if (z < G_MAX) {
    const iv = Math.floor(z / G_INTERVAL);
    const t = (z - iv * G_INTERVAL) * (2 / G_INTERVAL) - 1;
    const base = iv * G_NCOEF;
    const t2 = 2 * t;
    let b1 = 0;
    let b2 = 0;
    for (let j = G_DEGREE; j >= 1; j--) {
      const tmp = t2 * b1 - b2 + G_TABLE[base + j]!;
      b2 = b1;
      b1 = tmp;
    }
    return t * b1 - b2 + G_TABLE[base]!;
  }
  // Asymptotic series Σ (−1)ⁿ (2n−1)!! / (2z²)ⁿ; terms shrink fast for z ≥ 6.
  const inv = 1 / (2 * z * z);
  let term = 1;
  let sum = 1;
  for (let n = 1; n < 30; n++) {
    term *= -(2 * n - 1) * inv;
    sum += term;
    if (Math.abs(term) < 1e-17) break;
  }
  return sum / (z * SQRT_PI);
}

/** Complementary error function in float64 (relative accuracy ~1e-14 across the range). */
export function erfc(z: number): number {
  if (z !== z) return NaN;
  if (z >= 0) return z > 27 ? 0 : Math.exp(-z * z) * gScaled(z);
  return z < -6 ? 2 : 2 - Math.exp(-z * z) * gScaled(-z);
}

/** Error function in float64. */
export function erf(z: number): number {
  if (z !== z) return NaN;
  if (Math.abs(z) < 0.5) return z >= 0 ? erfSeries(z) : -erfSeries(-z);
  return z >= 0 ? 1 - erfc(z) : erfc(-z) - 1;
}

/** Standard normal CDF Φ(x) = ½·erfc(−x/√2), accurate in both tails. */
function normalCdf(x: number): number {
  if (x !== x) return NaN;
  if (x < 0) {
    const z = -x * Math.SQRT1_2;
    return z > 27 ? 0 : 0.5 * Math.exp(-0.5 * x * x) * gScaled(z);
  }
  const z = x * Math.SQRT1_2;
  return z > 27 ? 1 : 1 - 0.5 * Math.exp(-0.5 * x * x) * gScaled(z);
}

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const GELU_TANH_C = Math.sqrt(2 / Math.PI);
const GELU_TANH_A = 0.044715;
const QUICK_GELU_K = 1.702;


// ---------------------------------------------------------------------------------------------
// Activations.

export function sigmoid(v: number): number {
  // exp(−v) overflows to +Infinity for very negative v, giving exactly 0: no NaN.
  return 1 / (1 + Math.exp(-v));
}

export function activationImpl(kind: Activation, x: Float32Array, out: Float32Array, n: number): void {
  switch (kind) {
    case 'gelu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        out[i] = v * normalCdf(v);
      }
      return;
    case 'gelu_tanh':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        out[i] = 0.5 * v * (1 + Math.tanh(GELU_TANH_C * (v + GELU_TANH_A * v * v * v)));
      }
      return;
    case 'quick_gelu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        out[i] = v * sigmoid(QUICK_GELU_K * v);
      }
      return;
    case 'silu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        out[i] = v * sigmoid(v);
      }
      return;
    case 'tanh':
      for (let i = 0; i < n; i++) out[i] = Math.tanh(x[i]!);
      return;
    case 'relu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        // NaN propagates like torch.relu.
        out[i] = v > 0 || v !== v ? v : 0;
      }
      return;
    case 'sigmoid':
      for (let i = 0; i < n; i++) out[i] = sigmoid(x[i]!);
      return;
    default:
      throw new TsKernelError('activation', `unknown activation '${kind as string}'`);
  }
}

export function activationBackwardImpl(kind: Activation, x: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void {
  switch (kind) {
    case 'gelu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        dx[i] = dy[i]! * (normalCdf(v) + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v));
      }
      return;
    case 'gelu_tanh':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        const v2 = v * v;
        const t = Math.tanh(GELU_TANH_C * (v + GELU_TANH_A * v2 * v));
        const d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * GELU_TANH_C * (1 + 3 * GELU_TANH_A * v2);
        dx[i] = dy[i]! * d;
      }
      return;
    case 'quick_gelu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        const s = sigmoid(QUICK_GELU_K * v);
        dx[i] = dy[i]! * (s + QUICK_GELU_K * v * s * (1 - s));
      }
      return;
    case 'silu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        const s = sigmoid(v);
        dx[i] = dy[i]! * (s * (1 + v * (1 - s)));
      }
      return;
    case 'tanh':
      for (let i = 0; i < n; i++) {
        const t = Math.tanh(x[i]!);
        dx[i] = dy[i]! * (1 - t * t);
      }
      return;
    case 'relu':
      // Gradient at exactly 0 is 0, as in PyTorch.
      for (let i = 0; i < n; i++) dx[i] = x[i]! > 0 ? dy[i]! : 0;
      return;
    case 'sigmoid':
      for (let i = 0; i < n; i++) {
        const s = sigmoid(x[i]!);
        dx[i] = dy[i]! * (s * (1 - s));
      }
      return;
    default:
      throw new TsKernelError('activationBackward', `unknown activation '${kind as string}'`);
  }
}

// ---------------------------------------------------------------------------------------------

/** out = silu(gate) ⊙ up. */
export function swigluImpl(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    out[i] = g * sigmoid(g) * up[i]!;
  }
}

/** dgate, dup of swiglu (written). */
export function swigluBackwardImpl(
  gate: Float32Array, up: Float32Array, dy: Float32Array, dgate: Float32Array, dup: Float32Array, n: number,
): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    const u = up[i]!;
    const d = dy[i]!;
    const s = sigmoid(g);
    dgate[i] = d * u * (s * (1 + g * (1 - s)));
    dup[i] = d * g * s;
  }
}
