/**
 * Task runners: one trial = (shots, seed) over the query items. Per batch of queries: pick the
 * demonstrations (random or RICES), build the prompts, left-pad them, fetch visual tokens from the
 * media cache, then either generate (captioning, VQA, video QA; beam search as OpenFlamingo) or rank
 * the class names by log-likelihood (Hateful Memes). Output entries are in the official results
 * format, in query order.
 *
 * Rank classification prefills each batch's prompts once and scores every class continuation from
 * copies of that KV cache (the prompt is never recomputed per class).
 *
 * demoMode 'per-batch' (random selection only; not the OpenFlamingo protocol, which draws per query):
 * one draw of demonstrations for the whole batch, so all its prompts share the demonstration prefix.
 * The prefix is prefilled once (batch 1), its KV cache repeated for every row, and only the
 * left-padded query suffixes are run per row.
 */
import { Tensor, intTensor, noGrad } from '../engine/index.ts';
import type { Flamingo, FlamingoState } from '../model/flamingo.ts';
import { generate } from '../model/generate.ts';
import { prefill, selectStateRows } from '../model/decode-state.ts';
import { binaryScoreFromLogprobs, postprocessCaptionGeneration, postprocessVqaGeneration } from './metrics/index.ts';
import type { EvalItem, MediaRef, TaskKind } from './datasets/types.ts';
import { HATEFUL_MEMES_CLASSES, buildPrompt, effectiveShots, type FewShotPrompt } from './prompts.ts';
import { type RicesIndex, type SelectionMethod, SelectionError, querySet, randomBatchDemos, randomDemos } from './selection.ts';
import type { MediaEncoder } from './media.ts';
import { FlamingoError } from '../errors.ts';

/** The text side the runner needs; BpeTokenizer fits via `tokenizerCodec`. */
export interface TextCodec {
  encode(text: string): number[];
  /** Text of generated ids with special tokens dropped. */
  decode(ids: readonly number[]): string;
}

export function tokenizerCodec(tok: { encode(t: string): number[]; decode(ids: readonly number[], o: { skipSpecial: boolean }): string }): TextCodec {
  return { encode: (t) => tok.encode(t), decode: (ids) => tok.decode(ids, { skipSpecial: true }) };
}

export interface GenerationSettings {
  numBeams: number;
  maxNewTokens: number;
  lengthPenalty: number;
}

/**
 * OpenFlamingo evaluate.py: 3 beams, length_penalty 0 (sum of log-probs, no length normalisation),
 * at most 20 new tokens for captioning and 5 for VQA (video QA uses the VQA setting).
 */
export function defaultGeneration(kind: TaskKind): GenerationSettings {
  return { numBeams: 3, lengthPenalty: 0, maxNewTokens: kind === 'captioning' ? 20 : 5 };
}

export type DemoMode = 'per-query' | 'per-batch';

export interface TrialOptions {
  shots: number;
  seed: number;
  selection: SelectionMethod;
  batchSize: number;
  /** Random selection draws from a seeded subset of this many support items (OpenFlamingo: 2048). */
  querySetSize?: number;
  generation?: Partial<GenerationSettings>;
  /** RICES index over the whole support set, and query features by media key. */
  rices?: { index: RicesIndex; queryFeature: (item: EvalItem) => Float32Array };
  /** 'per-query' (default, OpenFlamingo) or 'per-batch' (shared demonstration prefix, KV cache reused). */
  demoMode?: DemoMode;
  onProgress?: (done: number, total: number) => void;
}

export type ResultEntry =
  | { image_id: EvalItem['id']; caption: string }
  | { question_id: EvalItem['id']; answer: string }
  | { id: EvalItem['id']; score: number };

export interface TrialOutput {
  results: ResultEntry[];
  /** Prompt text of each query (same order as results). */
  prompts: string[];
  seconds: number;
  itemsPerS: number;
  /** Seconds in prompt prefill (incl. shared prefixes) and in decoding steps. */
  timing: { prefillS: number; decodeS: number };
}

export interface EvalContext {
  model: Flamingo;
  codec: TextCodec;
  media: MediaEncoder;
}

export class EvalRunError extends FlamingoError {}

/** Demonstrations (support items in prompt order) for each query of a trial. */
export function selectDemos(
  support: readonly EvalItem[], queries: readonly EvalItem[], opts: TrialOptions,
): EvalItem[][] {
  const k = effectiveShots(opts.shots);
  if (opts.selection === 'rices') {
    if (!opts.rices) throw new SelectionError('RICES selection needs a feature index');
    const { index, queryFeature } = opts.rices;
    return queries.map((q) => index.find(queryFeature(q), k, q.media.key).map((i) => support[i]!));
  }
  const pool = querySet(support.length, opts.querySetSize ?? 2048, opts.seed).map((i) => support[i]!);
  if (opts.demoMode === 'per-batch') {
    const out: EvalItem[][] = [];
    for (let s = 0; s < queries.length; s += opts.batchSize) {
      const batch = queries.slice(s, s + opts.batchSize);
      const demos = randomBatchDemos(pool, k, opts.seed, batch).map((i) => pool[i]!);
      for (let j = 0; j < batch.length; j++) out.push(demos);
    }
    return out;
  }
  return queries.map((q) => randomDemos(pool, k, opts.seed, q).map((i) => pool[i]!));
}

/** Left-padded (B, L) ids and mask from token rows. */
export function leftPad(rows: readonly number[][], pad: number): { inputIds: Tensor; attentionMask: Tensor } {
  const B = rows.length;
  const L = Math.max(...rows.map((r) => r.length));
  const ids = new Int32Array(B * L).fill(pad);
  const mask = new Int32Array(B * L);
  rows.forEach((r, b) => {
    ids.set(r, b * L + L - r.length);
    mask.fill(1, b * L + L - r.length, (b + 1) * L);
  });
  return { inputIds: new Tensor(ids, [B, L]), attentionMask: new Tensor(mask, [B, L]) };
}

function checkTokens(ctx: EvalContext, ids: number[], prompt: FewShotPrompt, queryId: EvalItem['id']): void {
  const mid = ctx.model.config.flamingo.media_token_id;
  const n = ids.filter((t) => t === mid).length;
  if (n !== prompt.media.length) {
    throw new EvalRunError(`prompt of query ${JSON.stringify(queryId)} encodes to ${n} <image> tokens (id ${mid}) for ${prompt.media.length} media; does the tokenizer's <image> id match the model's media_token_id?`);
  }
}

function logSoftmaxAt(row: Float32Array, off: number, V: number, tok: number): number {
  let m = -Infinity;
  for (let j = 0; j < V; j++) m = Math.max(m, row[off + j]!);
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp(row[off + j]! - m);
  return row[off + tok]! - m - Math.log(s);
}

export interface Prefilled {
  state: FlamingoState;
  /** (B, V) logits at each row's last prompt position. */
  lastLogits: Float32Array;
}

/**
 * Mean log-prob of each class continuation for each row (OpenFlamingo normalize_length=True),
 * from one prefill of the batch: (B, classes).
 */
export function rankClasses(model: Flamingo, prompt: { inputIds: Tensor; attentionMask: Tensor; media: Tensor }, classes: number[][]): number[][] {
  return noGrad(() => rankClassesFrom(model, prefill(model, prompt), classes));
}

/** Class ranking continuing from an already prefilled batch (its state is left untouched). */
export function rankClassesFrom(model: Flamingo, pre: Prefilled, classes: number[][]): number[][] {
  return noGrad(() => {
    const { state, lastLogits } = pre;
    const B = state.batch;
    const V = model.config.lm.vocab_size;
    const out: number[][] = Array.from({ length: B }, () => []);
    for (const cand of classes) {
      if (cand.length === 0) throw new EvalRunError('a class name encodes to no tokens');
      const sums = Array.from({ length: B }, (_, b) => logSoftmaxAt(lastLogits, b * V, V, cand[0]!));
      if (cand.length > 1) {
        // A fresh view of the cache: forward appends new tensors, so the prompt's cache stays intact.
        const st: FlamingoState = { ...state, cache: { keys: [...state.cache.keys], values: [...state.cache.values] }, mediaCount: state.mediaCount.slice() };
        const rest = cand.slice(0, -1);
        const ids = intTensor(Array.from({ length: B }, () => rest).flat(), [B, rest.length]);
        const logits = model.forward({ inputIds: ids, state: st }).f32;
        for (let b = 0; b < B; b++) {
          for (let t = 1; t < cand.length; t++) sums[b]! += logSoftmaxAt(logits, (b * rest.length + t - 1) * V, V, cand[t]!);
        }
      }
      sums.forEach((s, b) => out[b]!.push(s / cand.length));
    }
    return out;
  });
}

/**
 * Run a shared prefix once and the per-row suffixes after it: the prefix (with its media) is
 * prefilled at batch 1, its KV cache repeated for the B rows, then the left-padded suffixes run with
 * the full media (prefix media + each row's own). Padding sits between prefix and suffix; it is
 * masked and skipped by the position ids, so the result equals running each full prompt.
 */
export function prefillSharedPrefix(
  ctx: EvalContext, prefix: number[], prefixMedia: readonly MediaRef[], suffixes: number[][], suffixMedia: readonly (readonly MediaRef[])[],
): Prefilled & { inputIds: Tensor } {
  return noGrad(() => {
    const model = ctx.model;
    const B = suffixes.length;
    let preMedia: Tensor | null;
    if (prefixMedia.length > 0) {
      preMedia = ctx.media.encode([prefixMedia]);
    } else {
      // Text-only prefix (zero-shot trick). The gated blocks must still run on it (their feed-forward
      // acts on every token), with nothing visible: with image-causal masking a token before the
      // first <image> sees no media, so any placeholder media gives the same result.
      if (!model.config.xattn.only_attend_immediate_media) {
        throw new EvalRunError('a text-only shared prefix needs only_attend_immediate_media (otherwise its tokens attend to every row\'s media)');
      }
      const { num_latents: n, dim: D } = model.config.resampler;
      preMedia = new Tensor(new Float32Array(n * D), [1, 1, n, D]);
    }
    const first = prefill(model, { inputIds: intTensor(prefix, [1, prefix.length]), media: preMedia });
    const state = selectStateRows(first.state, new Array<number>(B).fill(0));
    const media = ctx.media.encode(suffixMedia.map((m) => [...prefixMedia, ...m]));
    const { inputIds, attentionMask } = leftPad(suffixes, model.config.flamingo.pad_token_id);
    const L = inputIds.shape[1]!;
    const logits = model.forward({ inputIds, attentionMask, media, state }).f32;
    const V = model.config.lm.vocab_size;
    const lastLogits = new Float32Array(B * V);
    for (let b = 0; b < B; b++) lastLogits.set(logits.subarray((b * L + L - 1) * V, (b * L + L) * V), b * V);
    return { state, lastLogits, inputIds };
  });
}

/** Run one trial of a task over `queries`. */
export function runTrial(
  ctx: EvalContext, kind: TaskKind, support: readonly EvalItem[], queries: readonly EvalItem[], opts: TrialOptions,
): TrialOutput {
  if (!(opts.batchSize >= 1)) throw new EvalRunError(`batch size must be ≥ 1, got ${opts.batchSize}`);
  const t0 = performance.now();
  const demos = selectDemos(support, queries, opts);
  const prompts = queries.map((q, i) => buildPrompt(kind, opts.shots, demos[i]!, q));
  const gen = { ...defaultGeneration(kind), ...opts.generation };
  const pad = ctx.model.config.flamingo.pad_token_id;
  const classTokens = HATEFUL_MEMES_CLASSES.map((c) => ctx.codec.encode(c));
  const perBatch = opts.demoMode === 'per-batch';
  // Zero-shot prefixes are text-only; they can be shared only under image-causal masking.
  const shared = perBatch && (opts.shots > 0 || ctx.model.config.xattn.only_attend_immediate_media);
  if (perBatch && opts.selection !== 'random') throw new SelectionError('per-batch demonstrations need random selection (RICES picks per query)');
  const results: ResultEntry[] = [];
  const timing = { prefillS: 0, decodeS: 0 };
  for (let start = 0; start < queries.length; start += opts.batchSize) {
    const idx = Array.from({ length: Math.min(opts.batchSize, queries.length - start) }, (_, j) => start + j);
    const rows = idx.map((i) => {
      const ids = ctx.codec.encode(prompts[i]!.text);
      checkTokens(ctx, ids, prompts[i]!, queries[i]!.id);
      return ids;
    });
    let prepared: (Prefilled & { inputIds: Tensor }) | null = null;
    const tb = performance.now();
    if (shared) {
      const p0 = prompts[idx[0]!]!;
      const prefix = ctx.codec.encode(p0.text.slice(0, p0.prefixLength));
      const suffixes = rows.map((r, j) => {
        // Queries start with <image>, a special token, so tokenisation never merges across the boundary.
        if (!prefix.every((t, n) => r[n] === t)) throw new EvalRunError(`prompt of query ${JSON.stringify(queries[idx[j]!]!.id)} does not start with the shared prefix tokens`);
        return r.slice(prefix.length);
      });
      const nPre = p0.media.length - 1;
      prepared = prefillSharedPrefix(ctx, prefix, p0.media.slice(0, nPre), suffixes, idx.map((i) => prompts[i]!.media.slice(nPre)));
    }
    const { inputIds, attentionMask } = leftPad(rows, pad);
    const media = prepared ? null : ctx.media.encode(idx.map((i) => prompts[i]!.media));
    if (kind === 'classification') {
      const scores = prepared ? rankClassesFrom(ctx.model, prepared, classTokens) : rankClasses(ctx.model, { inputIds, attentionMask, media: media! }, classTokens);
      idx.forEach((i, b) => results.push({ id: queries[i]!.id, score: binaryScoreFromLogprobs(scores[b]!, [...HATEFUL_MEMES_CLASSES]).predScore }));
      timing.prefillS += (performance.now() - tb) / 1000;
    } else {
      const out = generate(ctx.model, prepared ? { inputIds: prepared.inputIds, prefilled: prepared } : { inputIds, attentionMask, media }, {
        maxNewTokens: gen.maxNewTokens,
        strategy: gen.numBeams > 1 ? 'beam' : 'greedy',
        numBeams: gen.numBeams,
        lengthPenalty: gen.lengthPenalty,
      });
      // With a shared prefix the prompt ran before generate(): count everything but decoding as prefill.
      timing.prefillS += prepared ? (performance.now() - tb) / 1000 - out.timing.decodeS : out.timing.prefillS;
      timing.decodeS += out.timing.decodeS;
      idx.forEach((i, b) => {
        const text = ctx.codec.decode(out.generated[b]!);
        const q = queries[i]!;
        if (kind === 'captioning') results.push({ image_id: q.id, caption: postprocessCaptionGeneration(text) });
        else results.push({ question_id: q.id, answer: postprocessVqaGeneration(text) });
      });
    }
    opts.onProgress?.(start + idx.length, queries.length);
  }
  const seconds = (performance.now() - t0) / 1000;
  return { results, prompts: prompts.map((p) => p.text), seconds, itemsPerS: queries.length / Math.max(seconds, 1e-9), timing };
}
