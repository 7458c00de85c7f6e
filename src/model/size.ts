/**
 * How big a model a config describes, computed from the config alone, before anything is allocated: a lower bound
 * on the parameter count (the weight matrices and embeddings; norms, biases and gates left out) and the largest
 * single tensor. `checkModelSize` compares them with the machine's memory, the typed-array limit and, when known,
 * the size of the weights that are to be loaded, so `lm.num_layers: 1e6` or `hidden_size: 1e9` in a config.json is
 * a clear error instead of minutes of allocation or a raw RangeError.
 */
import * as os from 'node:os';
import { ConfigError, type FlamingoConfig, type LMConfig } from './config.ts';
import { getLMFamily } from './lm/registry.ts';

export interface ModelSize {
  /** Lower bound on the number of parameters (exact up to norms, biases and gates). */
  parameters: number;
  /** Per part, to say which section of the config is the big one. */
  parts: { vision: number; resampler: number; xattn: number; lm: number };
  /** Elements of the largest single tensor, and which one it is. */
  largest: { elements: number; what: string };
}

/** Longest tensor accepted: typed arrays and the kernels index with 32-bit integers. */
export const MAX_TENSOR_ELEMENTS = 2 ** 31 - 1;

export function modelSize(cfg: FlamingoConfig): ModelSize {
  let largest = { elements: 0, what: '' };
  const t = (elements: number, what: string): number => {
    if (!(elements <= largest.elements)) largest = { elements, what };
    return elements;
  };
  const v = cfg.vision;
  const W = v.width;
  const grid = (v.image_size / v.patch_size) ** 2;
  const mlp = Math.floor(W * v.mlp_ratio);
  const vision = t(W * 3 * v.patch_size ** 2, 'vision patch embedding') + t((grid + 1) * W, 'vision.positional_embedding')
    + t(W * v.output_dim, 'vision.proj')
    + v.layers * (t(4 * W * W, 'vision attention (vision.width² x 4)') + 2 * t(W * mlp, 'vision MLP (vision.width x vision.mlp_ratio·width)'));

  const r = cfg.resampler;
  const rInner = r.heads * r.dim_head;
  // connectors.ts: the transformer has no latents and three projections plus the output one; the MLP only the feed-forward
  const connector = r.connector ?? 'perceiver';
  const resampler = (connector === 'perceiver' ? t(r.num_latents * r.dim, 'resampler latents') : 0) + (r.max_num_frames ?? 0) * r.dim + (r.max_num_media ?? 0) * r.dim
    + r.depth * ((connector === 'mlp' ? 0 : 4 * t(r.dim * rInner, 'resampler attention')) + 2 * t(r.dim * r.dim * r.ff_mult, 'resampler feed-forward'));

  const x = cfg.xattn;
  const xInner = x.heads * x.dim_head;
  const gatedBlocks = Math.floor(cfg.lm.num_layers / cfg.flamingo.cross_attn_every_n_layers);
  const xattn = gatedBlocks * (2 * t(x.dim * xInner, 'cross-attention q/out') + 2 * t(x.dim_visual * xInner, 'cross-attention kv')
    + 2 * t(x.dim * x.dim * x.ff_mult, 'cross-attention feed-forward'));

  const l0 = cfg.lm;
  const D = l0.hidden_size;
  let lm: number;
  if ((l0.family ?? 'llama') === 'llama') {
    const l = l0 as LMConfig;
    const kv = l.num_key_value_heads * (D / l.num_heads);
    lm = t(l.vocab_size * D, 'lm embedding (lm.vocab_size x lm.hidden_size)') * (l.tie_word_embeddings ? 1 : 2)
      + l.num_layers * (2 * t(D * D, 'lm attention (lm.hidden_size²)') + 2 * t(D * kv, 'lm key/value projection')
        + 3 * t(D * l.intermediate_size, 'lm MLP (lm.hidden_size x lm.intermediate_size)')); // SwiGLU: gate, up and down
  } else {
    // families configured by their HF config.json: the family's exact count; the embedding is the largest tensor
    t(l0.vocab_size * D, 'lm embedding (lm.vocab_size x lm.hidden_size)');
    t(3 * D * D, 'lm attention (lm.hidden_size² x 3)');
    lm = getLMFamily(l0.family).countParameters(l0);
  }
  return { parameters: vision + resampler + xattn + lm, parts: { vision, resampler, xattn, lm }, largest };
}

export interface SizeCheckOptions {
  /** Bytes of memory per parameter once loaded (default 4: parameters are float32). */
  bytesPerParameter?: number;
  /** Memory to compare with (default os.totalmem()). */
  totalMemory?: number;
  /** The weights to be loaded into the model: total bytes and a name for messages. */
  weights?: { bytes: number; file: string };
  /** Where the config came from, for messages (e.g. its path). */
  source?: string;
}

/**
 * Fewest bytes a stored parameter can take in a weights file (4-bit quantisation), so a config needing more than
 * weights.bytes / this many parameters cannot be what the weights hold.
 */
const MIN_STORED_BYTES_PER_PARAMETER = 0.5;

const gib = (b: number): string => `${(b / 2 ** 30).toFixed(1)} GiB`;

function sizeFields(cfg: FlamingoConfig, part: keyof ModelSize['parts']): string {
  const l = cfg.lm;
  switch (part) {
    case 'lm': return `lm.num_layers ${l.num_layers}, lm.hidden_size ${l.hidden_size}, ${'intermediate_size' in l ? `lm.intermediate_size ${l.intermediate_size}` : `lm.family ${l.family}`}, lm.vocab_size ${l.vocab_size}`;
    case 'vision': return `vision.layers ${cfg.vision.layers}, vision.width ${cfg.vision.width}, vision.mlp_ratio ${cfg.vision.mlp_ratio}`;
    case 'resampler': return `resampler.depth ${cfg.resampler.depth}, resampler.dim ${cfg.resampler.dim}, resampler.heads x dim_head ${cfg.resampler.heads} x ${cfg.resampler.dim_head}`;
    case 'xattn': return `xattn.dim ${cfg.xattn.dim}, xattn.ff_mult ${cfg.xattn.ff_mult}, xattn.heads x dim_head ${cfg.xattn.heads} x ${cfg.xattn.dim_head}, lm.num_layers ${l.num_layers}`;
  }
}

/** Throw a ConfigError if the config cannot be built here or cannot match the given weights. */
export function checkModelSize(cfg: FlamingoConfig, o: SizeCheckOptions = {}): ModelSize {
  const size = modelSize(cfg);
  const where = o.source ? `${o.source}: ` : '';
  const biggest = (Object.keys(size.parts) as (keyof ModelSize['parts'])[]).reduce((a, b) => (size.parts[a] >= size.parts[b] ? a : b));
  const params = size.parameters.toExponential(2);
  if (!(size.largest.elements <= MAX_TENSOR_ELEMENTS)) {
    throw new ConfigError(`${where}the ${size.largest.what} would have ${size.largest.elements.toExponential(2)} elements, over the `
      + `${MAX_TENSOR_ELEMENTS} a single tensor can hold (${sizeFields(cfg, biggest)})`);
  }
  const bytes = size.parameters * (o.bytesPerParameter ?? 4);
  const total = o.totalMemory ?? os.totalmem();
  if (!(bytes <= total)) {
    throw new ConfigError(`${where}the config describes at least ${params} parameters (${gib(bytes)} in memory), more than `
      + `this machine's ${gib(total)} (largest part: ${biggest}, ${sizeFields(cfg, biggest)})`);
  }
  if (o.weights && size.parameters * MIN_STORED_BYTES_PER_PARAMETER > o.weights.bytes) {
    throw new ConfigError(`${where}the config describes at least ${params} parameters but ${o.weights.file} ${o.weights.file.endsWith('files') ? 'hold' : 'holds'} only `
      + `${o.weights.bytes} bytes: config and weights do not match (largest part: ${biggest}, ${sizeFields(cfg, biggest)})`);
  }
  return size;
}
