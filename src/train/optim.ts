/**
 * AdamW (decoupled weight decay, per-parameter exclusion), global-norm gradient clipping,
 * learning-rate schedules (linear warmup then constant or cosine) and gradient accumulation.
 * Optimizer state exists only for trainable parameters; frozen ones cost nothing.
 */
import type { Tensor } from '../engine/tensor.ts';
import { backend } from '../engine/backend.ts';
import { FlamingoError } from '../errors.ts';

/** Saved optimizer moments that do not fit the parameters being trained (a checkpoint of another model or config). */
export class OptimizerStateError extends FlamingoError {}

export interface AdamWConfig {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  /** Parameter names that get no weight decay (e.g. biases, norms, embeddings, gates). */
  noDecay?: (name: string, t: Tensor) => boolean;
  /** Per-parameter learning-rate multiplier (default 1), e.g. to let the tanh gates open faster. */
  lrScale?: (name: string, t: Tensor) => number;
}

export const DEFAULT_ADAMW: AdamWConfig = { lr: 1e-4, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 };

/** Default exclusion: 1-D tensors (biases, norm weights, gates) get no decay, as is usual for transformers. */
export function defaultNoDecay(_name: string, t: Tensor): boolean {
  return t.ndim <= 1;
}

interface Slot { name: string; param: Tensor; m: Float32Array; v: Float32Array; decay: boolean; lrScale: number }

export class AdamW {
  readonly config: AdamWConfig;
  private readonly slots: Slot[];
  /** Number of completed steps (bias correction uses step + 1). */
  step = 0;

  constructor(params: [string, Tensor][], config: Partial<AdamWConfig> = {}) {
    this.config = { ...DEFAULT_ADAMW, ...config };
    const noDecay = this.config.noDecay ?? (() => false);
    const lrScale = this.config.lrScale ?? (() => 1);
    this.slots = params
      .filter(([, t]) => t.requiresGrad)
      .map(([name, param]) => ({ name, param, m: new Float32Array(param.size), v: new Float32Array(param.size), decay: !noDecay(name, param), lrScale: lrScale(name, param) }));
  }

  get paramNames(): string[] {
    return this.slots.map((s) => s.name);
  }

  /** One update with learning rate `lr` (defaults to config.lr). Parameters with no gradient are skipped. */
  update(lr = this.config.lr): void {
    this.step++;
    const k = backend();
    const [b1, b2] = this.config.betas;
    for (const s of this.slots) {
      const g = s.param.grad;
      if (g === null) continue;
      k.adamw(s.param.f32, g, s.m, s.v, s.param.size, lr * s.lrScale, b1, b2, this.config.eps, s.decay ? this.config.weightDecay : 0, this.step);
    }
  }

  zeroGrad(): void {
    for (const s of this.slots) s.param.grad = null;
  }

  /** Moments keyed by parameter name, for checkpoints. */
  stateTensors(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const s of this.slots) {
      out.set(`${s.name}.exp_avg`, s.m);
      out.set(`${s.name}.exp_avg_sq`, s.v);
    }
    return out;
  }

  loadStateTensors(state: Map<string, Float32Array>, step: number): void {
    for (const s of this.slots) {
      const m = state.get(`${s.name}.exp_avg`);
      const v = state.get(`${s.name}.exp_avg_sq`);
      if (!m || !v) throw new OptimizerStateError(`optimizer state for '${s.name}' is missing (${s.name}.exp_avg / .exp_avg_sq)`);
      if (m.length !== s.m.length || v.length !== s.v.length) {
        throw new OptimizerStateError(`optimizer state for '${s.name}' has ${m.length} / ${v.length} values (exp_avg / exp_avg_sq), the parameter has ${s.m.length}`);
      }
      s.m.set(m);
      s.v.set(v);
    }
    this.step = step;
  }
}

/** Scale all gradients so their global L2 norm is at most maxNorm. Returns the norm before clipping. */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  const k = backend();
  let sq = 0;
  for (const p of params) if (p.grad) sq += k.sumSquares(p.grad, p.grad.length);
  const norm = Math.sqrt(sq);
  if (norm > maxNorm && norm > 0) {
    const c = maxNorm / (norm + 1e-6);
    for (const p of params) {
      const g = p.grad;
      if (!g) continue;
      for (let i = 0; i < g.length; i++) g[i]! *= c;
    }
  }
  return norm;
}

export interface ScheduleConfig {
  warmupSteps: number;
  totalSteps: number;
  kind: 'constant' | 'cosine';
  /** Cosine floor as a fraction of the peak lr. */
  minRatio?: number;
}

/** Linear warmup from 0 to peak over warmupSteps, then constant or cosine decay to minRatio·peak. step is 0-based. */
export function learningRate(peak: number, step: number, s: ScheduleConfig): number {
  if (s.warmupSteps > 0 && step < s.warmupSteps) return (peak * (step + 1)) / s.warmupSteps;
  if (s.kind === 'constant') return peak;
  const span = Math.max(1, s.totalSteps - s.warmupSteps);
  const t = Math.min(1, (step - s.warmupSteps) / span);
  const min = (s.minRatio ?? 0) * peak;
  return min + (peak - min) * 0.5 * (1 + Math.cos(Math.PI * t));
}
