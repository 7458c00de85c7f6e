/**
 * MosaicGPT: the April-2023 Hugging Face export of mosaicml/examples (`model_type` mosaic_gpt), the LM
 * of OpenFlamingo-3B (anas-awadalla/mpt-1b-redpajama-200b and -dolly). Config fields: d_model,
 * n_heads, n_layers, mlp_ratio, max_seq_len, alibi, alibi_bias_max, attn_qk_ln, attn_clip_qkv,
 * softmax_scale, logit_scale, no_bias. Names: transformer.{wte, blocks.{i}.{ln_1, attn.{Wqkv, q_ln,
 * k_ln, out_proj}, ln_2, mlp.{mlp_up, mlp_down}}, ln_f}. ALiBi slopes 2^(−b(h+1)/n).
 */
import { ConfigError } from '../config-error.ts';
import type { LMFamily } from './family.ts';
import { hfBool, hfInt, hfNumber, hfOptNumber, type HF } from './hf-config.ts';
import { mptLikeFamily, type MPTNames, type MPTSpec } from './mpt-blocks.ts';

const NAMES: MPTNames = { ln1: 'ln_1', ln2: 'ln_2', mlp: 'mlp', up: 'mlp_up', down: 'mlp_down', lnF: 'ln_f' };

/** MosaicGPT's rule, for any head count: slope_h = 2^(−b (h + 1) / n). */
export function mosaicGptAlibiSlopes(n: number, b: number): Float32Array {
  return Float32Array.from({ length: n }, (_, h) => 2 ** (-b * (h + 1) / n));
}

/** logit_scale: a number, "inv_sqrt_d_model", or null. */
export function logitScale(hf: HF, file: string, dModel: number): number | null {
  const v = hf.logit_scale;
  if (v === undefined || v === null) return null;
  if (v === 'inv_sqrt_d_model') return 1 / Math.sqrt(dModel);
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  throw new ConfigError(`${file}: 'logit_scale' must be a number, "inv_sqrt_d_model" or null, got ${JSON.stringify(v)}`);
}

function spec(hf: HF, file: string): MPTSpec {
  if (hf.model_type !== undefined && hf.model_type !== 'mosaic_gpt') throw new ConfigError(`${file}: model_type '${String(hf.model_type)}' is not mosaic_gpt`);
  const d = hfInt(hf, file, 'd_model');
  const n = hfInt(hf, file, 'n_heads');
  if (d % n !== 0) throw new ConfigError(`${file}: d_model ${d} is not divisible by n_heads ${n}`);
  if (!hfBool(hf, file, 'alibi', false)) throw new ConfigError(`${file}: 'alibi' is false: learned position embeddings are not supported (every released MosaicGPT uses ALiBi)`);
  if (hfBool(hf, file, 'prefix_lm', false)) throw new ConfigError(`${file}: 'prefix_lm' true is not supported`);
  const mlpRatio = hfNumber(hf, file, 'mlp_ratio', 4);
  const clip = hfOptNumber(hf, file, 'attn_clip_qkv');
  return {
    d_model: d, n_heads: n, n_layers: hfInt(hf, file, 'n_layers'), ffn_hidden: Math.trunc(mlpRatio * d),
    no_bias: hfBool(hf, file, 'no_bias', false), qk_ln: hfBool(hf, file, 'attn_qk_ln', false),
    clip_qkv: clip, softmax_scale: hfOptNumber(hf, file, 'softmax_scale'), logit_scale: logitScale(hf, file, d),
    slopes: mosaicGptAlibiSlopes(n, hfNumber(hf, file, 'alibi_bias_max', 8)), ln_eps: 1e-5,
  };
}

export const mosaicGptFamily: LMFamily = mptLikeFamily('mosaic_gpt', spec, NAMES);
