/**
 * The steps of generation over an explicit FlamingoState: run the prompt once (prefill), run one token
 * per row (decodeStep), reorder rows (beam search), and assemble a GenerationOutput. Shared by
 * greedy / sampling (generate.ts), beam search (beam-search.ts), BatchDecoder and the evaluation.
 */
import { Tensor, intTensor } from '../engine/tensor.ts';
import { concat, indexSelect } from '../engine/index.ts';
import { type Flamingo, type FlamingoState, FlamingoInputError } from './flamingo.ts';
import type { XAttnTrace } from './gated-xattn.ts';
import type { GenerationConfig, GenerationOutput, PromptInput } from './generate.ts';

/**
 * Reorder (or repeat) the batch rows of a state: row r of the result is row index[r] of the input.
 * sameMedia: every row r keeps media identical to its old row r (beam reordering within a prompt's
 * beams), so the visual tokens and their cached keys/values are kept as they are.
 */
export function selectStateRows(state: FlamingoState, index: number[], sameMedia = false): FlamingoState {
  const idx = intTensor(index);
  const B = state.batch;
  const Lt = state.length;
  const mask = new Uint8Array(index.length * Lt);
  index.forEach((src, r) => mask.set(state.mask.subarray(src * Lt, (src + 1) * Lt), r * Lt));
  return {
    media: sameMedia ? state.media : state.media ? indexSelect(state.media, 0, idx) : null,
    cache: {
      keys: state.cache.keys.map((k) => (k ? k.selectRows(index) : null)),
      values: state.cache.values.map((v) => (v ? v.selectRows(index) : null)),
    },
    mask,
    length: Lt,
    batch: index.length,
    mediaCount: Int32Array.from(index, (src) => {
      if (src < 0 || src >= B) throw new FlamingoInputError(`state row ${src} out of range`);
      return state.mediaCount[src]!;
    }),
    mediaKV: sameMedia ? state.mediaKV : new Map(),
  };
}

/** Run the prompt: returns its state (KV cache, media) and the logits of its last position (B, V). */
export function prefill(model: Flamingo, prompt: PromptInput, onXAttn?: (t: XAttnTrace) => void): { state: FlamingoState; lastLogits: Float32Array } {
  const [B, L] = prompt.inputIds.shape as [number, number];
  if (L === 0) throw new FlamingoInputError('the prompt is empty');
  const state = model.newState(B);
  const logits = model.forward({ ...prompt, state, onXAttn });
  const V = logits.shape[2]!;
  const last = new Float32Array(B * V);
  for (let b = 0; b < B; b++) last.set(logits.f32.subarray((b * L + L - 1) * V, (b * L + L) * V), b * V);
  return { state, lastLogits: last };
}

/** One single-token step for every row; returns (B, V) logits. */
export function decodeStep(model: Flamingo, state: FlamingoState, tokens: number[], onXAttn?: (t: XAttnTrace) => void): Float32Array {
  const B = state.batch;
  const logits = model.forward({ inputIds: intTensor(tokens, [B, 1]), state, useCachedMedia: true, onXAttn });
  return logits.f32;
}

/** The token ids that end a row: stopTokens, and <|endofchunk|> unless stopAtEoc is false. */
export function stopSet(model: Flamingo, cfg: GenerationConfig): Set<number> {
  const s = new Set<number>(cfg.stopTokens ?? []);
  if (cfg.stopAtEoc ?? true) s.add(model.config.flamingo.eoc_token_id);
  return s;
}

/** The output of a finished generation: sequences, generated ids (padded), step logits, timing. */
export function finish(
  prompt: PromptInput, gen: number[][], pad: number, steps: Float32Array[], V: number,
  timing: GenerationOutput['timing'],
): GenerationOutput {
  const B = prompt.inputIds.shape[0]!;
  const S = Math.max(...gen.map((g) => g.length), 0);
  const genIds = new Int32Array(B * S).fill(pad);
  gen.forEach((g, b) => genIds.set(g, b * S));
  const generatedIds = new Tensor(genIds, [B, S]);
  const sequences = concat([prompt.inputIds, generatedIds], 1);
  let stepLogits: Tensor | undefined;
  if (steps.length > 0) {
    const n = steps.length;
    const data = new Float32Array(B * n * V);
    for (let k = 0; k < n; k++) for (let b = 0; b < B; b++) data.set(steps[k]!.subarray(b * V, (b + 1) * V), (b * n + k) * V);
    stepLogits = new Tensor(data, [B, n, V]);
  }
  return { sequences, generated: gen, generatedIds, stepLogits, timing };
}
