/**
 * Text generation and scoring with a KV cache (paper §3 few-shot use; OpenFlamingo generate()):
 * the prompt (interleaved <image> / text, left padded) is encoded once — visual tokens and KV cache —
 * then each new token costs one single-token step. Generated tokens attend to the last image of
 * their prompt (use_cached_media). Strategies: greedy, beam search (num_beams, length_penalty),
 * sampling (temperature, top-k, top-p; seeded). Also log-likelihood scoring of candidate
 * continuations for close-ended tasks.
 */
import { Tensor, intTensor } from '../engine/tensor.ts';
import { noGrad, concat, indexSelect } from '../engine/index.ts';
import { Rng } from '../engine/rng.ts';
import { type Flamingo, type FlamingoState, FlamingoInputError } from './flamingo.ts';
import { validateGenerationConfig } from './generation-options.ts';
import type { XAttnTrace } from './gated-xattn.ts';

export interface GenerationConfig {
  maxNewTokens: number;
  strategy?: 'greedy' | 'beam' | 'sample';
  numBeams?: number;
  /** Beam score = sum log p / length^lengthPenalty (HF convention). */
  lengthPenalty?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
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

/** The gated blocks' view of one position: per layer (in `AttentionRecord.layers` order). */
export interface TokenAttention {
  /** [layer][media]: attention mass on each media item, averaged over heads. */
  weights: number[][];
  /** [layer]: ‖tanh(α_attn)·xattn‖ / ‖x‖ (how much the images moved this position). */
  strength: number[];
}

export interface AttentionRecord {
  /** LM layers that have a gated block, in order. */
  layers: number[];
  /** tanh(α_attn) and tanh(α_ff) per layer. */
  attnGates: number[];
  ffGates: number[];
  /** Media items per row (T of the batch). */
  media: number;
  /** Per row, per prompt position (left padding included). */
  prompt: TokenAttention[][];
  /** Per row, per generated token: the attention of the forward pass whose logits chose the token. */
  generated: TokenAttention[][];
}

export interface TokenEvent {
  row: number;
  step: number;
  token: number;
  attention?: TokenAttention;
}

/** Collects the XAttnTrace calls of one forward pass and slices them per position. */
class AttentionCollector {
  private traces: XAttnTrace[] = [];
  record: AttentionRecord | null = null;
  readonly onXAttn = (t: XAttnTrace): void => { this.traces.push(t); };

  /** Per-row, per-position attention of the forward pass just run. */
  take(): TokenAttention[][] {
    const tr = this.traces;
    this.traces = [];
    if (tr.length === 0) throw new FlamingoInputError('recordAttention needs media: the prompt has no images, so no gated block ran');
    if (!this.record) {
      this.record = { layers: tr.map((t) => t.layer), attnGates: tr.map((t) => t.attnGate), ffGates: tr.map((t) => t.ffGate), media: tr[0]!.media, prompt: [], generated: [] };
    }
    const { batch: B, length: L, media: T } = tr[0]!;
    return Array.from({ length: B }, (_, b) => Array.from({ length: L }, (_, p) => ({
      weights: tr.map((t) => Array.from(t.mediaWeights.subarray((b * L + p) * T, (b * L + p + 1) * T))),
      strength: tr.map((t) => t.strength[b * L + p]!),
    })));
  }
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

export function argmax(row: Float32Array, off: number, V: number): number {
  let best = 0;
  let bv = -Infinity;
  for (let j = 0; j < V; j++) {
    const v = row[off + j]!;
    if (v > bv) { bv = v; best = j; }
  }
  return best;
}

export function logSoftmaxRow(row: Float32Array, off: number, V: number): Float64Array {
  let m = -Infinity;
  for (let j = 0; j < V; j++) m = Math.max(m, row[off + j]!);
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp(row[off + j]! - m);
  const lse = m + Math.log(s);
  const out = new Float64Array(V);
  for (let j = 0; j < V; j++) out[j] = row[off + j]! - lse;
  return out;
}

export function sampleRow(row: Float32Array, off: number, V: number, cfg: GenerationConfig, rng: Rng): number {
  const temp = cfg.temperature ?? 1;
  if (!(temp > 0)) return argmax(row, off, V);
  const idx = Array.from({ length: V }, (_, j) => j);
  idx.sort((a, b) => row[off + b]! - row[off + a]! || a - b);
  let keep = cfg.topK && cfg.topK > 0 ? Math.min(cfg.topK, V) : V;
  const m = row[off + idx[0]!]!;
  const probs = new Float64Array(keep);
  let s = 0;
  for (let i = 0; i < keep; i++) { probs[i] = Math.exp((row[off + idx[i]!]! - m) / temp); s += probs[i]!; }
  if (cfg.topP !== undefined && cfg.topP < 1) {
    let c = 0;
    for (let i = 0; i < keep; i++) {
      c += probs[i]! / s;
      if (c >= cfg.topP) { keep = i + 1; break; }
    }
    s = 0;
    for (let i = 0; i < keep; i++) s += probs[i]!;
  }
  let u = rng.uniform() * s;
  for (let i = 0; i < keep; i++) {
    u -= probs[i]!;
    if (u <= 0) return idx[i]!;
  }
  return idx[keep - 1]!;
}

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
      keys: state.cache.keys.map((k) => (k ? indexSelect(k, 0, idx) : null)),
      values: state.cache.values.map((v) => (v ? indexSelect(v, 0, idx) : null)),
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

function stopSet(model: Flamingo, cfg: GenerationConfig): Set<number> {
  const s = new Set<number>(cfg.stopTokens ?? []);
  if (cfg.stopAtEoc ?? true) s.add(model.config.flamingo.eoc_token_id);
  return s;
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

function finish(
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

interface Hyp { tokens: number[]; score: number }

/**
 * Beam search per row (HF semantics): keep numBeams live beams; a beam that emits a stop token is
 * finished with score sum(logp) / len^lengthPenalty; a row is done when it has numBeams finished
 * hypotheses and no live beam can beat the worst of them, or at maxNewTokens.
 */
function beamSearch(model: Flamingo, prompt: PromptInput, cfg: GenerationConfig): GenerationOutput {
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
