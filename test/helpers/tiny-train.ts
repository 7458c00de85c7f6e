/**
 * The small training setup the training tests share: a 16-pixel synthetic world, a one-layer ViT /
 * text encoder and a two-layer LM (fast enough for several stages in a test), and a short warm-up optimiser.
 */

/** Synthetic-world options: 16-pixel images, no supersampling. */
export const TINY_WORLD = { imageSize: 16, supersample: 1 };

/** AdamW with a two-step warm-up into a cosine schedule. */
export const TINY_OPTIM = { lr: 3e-3, warmup_steps: 2, schedule: 'cosine' };

/** The `model` section of a training config: every part at its smallest useful size. */
export const TINY_MODEL = {
  vision: { image_size: 16, patch_size: 8, width: 32, layers: 1, heads: 2, mlp_ratio: 2, output_dim: 32 },
  text_encoder: { context_length: 24, width: 32, layers: 1, heads: 2, mlp_ratio: 2 },
  lm: { hidden_size: 32, intermediate_size: 64, num_layers: 2, num_heads: 2, num_key_value_heads: 2, max_position_embeddings: 128 },
  resampler: { depth: 1, dim_head: 16, heads: 2, num_latents: 4, ff_mult: 2 },
  xattn: { dim_head: 16, heads: 2, ff_mult: 2 },
};

/** A tokenizer section trained on `docs` synthetic-text documents of the tiny world. */
export function tinyTokenizer(vocabSize: number, docs: number): Record<string, unknown> {
  return { vocab_size: vocabSize, corpus: [{ source: { type: 'synthetic-text', world: TINY_WORLD }, docs }] };
}
