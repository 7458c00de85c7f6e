/**
 * `flamingo eval --suite builtin`: a few-shot suite that needs no downloaded benchmark. It measures what
 * Flamingo is about — learning a task from the examples in the prompt — on data the repo can make or
 * already has: Fashion-MNIST (fast binding of invented names), the synthetic world (captioning, VQA, an
 * output format shown only in the examples, video QA) and the Tux Paint photos (captioning).
 *
 * Every task is a list of (shots → score); scores are percentages (CIDEr × 100). Everything is
 * deterministic in --seed: data, demonstrations and decoding (greedy unless --num-beams > 1).
 * See docs/EVAL.md.
 */
import { Rng } from '../engine/rng.ts';
import { noGrad } from '../engine/index.ts';
import { FlamingoInputError, type Flamingo } from '../model/flamingo.ts';
import { generate } from '../model/generate.ts';
import { ProcessorError, type FlamingoProcessor } from '../data/processor.ts';
import { loadImage, type RgbImage } from '../data/image.ts';
import { fashionMnistAvailable, fashionMnistByClass } from '../data/fashion-mnist.ts';
import { TuxpaintMissingError, loadTuxpaint } from '../data/tuxpaint.ts';
import {
  balancedQuestion, captionInStyle, formatDocument, renderScene, resolveConfig, sampleSceneWith, sampleVideo,
  type CaptionStyle, type Scene, type SyntheticWorldConfig,
} from '../data/synthetic/index.ts';
import { bindingEpisode, evaluateBinding, type BindingClass } from './fast-binding.ts';
import type { NameInventory } from '../data/synthetic/inventories.ts';
import type { CaptionItem, EvalItem, MediaRef, TaskKind, VqaItem } from './datasets/types.ts';
import { MediaEncoder, MediaError } from './media.ts';
import { EOC_TOKEN, IMAGE_TOKEN } from './prompts.ts';
import { type EvalContext, type ResultEntry, type TextCodec, leftPad, runTrial } from './tasks.ts';
import { evaluateCaptions, ptbTokenize, vqaAccuracy } from './metrics/index.ts';
import { scoreVsShotsSvg } from './report.ts';
import { FlamingoError } from '../errors.ts';

export const BUILTIN_TASKS = [
  'fast_binding_seen', 'fast_binding_heldout', 'captioning', 'vqa', 'captioning_tuxpaint', 'format', 'video_qa',
] as const;
export type BuiltinTaskName = (typeof BUILTIN_TASKS)[number];

export const BUILTIN_METRICS: Record<BuiltinTaskName, string> = {
  fast_binding_seen: 'accuracy',
  fast_binding_heldout: 'accuracy',
  captioning: 'CIDEr',
  vqa: 'VQA accuracy',
  captioning_tuxpaint: 'CIDEr',
  format: 'exact match',
  video_qa: 'VQA accuracy',
};

export class BuiltinSuiteError extends FlamingoError {}

/** Shot counts and item counts per task; --quick trims both. */
export interface SuitePlan {
  shots: Record<BuiltinTaskName, number[]>;
  /** Queries (episodes for fast binding) per shot count. */
  items: Record<BuiltinTaskName, number>;
  /** Support pool the random demonstrations come from (synthetic and Tux Paint tasks). */
  supportPool: number;
  /** Decoding width for captioning / VQA / video QA (1 = greedy). */
  numBeams: number;
}

export function suitePlan(quick: boolean, opts: { items?: number; numBeams?: number } = {}): SuitePlan {
  const shots: SuitePlan['shots'] = {
    fast_binding_seen: quick ? [1, 3] : [1, 3, 5],
    fast_binding_heldout: quick ? [1, 3] : [1, 3, 5],
    captioning: quick ? [0, 4] : [0, 4, 8],
    vqa: quick ? [0, 4] : [0, 4, 8],
    captioning_tuxpaint: quick ? [0, 4] : [0, 4, 8],
    format: quick ? [0, 2] : [0, 2, 4],
    video_qa: quick ? [0, 2] : [0, 2, 4],
  };
  const items: SuitePlan['items'] = quick
    ? { fast_binding_seen: 10, fast_binding_heldout: 10, captioning: 8, vqa: 12, captioning_tuxpaint: 6, format: 8, video_qa: 8 }
    : { fast_binding_seen: 100, fast_binding_heldout: 100, captioning: 200, vqa: 400, captioning_tuxpaint: 48, format: 64, video_qa: 64 };
  if (opts.items !== undefined) for (const t of BUILTIN_TASKS) items[t] = opts.items;
  return { shots, items, supportPool: quick ? 32 : 64, numBeams: opts.numBeams ?? 1 };
}

export interface TaskReport {
  task: BuiltinTaskName;
  metric: string;
  /** Shot count → score (percent; CIDEr × 100); null when that shot count cannot run on this model. */
  shots: Record<string, number | null>;
  /** Queries per shot count (0 when the task was skipped). */
  items: number;
  /** Set when the whole task was skipped (data absent …). */
  skipped?: string;
  notes?: string[];
  /** Task-specific settings worth recording (ways, frames …). */
  settings?: Record<string, number | string>;
  /** VQA and video QA: shot count → question kind → accuracy (which kinds the model reads). */
  by_kind?: Record<string, Record<string, number>>;
  /**
   * Fast binding: shot count → name inventory → accuracy (BINDING_INVENTORIES). `shots` holds the generator's
   * names (the documented prompts); the others show whether the model copies any name or only names of its style.
   */
  by_inventory?: Record<string, Record<string, number | null>>;
}

export interface SuiteReport {
  model: string;
  tasks: TaskReport[];
  seconds: number;
}

export interface SuiteOptions {
  quick: boolean;
  seed: number;
  /** Overrides the items per task (tests, quick looks). */
  items?: number;
  numBeams?: number;
  tuxpaintDir?: string;
  /** Class split for fast binding; null → fast binding is skipped with a note. */
  classes: { seen: number[]; heldout: number[] } | null;
  onLog?: (line: string) => void;
  /** Run only these tasks (default: all of BUILTIN_TASKS), e.g. the ablation table's subset. */
  tasks?: readonly BuiltinTaskName[];
  /** Fast binding's name inventories (default BINDING_INVENTORIES; 'generator' is the task's score). */
  bindingInventories?: readonly NameInventory[];
}

export interface SuiteOutput {
  report: SuiteReport;
  /** The first few prompts of each (task, shots), for inspection and tests. */
  prompts: Record<string, Record<string, string[]>>;
  /** What the model answered to the first few queries of each (task, shots), beside the expected answer. */
  outputs: Record<string, Record<string, SuiteExample[]>>;
}

export interface SuiteExample {
  output: string;
  expected: string;
}

interface Ctx extends EvalContext {
  processor: FlamingoProcessor;
  S: number;
  plan: SuitePlan;
  seed: number;
  world: SyntheticWorldConfig;
  log: (line: string) => void;
  prompts: SuiteOutput['prompts'];
  outputs: SuiteOutput['outputs'];
  /** Fast binding's name inventories to run; null = all. */
  inventories: readonly NameInventory[] | null;
}

const PROMPTS_KEPT = 3;
const BATCH = 8;

function keepPrompts(ctx: Ctx, task: string, shots: number, texts: readonly string[]): void {
  (ctx.prompts[task] ??= {})[String(shots)] = texts.slice(0, PROMPTS_KEPT);
}

function keepOutputs(ctx: Ctx, task: string, shots: number, examples: readonly SuiteExample[]): void {
  // every query's answer, so a score can be traced to the answers behind it (a few KB per task)
  (ctx.outputs[task] ??= {})[String(shots)] = [...examples];
}

/** The generated text of a caption / VQA result, and the first reference it is scored against. */
function resultExample(q: EvalItem, r: ResultEntry): SuiteExample {
  if ('caption' in r) return { output: r.caption, expected: (q as CaptionItem).captions[0]! };
  if ('answer' in r) return { output: r.answer, expected: (q as VqaItem).answers[0]! };
  return { output: String(r.score), expected: '' };
}

/** Errors that mean "this shot count does not fit this model" (too many media or positions), not a bug. */
function doesNotFit(e: unknown): e is Error {
  return e instanceof FlamingoInputError || e instanceof ProcessorError || e instanceof MediaError;
}

/** Media slots a prompt with `media` items needs; null when the model has room. */
function mediaLimitNote(model: Flamingo, media: number): string | null {
  const max = model.config.resampler.max_num_media;
  return max !== null && media > max ? `needs ${media} media per prompt but the model takes at most ${max} (resampler.max_num_media)` : null;
}

function memRef(key: string, load: () => RgbImage[]): MediaRef {
  return { key, files: [], load };
}

const pct = (x: number): number => Math.round(x * 1e4) / 1e4;

// ---------------------------------------------------------------------------------------------
// (a) fast concept binding on Fashion-MNIST

/**
 * Name inventories fast binding is measured with (src/data/synthetic/inventories.ts): the project's generator,
 * `unseen` (onsets and vowels that no training inventory uses), random letter strings and rare real words
 * (never drawn in training). Each gets its own episodes (seed offset 10·i), the generator's are the earlier ones.
 */
export const BINDING_INVENTORIES: readonly NameInventory[] = ['generator', 'unseen', 'letters', 'rare'];

function fastBinding(ctx: Ctx, task: 'fast_binding_seen' | 'fast_binding_heldout', classes: BindingClass[]): TaskReport {
  const ways = Math.min(5, classes.length);
  const rep: TaskReport = { task, metric: BUILTIN_METRICS[task], shots: {}, items: ctx.plan.items[task], settings: { ways } };
  if (ways < 2) return { ...rep, shots: {}, items: 0, skipped: `only ${classes.length} class(es) in this split; fast binding needs 2` };
  rep.by_inventory = {};
  for (const shots of ctx.plan.shots[task]) {
    const limit = mediaLimitNote(ctx.model, ways * shots + 1);
    if (limit) {
      rep.shots[String(shots)] = null;
      (rep.notes ??= []).push(`${shots} shots: ${limit}`);
      continue;
    }
    const byInv: Record<string, number | null> = (rep.by_inventory[String(shots)] = {});
    for (const [i, inventory] of BINDING_INVENTORIES.entries()) {
      if (ctx.inventories && !ctx.inventories.includes(inventory)) continue;
      const seed = ctx.seed * 1000 + (task === 'fast_binding_seen' ? 0 : 100) + 10 * i + shots;
      const key = inventory === 'generator' ? task : `${task}/${inventory}`;
      // evaluateBinding draws its episodes from one Rng(seed) in order, so these are its first prompts.
      const rng = new Rng(seed);
      keepPrompts(ctx, key, shots, Array.from({ length: Math.min(PROMPTS_KEPT, rep.items) }, () => bindingEpisode(rng, classes, ways, shots, inventory).prompt));
      try {
        const r = evaluateBinding(ctx.model, ctx.processor, classes, { ways, shots, episodes: rep.items, seed, batchSize: BATCH, inventory });
        byInv[inventory] = pct(100 * r.accuracy);
        keepOutputs(ctx, key, shots, r.examples.map((x) => ({ output: x.predicted, expected: x.answer })));
      } catch (e) {
        if (!doesNotFit(e)) throw e;
        byInv[inventory] = null;
        (rep.notes ??= []).push(`${shots} shots, ${inventory} names: ${e.message}`);
      }
    }
    rep.shots[String(shots)] = byInv.generator ?? null;
  }
  return rep;
}

// ---------------------------------------------------------------------------------------------
// (b) captioning / VQA on synthetic scenes and Tux Paint photos; (d) video QA — OpenFlamingo protocol

function sceneRef(ctx: Ctx, key: string, scene: ReturnType<typeof sampleSceneWith>): MediaRef {
  return memRef(key, () => [renderScene(scene, ctx.S, { supersample: ctx.world.supersample })]);
}

/**
 * The synthetic captioning set's house style, as a captioning dataset has one (COCO's annotators write short
 * declarative sentences): "There are two red circles and a blue star on a sand background." It is one of the
 * world's caption templates; the model learns which from the examples.
 */
export const SUITE_CAPTION_STYLE: CaptionStyle = { template: 3, digits: false };

/** The first `max` orderings of the scene's objects: rotations, then reversed rotations (the same order can recur). */
function objectOrders(scene: Scene, max: number): Scene[] {
  const n = scene.objects.length;
  const orders: Scene[] = [];
  for (const rev of [false, true]) {
    for (let k = 0; k < n; k++) {
      const objs = [...scene.objects.slice(k), ...scene.objects.slice(0, k)];
      orders.push({ ...scene, objects: rev ? objs.reverse() : objs });
    }
  }
  return orders.slice(0, max);
}

function syntheticCaptionItems(ctx: Ctx, split: 'support' | 'query', n: number): CaptionItem[] {
  const root = new Rng(ctx.seed).fork('builtin:captioning').fork(split);
  return Array.from({ length: n }, (_, i) => {
    const scene = sampleSceneWith(root.fork(i), ctx.world);
    // References as five annotators in the house style would write them: the same sentence listing the objects
    // in different orders. The first (scene order) is the demonstration caption.
    const captions = [...new Set(objectOrders(scene, 5).map((s) => captionInStyle(s, SUITE_CAPTION_STYLE)))];
    return { kind: 'captioning', id: split === 'support' ? 100000 + i : i, captions, media: sceneRef(ctx, `cap:${split}:${i}`, scene) };
  });
}

/**
 * One known answer as 10 identical human answers (VQAv2 has 10): VQA accuracy's leave-one-out rule
 * would score a match against a single answer as 0.
 */
export const tenfold = (a: string): string[] => new Array<string>(10).fill(a);

function syntheticVqaItems(ctx: Ctx, split: 'support' | 'query', n: number): (VqaItem & { answerType: string })[] {
  const root = new Rng(ctx.seed).fork('builtin:vqa').fork(split);
  return Array.from({ length: n }, (_, i) => {
    const r = root.fork(i);
    const scene = sampleSceneWith(r, ctx.world);
    const q = balancedQuestion(r, scene, { shapes: ctx.world.shapes, colours: ctx.world.colours });
    return {
      kind: 'vqa', id: split === 'support' ? 100000 + i : i, question: q.question, answers: tenfold(q.answer),
      answerType: q.kind, media: sceneRef(ctx, `vqa:${split}:${i}`, scene),
    };
  });
}

function videoFrames(model: Flamingo): number {
  return Math.min(8, model.config.resampler.max_num_frames ?? 8);
}

function syntheticVideoItems(ctx: Ctx, split: 'support' | 'query', n: number, frames: number): (VqaItem & { answerType: string })[] {
  const root = new Rng(ctx.seed).fork('builtin:video').fork(split);
  return Array.from({ length: n }, (_, i) => {
    const r = root.fork(i);
    const video = sampleVideo(r, { frames, size: ctx.S, world: { imageSize: ctx.S } });
    const q = video.qa[r.int(video.qa.length)]!;
    return {
      kind: 'video_qa', id: split === 'support' ? 100000 + i : i, question: q.question, answers: tenfold(q.answer),
      answerType: q.kind, media: memRef(`video:${split}:${i}`, () => video.frames),
    };
  });
}

/** Score one trial's results (query order) with the official metric code. */
export function scoreResults(kind: TaskKind, queries: readonly EvalItem[], results: readonly ResultEntry[]): number {
  if (kind === 'captioning') {
    const samples = queries.map((q, i) => ({
      candidate: ptbTokenize((results[i] as { caption: string }).caption),
      references: (q as CaptionItem).captions.map(ptbTokenize),
    }));
    return pct(100 * evaluateCaptions(samples).scores.CIDEr);
  }
  return scoreVqa(queries, results).overall;
}

/** VQA accuracy overall and per question kind (count, colour, shape, …; the VQAv2 scorer's answer types). */
export function scoreVqa(queries: readonly EvalItem[], results: readonly ResultEntry[]): { overall: number; byKind: Record<string, number> } {
  const ev = vqaAccuracy(queries.map((q, i) => ({
    prediction: (results[i] as { answer: string }).answer,
    answers: (q as VqaItem).answers,
    answerType: (q as VqaItem & { answerType?: string }).answerType ?? 'other',
  })));
  return { overall: ev.overall, byKind: ev.perAnswerType };
}

function protocolTask(
  ctx: Ctx, task: BuiltinTaskName, kind: TaskKind, support: readonly EvalItem[], queries: readonly EvalItem[],
  settings?: Record<string, number | string>,
): TaskReport {
  const rep: TaskReport = { task, metric: BUILTIN_METRICS[task], shots: {}, items: queries.length, ...(settings ? { settings } : {}) };
  for (const shots of ctx.plan.shots[task]) {
    const limit = mediaLimitNote(ctx.model, shots === 0 ? 1 : shots + 1);
    if (limit) {
      rep.shots[String(shots)] = null;
      (rep.notes ??= []).push(`${shots} shots: ${limit}`);
      continue;
    }
    try {
      const out = runTrial(ctx, kind, support, queries, {
        shots, seed: ctx.seed, selection: 'random', batchSize: BATCH, querySetSize: support.length,
        generation: { numBeams: ctx.plan.numBeams, lengthPenalty: 0 }, demoMode: 'per-query',
      });
      keepPrompts(ctx, task, shots, out.prompts);
      keepOutputs(ctx, task, shots, out.results.map((r, i) => resultExample(queries[i]!, r)));
      if (kind === 'captioning') rep.shots[String(shots)] = scoreResults(kind, queries, out.results);
      else {
        const { overall, byKind } = scoreVqa(queries, out.results);
        rep.shots[String(shots)] = overall;
        (rep.by_kind ??= {})[String(shots)] = byKind;
      }
      ctx.log(`${task} ${shots}-shot: ${rep.metric} ${rep.shots[String(shots)]!.toFixed(2)} (${out.seconds.toFixed(1)} s)`);
    } catch (e) {
      if (!doesNotFit(e)) throw e;
      rep.shots[String(shots)] = null;
      (rep.notes ??= []).push(`${shots} shots: ${e.message}`);
    }
  }
  return rep;
}

function tuxpaintTask(ctx: Ctx, dir: string | undefined): TaskReport {
  const task = 'captioning_tuxpaint';
  let all;
  try {
    all = loadTuxpaint(dir);
  } catch (e) {
    if (!(e instanceof TuxpaintMissingError)) throw e;
    return { task, metric: BUILTIN_METRICS[task], shots: {}, items: 0, skipped: e.message };
  }
  const need = Math.max(...ctx.plan.shots[task]) + 2;
  if (all.length < need + 1) {
    return { task, metric: BUILTIN_METRICS[task], shots: {}, items: 0, skipped: `only ${all.length} captioned Tux Paint stamps (need ${need + 1})` };
  }
  const order = new Rng(ctx.seed).fork('builtin:tuxpaint').shuffle(Array.from({ length: all.length }, (_, i) => i));
  const nq = Math.min(ctx.plan.items[task], all.length - need);
  const np = Math.min(ctx.plan.supportPool, all.length - nq);
  const item = (i: number, id: number): CaptionItem => {
    const t = all[i]!;
    return { kind: 'captioning', id, captions: [t.caption], media: { key: `tux:${t.path}`, files: [t.path], load: () => [loadImage(t.path)] } };
  };
  const queries = order.slice(0, nq).map((i, j) => item(i, j));
  const support = order.slice(nq, nq + np).map((i, j) => item(i, 100000 + j));
  return protocolTask(ctx, task, 'captioning', support, queries, { support_pool: np });
}

// ---------------------------------------------------------------------------------------------
// (c) output format shown only in the examples

interface FormatEpisode {
  /** Example texts ("Label: [COLOUR: red]") with their images, in document order. */
  examples: { image: RgbImage; text: string }[];
  query: { image: RgbImage; lead: string; answer: string };
  format: string;
}

const FORMAT_EXAMPLES = 4;

/**
 * A format document from the synthetic world with exactly FORMAT_EXAMPLES examples before the query
 * (documents with another image count are redrawn), so every shot count asks the same query and
 * k shots show the k examples nearest to it.
 */
export function formatEpisode(seed: number, index: number, imageSize: number): FormatEpisode {
  const cfg = resolveConfig({ imageSize, maxImagesPerDocument: FORMAT_EXAMPLES + 1 });
  const root = new Rng(seed).fork('builtin:format').fork(index);
  for (let attempt = 0; attempt < 1000; attempt++) {
    const doc = formatDocument(root.fork(attempt), cfg, `format${index}`);
    const pairs: { image: RgbImage; text: string }[] = [];
    for (let c = 0; c + 1 < doc.chunks.length; c += 2) {
      const im = doc.chunks[c]!;
      const tx = doc.chunks[c + 1]!;
      if (im.type !== 'image' || tx.type !== 'text') throw new BuiltinSuiteError(`format document ${doc.id}: expected image/text pairs`);
      pairs.push({ image: im.image, text: tx.text });
    }
    if (pairs.length !== FORMAT_EXAMPLES + 1 || !doc.query) continue;
    const q = pairs[FORMAT_EXAMPLES]!;
    return { examples: pairs.slice(0, FORMAT_EXAMPLES), query: { image: q.image, lead: doc.query.prompt, answer: doc.query.answer }, format: doc.format ?? '' };
  }
  throw new BuiltinSuiteError(`no format document with ${FORMAT_EXAMPLES + 1} images in 1000 draws`);
}

/** k-shot format prompt: the k examples nearest the query, then the query image and its lead word. */
export function formatPrompt(ep: FormatEpisode, shots: number, keyPrefix: string): { text: string; media: MediaRef[] } {
  if (!Number.isInteger(shots) || shots < 0 || shots > ep.examples.length) throw new RangeError(`format task: shots must be in 0..${ep.examples.length}, got ${shots}`);
  const demos = ep.examples.slice(ep.examples.length - shots);
  // Same layout as the training documents (interleavedToPrompt): no separator between chunks.
  const text = demos.map((d) => `${IMAGE_TOKEN}${d.text}${EOC_TOKEN}`).join('') + `${IMAGE_TOKEN}${ep.query.lead}`;
  const media = [
    ...demos.map((d, j) => memRef(`${keyPrefix}:ex${ep.examples.length - shots + j}`, () => [d.image])),
    memRef(`${keyPrefix}:query`, () => [ep.query.image]),
  ];
  return { text, media };
}

/** Greedy continuations of prompts (text + media), batched; special tokens dropped. */
function generateTexts(ctx: Ctx, prompts: readonly { text: string; media: MediaRef[] }[], maxNewTokens: number): string[] {
  const out: string[] = [];
  const mid = ctx.model.config.flamingo.media_token_id;
  for (let s = 0; s < prompts.length; s += BATCH) {
    const chunk = prompts.slice(s, s + BATCH);
    const rows = chunk.map((p) => {
      const ids = ctx.codec.encode(p.text);
      const n = ids.filter((t) => t === mid).length;
      if (n !== p.media.length) throw new BuiltinSuiteError(`prompt encodes to ${n} <image> tokens for ${p.media.length} media: ${JSON.stringify(p.text.slice(0, 80))}`);
      return ids;
    });
    const { inputIds, attentionMask } = leftPad(rows, ctx.model.config.flamingo.pad_token_id);
    const media = ctx.media.encode(chunk.map((p) => p.media));
    const g = generate(ctx.model, { inputIds, attentionMask, media }, { maxNewTokens, strategy: 'greedy' });
    for (const ids of g.generated) out.push(ctx.codec.decode(ids));
  }
  return out;
}

/** The answer part of a format generation: its first line, trimmed. */
export function formatAnswer(generated: string): string {
  return (generated.split('\n')[0] ?? '').trim();
}

function formatTask(ctx: Ctx): TaskReport {
  const task = 'format';
  const n = ctx.plan.items[task];
  const episodes = Array.from({ length: n }, (_, i) => formatEpisode(ctx.seed, i, ctx.S));
  const rep: TaskReport = { task, metric: BUILTIN_METRICS[task], shots: {}, items: n };
  for (const shots of ctx.plan.shots[task]) {
    const limit = mediaLimitNote(ctx.model, shots + 1);
    if (limit) {
      rep.shots[String(shots)] = null;
      (rep.notes ??= []).push(`${shots} shots: ${limit}`);
      continue;
    }
    const prompts = episodes.map((ep, i) => formatPrompt(ep, shots, `format:${i}`));
    keepPrompts(ctx, task, shots, prompts.map((p) => p.text));
    try {
      const t0 = performance.now();
      // Long enough for the JSON format with two fields.
      const gens = generateTexts(ctx, prompts, 24);
      const correct = gens.filter((g, i) => formatAnswer(g) === episodes[i]!.query.answer).length;
      keepOutputs(ctx, task, shots, gens.map((g, i) => ({ output: formatAnswer(g), expected: episodes[i]!.query.answer })));
      rep.shots[String(shots)] = pct((100 * correct) / n);
      ctx.log(`format ${shots}-shot: exact match ${rep.shots[String(shots)]!.toFixed(2)} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    } catch (e) {
      if (!doesNotFit(e)) throw e;
      rep.shots[String(shots)] = null;
      (rep.notes ??= []).push(`${shots} shots: ${e.message}`);
    }
  }
  return rep;
}

// ---------------------------------------------------------------------------------------------

/** Run the whole suite on a loaded model. */
export function runSuite(
  model: Flamingo, processor: FlamingoProcessor, codec: TextCodec, modelName: string, opts: SuiteOptions,
): SuiteOutput {
  const t0 = performance.now();
  const plan = suitePlan(opts.quick, { items: opts.items, numBeams: opts.numBeams });
  const S = model.config.vision.image_size;
  const ctx: Ctx = {
    model, codec, media: new MediaEncoder(model), processor, S, plan, seed: opts.seed,
    world: resolveConfig({ imageSize: S }), log: opts.onLog ?? (() => {}), prompts: {}, outputs: {}, inventories: opts.bindingInventories ?? null,
  };
  const tasks: TaskReport[] = [];
  const wanted = (name: BuiltinTaskName): boolean => opts.tasks === undefined || opts.tasks.includes(name);
  const timed = (name: BuiltinTaskName, f: () => TaskReport): void => {
    if (!wanted(name)) return;
    const t = performance.now();
    const r = f();
    tasks.push(r);
    ctx.log(r.skipped ? `${name}: skipped (${r.skipped})` : `${name}: done in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  };
  noGrad(() => {
    // (a) fast binding on Fashion-MNIST classes seen / not seen in training.
    let fm: string | null = null;
    if (!opts.classes) fm = 'no class split (meta.json with seen_classes / heldout_classes) in the model directory';
    else if (!fashionMnistAvailable()) fm = 'Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)';
    for (const [task, ids] of [['fast_binding_seen', opts.classes?.seen], ['fast_binding_heldout', opts.classes?.heldout]] as const) {
      if (!wanted(task)) continue;
      if (fm !== null) {
        tasks.push({ task, metric: BUILTIN_METRICS[task], shots: {}, items: 0, skipped: fm });
        continue;
      }
      const maxShots = Math.max(...plan.shots[task]);
      // Enough images per class that episodes rarely reuse one.
      timed(task, () => fastBinding(ctx, task, fashionMnistByClass([...ids!], Math.max(40, 4 * (maxShots + 1)))));
    }
    // (b) synthetic captioning and VQA, Tux Paint captioning.
    timed('captioning', () => protocolTask(ctx, 'captioning', 'captioning',
      syntheticCaptionItems(ctx, 'support', plan.supportPool), syntheticCaptionItems(ctx, 'query', plan.items.captioning)));
    timed('vqa', () => protocolTask(ctx, 'vqa', 'vqa', syntheticVqaItems(ctx, 'support', plan.supportPool), syntheticVqaItems(ctx, 'query', plan.items.vqa)));
    timed('captioning_tuxpaint', () => tuxpaintTask(ctx, opts.tuxpaintDir));
    // (c) output format from the examples only.
    timed('format', () => formatTask(ctx));
    // (d) video QA: each video is one media item of F frames.
    const F = videoFrames(model);
    if (!wanted('video_qa')) {
      // not asked for
    } else if (F < 2) {
      tasks.push({ task: 'video_qa', metric: BUILTIN_METRICS.video_qa, shots: {}, items: 0, skipped: `the model takes ${F} frame(s) per video (resampler.max_num_frames)` });
    } else {
      timed('video_qa', () => protocolTask(ctx, 'video_qa', 'video_qa',
        syntheticVideoItems(ctx, 'support', plan.supportPool, F), syntheticVideoItems(ctx, 'query', plan.items.video_qa, F), { frames: F }));
    }
  });
  return { report: { model: modelName, tasks, seconds: (performance.now() - t0) / 1000 }, prompts: ctx.prompts, outputs: ctx.outputs };
}

// ---------------------------------------------------------------------------------------------
// Pictures and tables

/** One score-vs-shots panel per task (report.ts's picture), tiled into a single SVG. */
export function suiteSvg(report: SuiteReport): string {
  const panels = report.tasks.filter((t) => !t.skipped && Object.keys(t.shots).length > 0).map((t) => {
    const results = Object.entries(t.shots).map(([k, v]) => ({
      shots: Number(k), mean: v, std: v === null ? null : 0,
      trials: v === null ? [] : [{ seed: 0, score: v, details: {}, resultsFile: '', items: t.items, seconds: 0, itemsPerS: 0 }],
    }));
    return scoreVsShotsSvg({ results, metric: t.metric, dataset: t.task, selection: t.task.startsWith('fast_binding') ? 'shots per class' : 'random demos' });
  });
  const W = 480;
  const H = 320;
  const cols = 2;
  const rows = Math.max(1, Math.ceil(panels.length / cols));
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${cols * W}" height="${rows * H + 30}" viewBox="0 0 ${cols * W} ${rows * H + 30}" font-family="sans-serif">`];
  out.push(`<rect width="${cols * W}" height="${rows * H + 30}" fill="white"/>`);
  out.push(`<text x="${(cols * W) / 2}" y="20" text-anchor="middle" font-size="15">${esc(`built-in few-shot suite: ${report.model}`)}</text>`);
  panels.forEach((p, i) => {
    // Nested <svg> keeps each panel's own coordinate system.
    out.push(p.trim().replace(/^<svg /, `<svg x="${(i % cols) * W}" y="${30 + Math.floor(i / cols) * H}" `));
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function suiteTable(report: SuiteReport): string {
  const allShots = [...new Set(report.tasks.flatMap((t) => Object.keys(t.shots).map(Number)))].sort((a, b) => a - b);
  const head = ['task'.padEnd(21), 'metric'.padEnd(13), 'items'.padStart(5), ...allShots.map((s) => `${s}-shot`.padStart(8))].join(' ');
  const lines = [`built-in few-shot suite — ${report.model} (scores in %, CIDEr x100; fast binding: shots per class)`, head, '-'.repeat(head.length)];
  for (const t of report.tasks) {
    const cells = allShots.map((s) => {
      const v = t.shots[String(s)];
      return (v === undefined ? '' : v === null ? 'n/a' : v.toFixed(1)).padStart(8);
    });
    lines.push([t.task.padEnd(21), t.metric.padEnd(13), String(t.items).padStart(5), ...cells].join(' ') + (t.skipped ? `  skipped: ${t.skipped}` : ''));
    // fast binding: one row per name inventory (the task's row is the generator's names)
    const invs = [...new Set(Object.values(t.by_inventory ?? {}).flatMap((r) => Object.keys(r)))].filter((i) => i !== 'generator');
    for (const inv of invs) {
      const row = allShots.map((s) => {
        const v = t.by_inventory?.[String(s)]?.[inv];
        return (v === undefined ? '' : v === null ? 'n/a' : v.toFixed(1)).padStart(8);
      });
      lines.push([`  names: ${inv}`.padEnd(21), ''.padEnd(13), String(t.items).padStart(5), ...row].join(' '));
    }
    for (const n of t.notes ?? []) lines.push(`  note: ${n}`);
  }
  lines.push(`${report.seconds.toFixed(1)} s`);
  return `${lines.join('\n')}\n`;
}
