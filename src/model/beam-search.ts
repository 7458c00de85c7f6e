/**
 * Beam search (Hugging Face semantics: num_beams live beams, length-penalised finished hypotheses),
 * on the prompt and single-token steps of decode-state.ts.
 */
import type { Flamingo } from './flamingo.ts';
import { decodeStep, finish, prefill, selectStateRows, stopSet } from './decode-state.ts';
import type { GenerationConfig, GenerationOutput, PromptInput } from './generate.ts';
import { logSoftmaxRow } from './token-choice.ts';

interface Hyp { tokens: number[]; score: number }

/**
 * Beam search per row (HF semantics): keep numBeams live beams; a beam that emits a stop token is
 * finished with score sum(logp) / len^lengthPenalty; a row is done when it has numBeams finished
 * hypotheses and no live beam can beat the worst of them, or at maxNewTokens.
 */
export function beamSearch(model: Flamingo, prompt: PromptInput, cfg: GenerationConfig): GenerationOutput {
  const [B] = prompt.inputIds.shape as [number, number];
  const nb = cfg.numBeams ?? 3;
  const lp = cfg.lengthPenalty ?? 1;
  const V = model.config.lm.vocab_size;
  const pad = model.config.flamingo.pad_token_id;
  const stops = stopSet(model, cfg);
  const t0 = performance.now();
  const first = prompt.prefilled ?? prefill(model, prompt);
  const t1 = performance.now();
  // expand every row to nb beams
  let state = selectStateRows(first.state, Array.from({ length: B * nb }, (_, i) => Math.floor(i / nb)));
  let logits: Float32Array = new Float32Array(B * nb * V);
  for (let i = 0; i < B * nb; i++) logits.set(first.lastLogits.subarray(Math.floor(i / nb) * V, (Math.floor(i / nb) + 1) * V), i * V);
  let beams: Hyp[][] = Array.from({ length: B }, () => Array.from({ length: nb }, (_, k) => ({ tokens: [], score: k === 0 ? 0 : -1e9 })));
  const finished: Hyp[][] = Array.from({ length: B }, () => []);
  const rowDone = new Array<boolean>(B).fill(false);
  let decodeSteps = 0;
  for (let step = 0; step < cfg.maxNewTokens; step++) {
    const nextBeams: Hyp[][] = [];
    const srcIndex: number[] = [];
    const nextTokens: number[] = [];
    for (let b = 0; b < B; b++) {
      if (rowDone[b]) {
        nextBeams.push(beams[b]!);
        for (let k = 0; k < nb; k++) { srcIndex.push(b * nb + k); nextTokens.push(pad); }
        continue;
      }
      const cands: { score: number; beam: number; tok: number }[] = [];
      for (let k = 0; k < nb; k++) {
        const h = beams[b]![k]!;
        const lps = logSoftmaxRow(logits, (b * nb + k) * V, V);
        // top 2·nb tokens of this beam
        const top: number[] = [];
        for (let j = 0; j < V; j++) {
          if (top.length < 2 * nb) { top.push(j); top.sort((x, y) => lps[y]! - lps[x]!); } else if (lps[j]! > lps[top[top.length - 1]!]!) {
            top[top.length - 1] = j;
            top.sort((x, y) => lps[y]! - lps[x]!);
          }
        }
        for (const j of top) cands.push({ score: h.score + lps[j]!, beam: k, tok: j });
      }
      cands.sort((x, y) => y.score - x.score);
      const live: Hyp[] = [];
      for (const c of cands) {
        const tokens = [...beams[b]![c.beam]!.tokens, c.tok];
        if (stops.has(c.tok)) {
          finished[b]!.push({ tokens, score: c.score / tokens.length ** lp });
        } else {
          live.push({ tokens, score: c.score });
          srcIndex.push(b * nb + c.beam);
          nextTokens.push(c.tok);
        }
        if (live.length === nb) break;
      }
      finished[b]!.sort((x, y) => y.score - x.score);
      finished[b]!.splice(nb);
      nextBeams.push(live);
      // done when enough finished and the best live beam cannot catch up
      const curLen = step + 1;
      if (finished[b]!.length >= nb) {
        const worst = finished[b]![nb - 1]!.score;
        const bestLive = live[0] ? live[0].score / curLen ** lp : -Infinity;
        if (bestLive <= worst) rowDone[b] = true;
      }
    }
    beams = nextBeams;
    if (rowDone.every(Boolean) || step === cfg.maxNewTokens - 1) break;
    state = selectStateRows(state, srcIndex, true);
    logits = decodeStep(model, state, nextTokens);
    decodeSteps++;
  }
  const t2 = performance.now();
  const gen: number[][] = [];
  for (let b = 0; b < B; b++) {
    const pool = [...finished[b]!];
    if (pool.length === 0 || !rowDone[b]) {
      for (const h of beams[b]!) if (h.score > -1e8) pool.push({ tokens: h.tokens, score: h.score / Math.max(1, h.tokens.length) ** lp });
    }
    pool.sort((x, y) => y.score - x.score);
    gen.push(pool[0]?.tokens ?? []);
  }
  if (cfg.onToken) gen.forEach((g, row) => g.forEach((token, step) => cfg.onToken!({ row, step, token })));
  return finish(prompt, gen, pad, [], V, { prefillS: (t1 - t0) / 1000, decodeS: (t2 - t1) / 1000, decodeSteps });
}
