/**
 * Scoring candidate continuations by log-likelihood (close-ended tasks: classification, multiple choice).
 */
import { intTensor } from '../engine/tensor.ts';
import { noGrad } from '../engine/index.ts';
import { type Flamingo, type FlamingoState, FlamingoInputError } from './flamingo.ts';
import { prefill } from './decode-state.ts';
import type { PromptInput } from './generate.ts';
import { logSoftmaxRow } from './token-choice.ts';

/**
 * Log-likelihood of each candidate continuation after one prompt (batch 1): Σ log p(candidate tokens).
 * The prompt is encoded once; each candidate reuses its KV cache (close-ended tasks, paper App. B).
 */
export function scoreContinuations(model: Flamingo, prompt: PromptInput, candidates: number[][]): number[] {
  return noGrad(() => {
    if (prompt.inputIds.shape[0] !== 1) throw new FlamingoInputError('scoreContinuations takes a single prompt (batch 1)');
    const { state, lastLogits } = prefill(model, prompt);
    const V = model.config.lm.vocab_size;
    const first = logSoftmaxRow(lastLogits, 0, V);
    return candidates.map((cand) => {
      if (cand.length === 0) return 0;
      let total = first[cand[0]!]!;
      if (cand.length > 1) {
        const st: FlamingoState = { ...state, cache: { keys: [...state.cache.keys], values: [...state.cache.values] }, mediaCount: state.mediaCount.slice(), mediaKV: state.mediaKV };
        const logits = model.forward({ inputIds: intTensor(cand.slice(0, -1), [1, cand.length - 1]), state: st }).f32;
        for (let t = 1; t < cand.length; t++) total += logSoftmaxRow(logits, (t - 1) * V, V)[cand[t]!]!;
      }
      return total;
    });
  });
}
