// Interleaved "web pages" of the synthetic world and the streaming generators over them. Document i depends only
// on (seed, i), so any slice of the stream can be regenerated without replaying what came before.

import { DocumentBuilder } from './builder.ts';
import { DOCUMENT_KINDS, resolveConfig, type DocumentKind, type SyntheticWorldConfig, type SyntheticWorldOptions } from './config.ts';
import { formatDocument, namesDocument } from './incontext.ts';
import type { InterleavedDocument } from './interleaved.ts';
import { inventNames } from './names.ts';
import { chance, intBetween, pick, weightedIndex, type Random } from './random.ts';
import { sampleSceneWith } from './scene.ts';
import { createRandom, STREAMS } from './seeded.ts';
import { renderScene } from './render.ts';
import {
  CAPTION_TEMPLATES, SCENE_QA_KINDS, altText, balancedQuestion, caption, captionInStyle, longDescription, phrasedAnswer, qaPairs,
  type CaptionStyle, type QAKind,
} from './text.ts';
import type { RgbImage, Scene } from './types.ts';
import { article, plural } from './vocab.ts';

const capitalise = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

/**
 * Labels that pages put before a caption or an answer. Each document picks one template and keeps it, so what
 * follows the label is learned from the page itself (few-shot prompts bring their own templates, e.g.
 * OpenFlamingo's `Output:` and `Short answer:`, which are deliberately not in these lists: the model has to
 * take them from the demonstrations).
 */
export const CAPTION_LABELS = ['', 'Caption:', 'Description:', 'Alt text:', 'Picture:', 'Image:', 'Summary:', 'Photo:'];
export const QUESTION_LABELS = ['Question:', 'Q:', 'Query:', 'Ask:', 'Question -'];
export const ANSWER_LABELS = ['Answer:', 'A:', 'Reply:', 'Brief answer:', 'Response:', 'One word:', 'Answer -'];

/** A label and a separator: `Caption: text` or, on some pages, `Caption:text` (as OpenFlamingo's prompts are). */
function labelled(label: string, tight: boolean): (text: string) => string {
  return (text) => (label === '' ? text : `${label}${tight ? '' : ' '}${text}`);
}

/** An invented label of one or two invented words ("Blick:", "Zorp dax:"); never a real template. */
function inventedLabel(rng: Random, cfg: SyntheticWorldConfig): string {
  const words = inventNames(rng, 1 + rng.int(2), { syllables: cfg.nameSyllables });
  return `${capitalise(words.join(' '))}:`;
}

/** With `labels: 'open'`, half the pages invent their label; `fixed` pages draw exactly as before. */
function pageLabel(rng: Random, cfg: SyntheticWorldConfig, fixed: readonly string[]): string {
  if (cfg.labels === 'open' && chance(rng, 0.5)) return inventedLabel(rng, cfg);
  return pick(rng, fixed);
}

function captionsDocument(rng: Random, cfg: SyntheticWorldConfig, id: string): InterleavedDocument {
  const b = new DocumentBuilder(id, cfg);
  const n = intBetween(rng, 1, cfg.maxImagesPerDocument);
  const label = labelled(pageLabel(rng, cfg, CAPTION_LABELS), chance(rng, 0.5));
  // `page` conventions: the page keeps one caption style; `fixed` draws a template per caption (as always).
  const style: CaptionStyle | null = cfg.conventions === 'page' ? { template: rng.int(CAPTION_TEMPLATES.length), digits: chance(rng, 0.5) } : null;
  for (let i = 0; i < n; i++) {
    const scene = sampleSceneWith(rng, cfg);
    b.scene(scene).text(label(style ? captionInStyle(scene, style) : caption(rng, scene)));
  }
  return b.build('captions');
}

function descriptionsDocument(rng: Random, cfg: SyntheticWorldConfig, id: string): InterleavedDocument {
  const b = new DocumentBuilder(id, cfg);
  const n = intBetween(rng, 1, cfg.maxImagesPerDocument);
  for (let i = 0; i < n; i++) {
    const scene = sampleSceneWith(rng, cfg);
    b.scene(scene).text(`${capitalise(longDescription(scene))}.`);
  }
  return b.build('descriptions');
}

/**
 * VQA-style few-shot page: "Question: ... Answer: ..." per image (one question/answer template per page, drawn
 * from QUESTION_LABELS × ANSWER_LABELS), the last one is the query.
 */
function qaDocument(rng: Random, cfg: SyntheticWorldConfig, id: string): InterleavedDocument {
  const b = new DocumentBuilder(id, cfg);
  const n = intBetween(rng, 2, cfg.maxImagesPerDocument);
  const tight = chance(rng, 0.5);
  const qLabel = pageLabel(rng, cfg, QUESTION_LABELS);
  let aLabel = pageLabel(rng, cfg, ANSWER_LABELS);
  while (aLabel === qLabel) aLabel = inventedLabel(rng, cfg);
  const sep = tight ? '' : ' ';
  // `page` conventions: per question kind, the page answers bare ("red") or in a phrase ("it is red").
  const phrased = cfg.conventions === 'page' ? new Set(SCENE_QA_KINDS.filter(() => chance(rng, 0.5))) : new Set<QAKind>();
  let query = { prompt: '', completion: '', answer: '' };
  for (let i = 0; i < n; i++) {
    const scene = sampleSceneWith(rng, cfg);
    const qa = askQuestion(rng, scene, cfg);
    const answer = phrased.has(qa.kind) ? phrasedAnswer(qa) : qa.answer;
    query = { prompt: `${qLabel}${sep}${qa.question} ${aLabel}`, completion: `${sep}${answer}`, answer };
    b.scene(scene).text(query.prompt + query.completion);
  }
  return b.build('qa', { query });
}

/** A page's question about a scene, drawn as the world's `qaQuestions` says. */
function askQuestion(rng: Random, scene: Scene, cfg: SyntheticWorldConfig): ReturnType<typeof balancedQuestion> {
  return cfg.qaQuestions === 'balanced' ? balancedQuestion(rng, scene, cfg) : pick(rng, qaPairs(rng, scene, cfg));
}

const TITLES = [
  'My collection of shapes.',
  'Art class: what we drew today.',
  'Photos from the shape museum.',
  'A few pictures from my sketchbook.',
  'Sticker sheet, page two.',
];
const SEGUES = ['Next,', 'Then', 'After that,', 'Finally,', 'Also,'];

/**
 * A web-page-like document: a title, then images with text that refers back to earlier ones; one shape gets an
 * invented nickname on first sight and is called by it afterwards (a binding that must be carried across images).
 */
function webpageDocument(rng: Random, cfg: SyntheticWorldConfig, id: string): InterleavedDocument {
  const b = new DocumentBuilder(id, cfg).text(pick(rng, TITLES));
  const n = intBetween(rng, 2, cfg.maxImagesPerDocument);
  const [nick] = inventNames(rng, 1, { syllables: cfg.nameSyllables });
  const nickShape = pick(rng, cfg.shapes);
  let named = false;
  const bindings: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    // Half the images feature the nicknamed shape so the binding is used, not just stated.
    const scene = chance(rng, 0.5) ? sampleSceneWith(rng, cfg, { constraints: [{ shape: nickShape }] }) : sampleSceneWith(rng, cfg);
    const sentences: string[] = [];
    if (i > 0 && chance(rng, 0.5)) sentences.push(`${pick(rng, SEGUES)} ${i === n - 1 ? 'the last one' : 'another one'}.`);
    sentences.push(chance(rng, 0.5) ? caption(rng, scene) : `It has ${longDescription(scene)}.`);
    const nickCount = scene.objects.filter((o) => o.shape === nickShape).length;
    if (nickCount > 0) {
      if (!named) {
        sentences.push(`We call the ${nickShape} ${article(nick!)} ${nick}.`);
        bindings[nick!] = nickShape;
        named = true;
      } else {
        sentences.push(nickCount === 1 ? `There is our ${nick} again.` : `I count ${nickCount} ${plural(nick!, nickCount)} here.`);
      }
    }
    if (chance(rng, 0.3)) {
      const qa = askQuestion(rng, scene, cfg);
      sentences.push(`Q: ${qa.question} A: ${qa.answer}.`);
    }
    b.scene(scene).text(sentences.join(' '));
  }
  return b.build('webpage', { bindings });
}

const BUILDERS: Record<DocumentKind, (rng: Random, cfg: SyntheticWorldConfig, id: string) => InterleavedDocument> = {
  captions: captionsDocument,
  descriptions: descriptionsDocument,
  qa: qaDocument,
  names: namesDocument,
  format: formatDocument,
  webpage: webpageDocument,
};

export interface DocumentStreamOptions extends SyntheticWorldOptions {
  /** Stop after this many documents (default: endless). */
  count?: number;
  /** First document index (to resume or shard a stream). */
  start?: number;
  /** Restrict to one kind (overrides documentMix). */
  kind?: DocumentKind;
}

/** Document `index` of the stream for `seed`, without generating the ones before it. */
export function documentAt(seed: number, index: number, opts: DocumentStreamOptions = {}): InterleavedDocument {
  const { count: _c, start: _s, kind, ...world } = opts;
  return documentWith(seed, index, resolveConfig(world), kind);
}

function documentWith(seed: number, index: number, cfg: SyntheticWorldConfig, kind?: DocumentKind): InterleavedDocument {
  const rng = createRandom(seed).fork(STREAMS.documents).fork(index);
  const k = kind ?? DOCUMENT_KINDS[weightedIndex(rng, DOCUMENT_KINDS.map((d) => cfg.documentMix[d]))]!;
  return BUILDERS[k](rng, cfg, `doc-${seed}-${index}`);
}

export function* documents(seed: number, opts: DocumentStreamOptions = {}): Generator<InterleavedDocument> {
  const { count, start = 0, kind, ...world } = opts;
  const cfg = resolveConfig(world);
  for (let i = start; count === undefined || i < start + count; i++) yield documentWith(seed, i, cfg, kind);
}

/** ALIGN/LTIP-like image–text pair: one image with its short alt-text, long description and a caption paraphrase. */
export interface ImageTextPair {
  id: string;
  image: RgbImage;
  scene: Scene;
  altText: string;
  description: string;
  caption: string;
}

export function imageTextPairAt(seed: number, index: number, opts: SyntheticWorldOptions = {}): ImageTextPair {
  return pairWith(seed, index, resolveConfig(opts));
}

/**
 * Pair `member` of a group of `size` scenes that differ only in their objects' shapes (member 0 is
 * imageTextPairAt(seed, group)). Consecutive pairs of one group land in one contrastive batch as hard
 * negatives: colours, sizes, positions and background cannot tell them apart, only shape can.
 */
export function shapeVariantPairAt(seed: number, group: number, member: number, opts: SyntheticWorldOptions = {}): ImageTextPair {
  const cfg = resolveConfig(opts);
  if (member === 0) return pairWith(seed, group, cfg);
  const base = sampleSceneWith(createRandom(seed).fork(STREAMS.pairs).fork(group), cfg); // pairWith's scene, not rendered
  const rng = createRandom(seed).fork(STREAMS.pairs).fork(group).fork(1000 + member);
  const objects = base.objects.map((o) => ({ ...o, shape: pick(rng, cfg.shapes) }));
  const k = rng.int(objects.length); // at least one object changes shape
  objects[k] = { ...objects[k]!, shape: pick(rng, cfg.shapes.filter((s) => s !== base.objects[k]!.shape)) };
  return pairWith(seed, group, cfg, { ...base, objects }, `pair-${seed}-${group}-v${member}`);
}

function pairWith(seed: number, index: number, cfg: SyntheticWorldConfig, given?: Scene, id?: string): ImageTextPair {
  const rng = createRandom(seed).fork(STREAMS.pairs).fork(index);
  const sampled = sampleSceneWith(rng, cfg);
  const scene = given ?? sampled;
  return {
    id: id ?? `pair-${seed}-${index}`,
    image: renderScene(scene, cfg.imageSize, { supersample: cfg.supersample }),
    scene,
    altText: altText(scene),
    description: `${capitalise(longDescription(scene))}.`,
    caption: caption(rng, scene),
  };
}

export function* imageTextPairs(seed: number, opts: SyntheticWorldOptions & { count?: number; start?: number } = {}): Generator<ImageTextPair> {
  const { count, start = 0, ...world } = opts;
  const cfg = resolveConfig(world);
  for (let i = start; count === undefined || i < start + count; i++) yield pairWith(seed, i, cfg);
}
