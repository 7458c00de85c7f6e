/**
 * Text generation and scoring with a KV cache (paper §3 few-shot use; OpenFlamingo generate()):
 * the prompt (interleaved <image> / text, left padded) is encoded once — visual tokens and KV cache —
 * then each new token costs one single-token step. Generated tokens attend to the last image of
 * their prompt (use_cached_media). Strategies: greedy, beam search (num_beams, length_penalty),
 * sampling (temperature, top-k, top-p; seeded). The steps live in decode-state.ts, beam search in
 * beam-search.ts, token choice in token-choice.ts; scoring of candidate continuations in score.ts.
 */
import type { Tensor } from '../engine/tensor.ts';
import { noGrad } from '../engine/index.ts';
import { Rng } from '../engine/rng.ts';
import { type Flamingo, type FlamingoState, FlamingoInputError } from './flamingo.ts';
import { validateGenerationConfig } from './generation-options.ts';
import { AttentionCollector, type AttentionRecord, type TokenAttention, type TokenEvent } from './attention-record.ts';
import { beamSearch } from './beam-search.ts';
import { decodeStep, finish, prefill, stopSet } from './decode-state.ts';
import { argmax, sampleRow, type SamplingOptions } from './token-choice.ts';

export type { AttentionRecord, TokenAttention, TokenEvent } from './attention-record.ts';

export interface GenerationConfig extends SamplingOptions {
  maxNewTokens: number;
  strategy?: 'greedy' | 'beam' | 'sample';
  numBeams?: number;
  /** Beam score = sum log p / length^lengthPenalty (HF convention). */
  lengthPenalty?: number;
  /** Stop a row once it produced <|endofchunk|> (default true). */
  stopAtEoc?: boolean;
  /** Extra stop token ids (e.g. eos). */
  stopTokens?: number[];
  /** Keep the logits of every step (B, steps, V) — used by parity checks. */
  returnStepLogits?: boolean;
  /**
   * Record, for every prompt position and generated token, the gated cross-attention's weight on each
   * media item and its strength per layer, plus the gate values (GenerationOutput.attention). Greedy and
   * sampling only. Off by default: nothing extra is computed.
   */
  recordAttention?: boolean;
  /**
   * Called as each token is chosen (streaming), with its attention when recordAttention is on. Beam search
   * knows its answer only at the end: it calls this for the chosen hypothesis's tokens after the search.
   */
  onToken?: (event: TokenEvent) => void;
}

export interface GenerationOutput {
  /** (B, prompt + new) int32: prompt ids followed by generated ids (pad after a row stopped). */
  sequences: Tensor;
  /** Generated ids per row, without padding after the stop token (the stop token is included). */
  generated: number[][];
  /** Generated ids as a rectangular (B, steps) tensor (pad after stop). */
  generatedIds: Tensor;
  stepLogits?: Tensor;
  /** Seconds spent in prefill and in single-token steps. */
  timing: { prefillS: number; decodeS: number; decodeSteps: number };
  /** With recordAttention. */
  attention?: AttentionRecord;
}

export interface PromptInput {
  /** int32 (B, L), left padded. */
  inputIds: Tensor;
  attentionMask?: Tensor | null;
  /** (B, T, F, 3, H, W) pixels, or precomputed media (B, T, n, D). */
  visionX?: Tensor | null;
  media?: Tensor | null;
  /** The prompt already run (e.g. a shared prefix + per-row suffixes): generation continues from it. */
  prefilled?: { state: FlamingoState; lastLogits: Float32Array } | null;
}

export function generate(model: Flamingo, prompt: PromptInput, cfg: GenerationConfig): GenerationOutput {
  return noGrad(() => {
    validateGenerationConfig(cfg, { vocabSize: model.config.lm.vocab_size, maxPositions: model.config.lm.max_position_embeddings });
    checkPromptIds(prompt, model.config.lm.vocab_size);
    const strategy = cfg.strategy ?? ((cfg.numBeams ?? 1) > 1 ? 'beam' : 'greedy');
    const maxLen = model.config.lm.max_position_embeddings;
    const L = prompt.prefilled ? prompt.prefilled.state.length : prompt.inputIds.shape[1]!;
    if (maxLen !== undefined && L + cfg.maxNewTokens > maxLen) {
      throw new FlamingoInputError(`prompt of ${L} tokens + ${cfg.maxNewTokens} new tokens exceeds the model's ${maxLen} positions`);
    }
    if (cfg.recordAttention && strategy === 'beam') throw new FlamingoInputError('recordAttention works with greedy decoding and sampling, not beam search');
    if (cfg.recordAttention && prompt.prefilled) throw new FlamingoInputError('recordAttention needs to run the prompt itself (not a prefilled state)');
    if (strategy === 'beam') return beamSearch(model, prompt, cfg);
    return greedyOrSample(model, prompt, cfg, strategy === 'sample');
  });
}

/** Every prompt token id must index the embedding table (an id out of range would read past it). */
function checkPromptIds(prompt: PromptInput, V: number): void {
  const ids = prompt.inputIds.data as ArrayLike<number>;
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i]!;
    if (!(Number.isInteger(t) && t >= 0 && t < V)) {
      throw new FlamingoInputError(`prompt token id ${t} at position ${i} is outside the model's vocabulary [0, ${V})`);
    }
  }
}

function greedyOrSample(model: Flamingo, prompt: PromptInput, cfg: GenerationConfig, sample: boolean): GenerationOutput {
  const B = prompt.inputIds.shape[0]!;
  const V = model.config.lm.vocab_size;
  const pad = model.config.flamingo.pad_token_id;
  const stops = stopSet(model, cfg);
  const rng = new Rng(cfg.seed ?? 0);
  const rec = cfg.recordAttention ? new AttentionCollector() : null;
  const t0 = performance.now();
  const { state, lastLogits } = prompt.prefilled ?? prefill(model, prompt, rec?.onXAttn);
  const t1 = performance.now();
  let logits: Float32Array = lastLogits;
  // The attention of the position whose logits are in `logits`, per row.
  let current: (TokenAttention | undefined)[] = new Array<undefined>(B);
  const promptAttention = rec ? rec.take() : null;
  if (promptAttention) current = promptAttention.map((row) => row[row.length - 1]);
  const genAttention: TokenAttention[][] = Array.from({ length: B }, () => []);
  const done = new Array<boolean>(B).fill(false);
  const gen: number[][] = Array.from({ length: B }, () => []);
  const steps: Float32Array[] = [];
  let decodeSteps = 0;
  for (let step = 0; step < cfg.maxNewTokens; step++) {
    if (cfg.returnStepLogits) steps.push(logits.slice());
    const next: number[] = [];
    for (let b = 0; b < B; b++) {
      if (done[b]) { next.push(pad); continue; }
      const tok = sample ? sampleRow(logits, b * V, V, cfg, rng) : argmax(logits, b * V, V);
      gen[b]!.push(tok);
      next.push(tok);
      if (rec) genAttention[b]!.push(current[b]!);
      cfg.onToken?.({ row: b, step, token: tok, attention: current[b] });
      if (stops.has(tok)) done[b] = true;
    }
    if (done.every(Boolean) || step === cfg.maxNewTokens - 1) break;
    logits = decodeStep(model, state, next, rec?.onXAttn);
    if (rec) current = rec.take().map((row) => row[0]);
    decodeSteps++;
  }
  const t2 = performance.now();
  const out = finish(prompt, gen, pad, steps, V, { prefillS: (t1 - t0) / 1000, decodeS: (t2 - t1) / 1000, decodeSteps });
  if (rec) out.attention = { ...rec.record!, prompt: promptAttention!, generated: genAttention };
  return out;
}
