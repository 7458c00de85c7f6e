/**
 * Suite task family (c): an output format shown only in the examples ("Label: [COLOUR: red]", JSON …), from
 * the synthetic world's format documents; exact match of the query's answer line.
 */
import { Rng } from '../../engine/rng.ts';
import { generate } from '../../model/generate.ts';
import type { RgbImage } from '../../data/image.ts';
import { formatDocument, resolveConfig } from '../../data/synthetic/index.ts';
import type { MediaRef } from '../datasets/types.ts';
import { EOC_TOKEN, IMAGE_TOKEN } from '../prompts.ts';
import { leftPad } from '../tasks.ts';
import { BATCH, doesNotFit, keepOutputs, keepPrompts, mediaLimitNote, memRef, noteUnfit, pct, type SuiteContext } from './context.ts';
import { BUILTIN_METRICS, BuiltinSuiteError, type TaskReport } from './plan.ts';

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
function generateTexts(ctx: SuiteContext, prompts: readonly { text: string; media: MediaRef[] }[], maxNewTokens: number): string[] {
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

export function formatTask(ctx: SuiteContext): TaskReport {
  const task = 'format';
  const n = ctx.plan.items[task];
  const episodes = Array.from({ length: n }, (_, i) => formatEpisode(ctx.seed, i, ctx.S));
  const rep: TaskReport = { task, metric: BUILTIN_METRICS[task], shots: {}, items: n };
  for (const shots of ctx.plan.shots[task]) {
    const limit = mediaLimitNote(ctx.model, shots + 1);
    if (limit) {
      noteUnfit(rep, shots, limit);
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
      noteUnfit(rep, shots, e.message);
    }
  }
  return rep;
}
