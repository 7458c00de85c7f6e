/**
 * Basic layers with PyTorch parameter names and initialisation: Linear (weight (out, in), optional
 * bias), LayerNorm, RMSNorm, Embedding. Every layer takes a seeded Rng; nothing draws from global state.
 */
import { Tensor, zeros, ones } from '../engine/tensor.ts';
import { linear, layerNorm, rmsNorm, embedding } from '../engine/index.ts';
import type { Rng } from '../engine/rng.ts';
import { Module } from './module.ts';

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, rng: Rng, bias = true) {
    super();
    // PyTorch's default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias
    const bound = 1 / Math.sqrt(inFeatures);
    const w = zeros([outFeatures, inFeatures]);
    rng.fillUniform(w.f32, -bound, bound);
    this.weight = this.param('weight', w);
    if (bias) {
      const b = zeros([outFeatures]);
      rng.fillUniform(b.f32, -bound, bound);
      this.bias = this.param('bias', b);
    } else {
      this.bias = null;
    }
  }

  override linearWeights(): string[] {
    return ['weight'];
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(readonly dim: number, readonly eps = 1e-5, bias = true) {
    super();
    this.weight = this.param('weight', ones([dim]));
    this.bias = bias ? this.param('bias', zeros([dim])) : null;
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

export class RMSNorm extends Module {
  readonly weight: Tensor;
  constructor(readonly dim: number, readonly eps = 1e-6) {
    super();
    this.weight = this.param('weight', ones([dim]));
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}

export class Embedding extends Module {
  readonly weight: Tensor;
  constructor(readonly num: number, readonly dim: number, rng: Rng, std = 1) {
    super();
    const w = zeros([num, dim]);
    rng.fillNormal(w.f32, 0, std);
    this.weight = this.param('weight', w);
  }

  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}
