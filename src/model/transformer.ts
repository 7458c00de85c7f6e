/**
 * open_clip's transformer block, shared by the CLIP vision tower (vit.ts) and the CLIP text tower (clip.ts):
 * pre-norm residual attention (nn.MultiheadAttention names: attn.in_proj_weight / in_proj_bias / out_proj)
 * and an MLP (mlp.c_fc, mlp.c_proj). The text tower's attention is causal, as in open_clip.
 */
import { Tensor, disposeTensor, zeros } from '../engine/tensor.ts';
import { add, activation, attention, linear, slice } from '../engine/index.ts';
import type { Activation } from '../engine/kernels/types.ts';
import type { Rng } from '../engine/rng.ts';
import { Module } from '../nn/module.ts';
import { LayerNorm, Linear } from '../nn/layers.ts';
import { mergeHeads, splitHeads } from './heads.ts';

export interface BlockConfig {
  width: number;
  heads: number;
  /** MLP hidden width. */
  hidden: number;
  act: Activation;
  lnEps: number;
  /** Query i attends to keys ≤ i (the text tower). */
  causal: boolean;
}

/** nn.MultiheadAttention's layout: one packed in_proj (q, k, v rows) and out_proj. */
export class MultiheadAttention extends Module {
  readonly in_proj_weight: Tensor;
  readonly in_proj_bias: Tensor;
  readonly out_proj: Linear;
  constructor(readonly width: number, readonly heads: number, readonly causal: boolean, rng: Rng) {
    super();
    const w = zeros([3 * width, width]);
    // xavier-uniform like nn.MultiheadAttention
    const bound = Math.sqrt(6 / (width + 3 * width));
    rng.fillUniform(w.f32, -bound, bound);
    this.in_proj_weight = this.param('in_proj_weight', w);
    this.in_proj_bias = this.param('in_proj_bias', zeros([3 * width]));
    this.out_proj = this.child('out_proj', new Linear(width, width, rng));
  }

  override linearWeights(): string[] {
    return ['in_proj_weight'];
  }

  forward(x: Tensor): Tensor {
    const W = this.width;
    // Rows of in_proj are q, k, v. One product per part on row slices of the weight (small copies),
    // rather than one product whose (tokens × 3·width) output is then sliced three times: the same
    // multiply-adds, without copying the activations.
    // A packed (bf16 / int8) weight has no float rows to slice: one product, then the output is sliced.
    const packed = this.in_proj_weight.packed !== null;
    const qkv = packed ? linear(x, this.in_proj_weight, this.in_proj_bias) : null;
    // Every intermediate below is disposed once used (reused only inside a no-grad pool: the frozen ViT).
    const part = (i: number): Tensor => {
      if (qkv) return splitHeads(slice(qkv, 2, i * W, (i + 1) * W), this.heads);
      const w = slice(this.in_proj_weight, 0, i * W, (i + 1) * W);
      const b = slice(this.in_proj_bias, 0, i * W, (i + 1) * W);
      const y = linear(x, w, b);
      disposeTensor(w);
      const heads = splitHeads(y, this.heads);
      disposeTensor(y);
      return heads;
    };
    const q = part(0);
    const k = part(1);
    const v = part(2);
    if (qkv) disposeTensor(qkv);
    const o = attention(q, k, v, { causal: this.causal });
    for (const t of [q, k, v]) disposeTensor(t);
    const merged = mergeHeads(o);
    disposeTensor(o);
    const out = this.out_proj.forward(merged);
    disposeTensor(merged);
    return out;
  }
}

export class Mlp extends Module {
  readonly c_fc: Linear;
  readonly c_proj: Linear;
  constructor(width: number, hidden: number, readonly act: Activation, rng: Rng) {
    super();
    this.c_fc = this.child('c_fc', new Linear(width, hidden, rng));
    this.c_proj = this.child('c_proj', new Linear(hidden, width, rng));
  }

  forward(x: Tensor): Tensor {
    const h = this.c_fc.forward(x);
    const a = activation(this.act, h);
    disposeTensor(h);
    const y = this.c_proj.forward(a);
    disposeTensor(a);
    return y;
  }
}

/** Pre-norm block: x += attn(ln_1(x)); x += mlp(ln_2(x)). */
export class ResidualAttentionBlock extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: MultiheadAttention;
  readonly ln_2: LayerNorm;
  readonly mlp: Mlp;
  constructor(cfg: BlockConfig, rng: Rng) {
    super();
    this.ln_1 = this.child('ln_1', new LayerNorm(cfg.width, cfg.lnEps));
    this.attn = this.child('attn', new MultiheadAttention(cfg.width, cfg.heads, cfg.causal, rng));
    this.ln_2 = this.child('ln_2', new LayerNorm(cfg.width, cfg.lnEps));
    this.mlp = this.child('mlp', new Mlp(cfg.width, cfg.hidden, cfg.act, rng));
  }

  forward(x: Tensor): Tensor {
    const n1 = this.ln_1.forward(x);
    const a = this.attn.forward(n1);
    disposeTensor(n1);
    const h = add(x, a);
    disposeTensor(a);
    const n2 = this.ln_2.forward(h);
    const m = this.mlp.forward(n2);
    disposeTensor(n2);
    const y = add(h, m);
    disposeTensor(m);
    disposeTensor(h);
    return y;
  }
}
