/**
 * Task runners: one trial = (shots, seed) over the query items. Per batch of queries: pick the
 * demonstrations (random or RICES), build the prompts, left-pad them, fetch visual tokens from the
 * media cache, then either generate (captioning, VQA, video QA; beam search as OpenFlamingo) or rank
 * the class names by log-likelihood (Hateful Memes). Output entries are in the official results
 * format, in query order.
 *
 * Rank classification prefills each batch's prompts once and scores every class continuation from
 * copies of that KV cache (the prompt is never recomputed per class).
 */
import { Tensor, intTensor, noGrad } from '../engine/index.ts';
import type { Flamingo, FlamingoState } from '../model/flamingo.ts';
import { generate, prefill } from '../model/generate.ts';
import { binaryScoreFromLogprobs, postprocessCaptionGeneration, postprocessVqaGeneration } from './metrics/index.ts';
import type { EvalItem, TaskKind } from './datasets/types.ts';
import { HATEFUL_MEMES_CLASSES, buildPrompt, effectiveShots, type FewShotPrompt } from './prompts.ts';
import { type RicesIndex, type SelectionMethod, SelectionError, querySet, randomDemos } from './selection.ts';
import type { MediaEncoder } from './media.ts';

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
}

export interface EvalContext {
  model: Flamingo;
  codec: TextCodec;
  media: MediaEncoder;
}

export class EvalRunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EvalRunError';
  }
}

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

/**
 * Mean log-prob of each class continuation for each row (OpenFlamingo normalize_length=True),
 * from one prefill of the batch: (B, classes).
 */
export function rankClasses(model: Flamingo, prompt: { inputIds: Tensor; attentionMask: Tensor; media: Tensor }, classes: number[][]): number[][] {
  return noGrad(() => {
    const B = prompt.inputIds.shape[0]!;
    const V = model.config.lm.vocab_size;
    const { state, lastLogits } = prefill(model, prompt);
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
  const results: ResultEntry[] = [];
  for (let start = 0; start < queries.length; start += opts.batchSize) {
    const idx = Array.from({ length: Math.min(opts.batchSize, queries.length - start) }, (_, j) => start + j);
    const rows = idx.map((i) => {
      const ids = ctx.codec.encode(prompts[i]!.text);
      checkTokens(ctx, ids, prompts[i]!, queries[i]!.id);
      return ids;
    });
    const { inputIds, attentionMask } = leftPad(rows, pad);
    const media = ctx.media.encode(idx.map((i) => prompts[i]!.media));
    if (kind === 'classification') {
      const scores = rankClasses(ctx.model, { inputIds, attentionMask, media }, classTokens);
      idx.forEach((i, b) => results.push({ id: queries[i]!.id, score: binaryScoreFromLogprobs(scores[b]!, [...HATEFUL_MEMES_CLASSES]).predScore }));
    } else {
      const out = generate(ctx.model, { inputIds, attentionMask, media }, {
        maxNewTokens: gen.maxNewTokens,
        strategy: gen.numBeams > 1 ? 'beam' : 'greedy',
        numBeams: gen.numBeams,
        lengthPenalty: gen.lengthPenalty,
      });
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
  return { results, prompts: prompts.map((p) => p.text), seconds, itemsPerS: queries.length / Math.max(seconds, 1e-9) };
}
