/**
 * Fast concept binding (paper §3, Fig. 1 and App. D.1): N-way K-shot episodes in which each class gets
 * an invented name that holds only inside the prompt. The model must name the query image by the word
 * bound to its class in the examples — something it can only learn from the prompt itself.
 *
 * Prompt: `This is a<image> {name}.` per support image and `This is a<image>` for the query, joined as
 * training documents are (src/data/datasets/sample.ts, OpenFlamingo's convention): `<|endofchunk|>` closes
 * each chunk right before the next <image>. The answer is what is generated (greedy), compared with
 * the bound name (the whole name: names may span several words and tokens). The image stands where a describing word would: media may sit anywhere in the text.
 */
import { Rng } from '../engine/rng.ts';
import { FlamingoError } from '../errors.ts';
import type { Flamingo } from '../model/flamingo.ts';
import { generate } from '../model/generate.ts';
import type { FlamingoProcessor } from '../data/processor.ts';
import type { RgbImage } from '../data/image.ts';
import { drawNames, type NameInventory } from '../data/synthetic/inventories.ts';

/** The episode's text: supports then the query, `<|endofchunk|>` before every <image> but the first. */
export function bindingPrompt(names: string[]): string {
  const parts = names.map((n, i) => `This is a${i > 0 ? '<|endofchunk|>' : ''}<image> ${n}.`);
  return `${parts.join(' ')} This is a${names.length > 0 ? '<|endofchunk|>' : ''}<image>`;
}

export interface BindingClass {
  id: string;
  images: RgbImage[];
}

export interface BindingEpisode {
  prompt: string;
  images: RgbImage[];
  answer: string;
  /** class id → name in this episode */
  names: Record<string, string>;
  queryClass: string;
}

/** The classes cannot make the requested episode (fewer classes than ways, or too few images of a class). */
export class BindingEpisodeError extends FlamingoError {}

/**
 * One episode: `ways` classes drawn from `classes`, `shots` support images each (order shuffled), one query.
 * Names come from `inventory` (default: the project's generator, src/data/synthetic/names.ts), drawn from a
 * stream of their own: the classes, images and order depend only on `rng`, so the same seed gives the same
 * episodes with every inventory and inventories are compared on the same images (paired).
 */
export function bindingEpisode(rng: Rng, classes: readonly BindingClass[], ways: number, shots: number, inventory: NameInventory = 'generator'): BindingEpisode {
  if (ways > classes.length) throw new BindingEpisodeError(`fast binding: ${ways}-way needs ${ways} classes, have ${classes.length}`);
  const order = rng.shuffle([...classes.keys()]).slice(0, ways);
  const names = drawNames(rng.fork(rng.int(0x7fffffff)), ways, inventory);
  const items: { cls: number; name: string }[] = [];
  order.forEach((c, w) => { for (let k = 0; k < shots; k++) items.push({ cls: c, name: names[w]! }); });
  rng.shuffle(items);
  const q = rng.int(ways);
  const used = new Map<number, Set<number>>();
  const pick = (c: number): RgbImage => {
    const imgs = classes[c]!.images;
    const seen = used.get(c) ?? new Set<number>();
    used.set(c, seen);
    if (seen.size >= imgs.length) throw new BindingEpisodeError(`fast binding: class '${classes[c]!.id}' has only ${imgs.length} images, the episode needs ${seen.size + 1}`);
    let i = rng.int(imgs.length);
    while (seen.has(i)) i = (i + 1) % imgs.length;
    seen.add(i);
    return imgs[i]!;
  };
  const images: RgbImage[] = items.map((it) => pick(it.cls));
  images.push(pick(order[q]!));
  const prompt = bindingPrompt(items.map((it) => it.name));
  const nameOf: Record<string, string> = {};
  order.forEach((c, w) => { nameOf[classes[c]!.id] = names[w]!; });
  return { prompt, images, answer: names[q]!, names: nameOf, queryClass: classes[order[q]!]!.id };
}

/** The first word of a generation, without punctuation. */
export function firstWord(text: string): string {
  return (text.trim().split(/\s+/)[0] ?? '').replace(/[.,!?;:]+$/, '');
}

/** What a generation names: its text up to the first sentence end, chunk end or line break. */
export function answerSpan(text: string): string {
  return text.trim().split(/[.\n]|<\|endofchunk\|>|<\|endoftext\|>/)[0]!.trim();
}

/**
 * Whether a generation answers `name`: it starts with exactly that string (names may have several words,
 * capitals, digits) followed by the end, punctuation or a space, not by more of a longer word.
 */
export function answersName(text: string, name: string): boolean {
  const t = text.trimStart();
  return t.startsWith(name) && !/^[\p{L}\p{N}]/u.test(t.slice(name.length));
}

export interface BindingResult {
  accuracy: number;
  correct: number;
  total: number;
  /** Wrong answers that are another name of the same prompt: the copy worked, the match with the query did not. */
  otherName: number;
  examples: { answer: string; predicted: string }[];
}

/** Accuracy over `episodes` episodes (deterministic in seed), batched greedy generation. */
export function evaluateBinding(
  model: Flamingo, processor: FlamingoProcessor, classes: readonly BindingClass[],
  opts: { ways: number; shots: number; episodes: number; seed: number; batchSize?: number; inventory?: NameInventory },
): BindingResult {
  const rng = new Rng(opts.seed);
  const eps = Array.from({ length: opts.episodes }, () => bindingEpisode(rng, classes, opts.ways, opts.shots, opts.inventory));
  const bs = opts.batchSize ?? 16;
  let correct = 0;
  let otherName = 0;
  const examples: BindingResult['examples'] = [];
  for (let i = 0; i < eps.length; i += bs) {
    const chunk = eps.slice(i, i + bs);
    const enc = processor.encode(chunk.map((e) => e.prompt), chunk.map((e) => e.images));
    // long enough for the longest name of the batch (letter strings and two-word names take many tokens)
    const longest = Math.max(...chunk.map((e) => processor.tokenizer.encode(` ${e.answer}.`).length));
    const out = generate(model, { inputIds: enc.inputIds, attentionMask: enc.attentionMask, visionX: enc.visionX }, { maxNewTokens: Math.max(8, longest + 2), strategy: 'greedy' });
    out.generated.forEach((g, j) => {
      const text = processor.decode(g);
      const predicted = answerSpan(text);
      if (answersName(text, chunk[j]!.answer)) correct++;
      else if (Object.values(chunk[j]!.names).some((n) => answersName(text, n))) otherName++;
      if (examples.length < 5) examples.push({ answer: chunk[j]!.answer, predicted });
    });
  }
  return { accuracy: correct / eps.length, correct, otherName, total: eps.length, examples };
}
