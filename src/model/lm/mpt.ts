/**
 * llm-foundry MPT (`model_type` mpt, MPTForCausalLM), the LM of OpenFlamingo-9B (anas-awadalla/mpt-7b).
 * Config fields: d_model, n_heads, n_layers, expansion_ratio, max_seq_len, no_bias, norm_type,
 * logit_scale, attn_config {alibi, alibi_bias_max, qk_ln, clip_qkv, softmax_scale, attn_type, prefix_lm}.
 * Names: transformer.{wte, blocks.{i}.{norm_1, attn.{Wqkv, q_ln, k_ln, out_proj}, norm_2,
 * ffn.{up_proj, down_proj}}, norm_f}. With ALiBi there is no position embedding.
 */
import { ConfigError } from '../config-error.ts';
import type { LMFamily } from './family.ts';
import { hfBool, hfInt, hfNumber, hfObject, hfOptNumber, type HF } from './hf-config.ts';
import { logitScale } from './mosaic_gpt.ts';
import { mptLikeFamily, type MPTNames, type MPTSpec } from './mpt-blocks.ts';

const NAMES: MPTNames = { ln1: 'norm_1', ln2: 'norm_2', mlp: 'ffn', up: 'up_proj', down: 'down_proj', lnF: 'norm_f' };

/**
 * llm-foundry's rule: slopes for the next power of two N ≥ n, s_h = 2^(−b (h + 1) / N); when n < N,
 * the odd-indexed slopes then the even-indexed ones, first n (the Hugging Face / FasterTransformer order).
 */
export function mptAlibiSlopes(n: number, b: number): Float32Array {
  const N = 2 ** Math.ceil(Math.log2(n));
  const s = Array.from({ length: N }, (_, h) => 2 ** (-b * (h + 1) / N));
  const order = N === n ? s : [...s.filter((_, i) => i % 2 === 1), ...s.filter((_, i) => i % 2 === 0)].slice(0, n);
  return Float32Array.from(order);
}

function spec(hf: HF, file: string): MPTSpec {
  if (hf.model_type !== undefined && hf.model_type !== 'mpt') throw new ConfigError(`${file}: model_type '${String(hf.model_type)}' is not mpt`);
  const d = hfInt(hf, file, 'd_model');
  const n = hfInt(hf, file, 'n_heads');
  if (d % n !== 0) throw new ConfigError(`${file}: d_model ${d} is not divisible by n_heads ${n}`);
  const a = hfObject(hf, `${file} attn_config`, 'attn_config');
  const af = `${file} attn_config`;
  if (!hfBool(a, af, 'alibi', false)) throw new ConfigError(`${af}: 'alibi' is false: learned position embeddings are not supported (every released MPT uses ALiBi)`);
  if (hfBool(a, af, 'prefix_lm', false)) throw new ConfigError(`${af}: 'prefix_lm' true is not supported`);
  const attnType = a.attn_type ?? 'multihead_attention';
  if (attnType !== 'multihead_attention') throw new ConfigError(`${af}: attn_type '${String(attnType)}' is not supported (multihead_attention only)`);
  const norm = hf.norm_type ?? 'low_precision_layernorm';
  if (norm !== 'low_precision_layernorm' && norm !== 'layernorm') throw new ConfigError(`${file}: norm_type '${String(norm)}' is not supported (layernorm, low_precision_layernorm)`);
  const ffn = hf.ffn_config as HF | undefined;
  if (ffn && ffn.ffn_type !== undefined && ffn.ffn_type !== 'mptmlp') throw new ConfigError(`${file}: ffn_config.ffn_type '${String(ffn.ffn_type)}' is not supported (mptmlp)`);
  const ratio = hfNumber(hf, file, 'expansion_ratio', 4);
  return {
    d_model: d, n_heads: n, n_layers: hfInt(hf, file, 'n_layers'), ffn_hidden: Math.trunc(ratio * d),
    no_bias: hfBool(hf, file, 'no_bias', false), qk_ln: hfBool(a, af, 'qk_ln', false),
    clip_qkv: hfOptNumber(a, af, 'clip_qkv'), softmax_scale: hfOptNumber(a, af, 'softmax_scale'), logit_scale: logitScale(hf, file, d),
    slopes: mptAlibiSlopes(n, hfNumber(a, af, 'alibi_bias_max', 8)), ln_eps: 1e-5,
  };
}

export const mptFamily: LMFamily = mptLikeFamily('mpt', spec, NAMES);
