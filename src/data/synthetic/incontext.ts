// Tasks that can only be solved from the document itself: (a) invented names bound to categories for one
// document, (b) an answer format shown only by the examples. Nothing here is learnable as a fixed mapping.

import { DocumentBuilder } from './builder.ts';
import type { SyntheticWorldConfig } from './config.ts';
import type { InterleavedDocument } from './interleaved.ts';
import { inventNames } from './names.ts';
import { chance, intBetween, pick, sample, shuffled, type Random } from './random.ts';
import { sampleSceneWith } from './scene.ts';
import type { Scene } from './types.ts';
import { article, type ColourName, type ShapeName } from './vocab.ts';

export type BindingKind = 'shape' | 'colour';

const SHAPE_SUPPORT = [
  (n: string) => `This is ${article(n)} ${n}.`,
  (n: string) => `Here is ${article(n)} ${n}.`,
  (n: string) => `Look, ${article(n)} ${n}!`,
  (n: string) => `We call this ${article(n)} ${n}.`,
];
const COLOUR_SUPPORT = [
  (n: string) => `This colour is called ${n}.`,
  (n: string) => `The colour here is ${n}.`,
  (n: string) => `Everything ${n} looks like this.`,
];

/**
 * Templates for the query line; the model must produce the name after `prompt`. The prompt never ends in "a"/"an",
 * which would leak whether the answer starts with a vowel.
 */
export function bindingQuery(kind: BindingKind, name: string): { prompt: string; completion: string; answer: string } {
  if (kind === 'shape') return { prompt: 'What is this? It is called', completion: ` ${name}.`, answer: name };
  return { prompt: 'What colour is this? It is', completion: ` ${name}.`, answer: name };
}

export function supportSentence(rng: Random, kind: BindingKind, name: string): string {
  return pick(rng, kind === 'shape' ? SHAPE_SUPPORT : COLOUR_SUPPORT)(name);
}

/**
 * (a) Invented-name binding. The document draws fresh names, binds each to a shape (or colour) category, shows
 * support images with "This is a dax.", then asks about a new image of one of the categories.
 */
export function namesDocument(rng: Random, cfg: SyntheticWorldConfig, id: string): InterleavedDocument {
  const kind: BindingKind = chance(rng, 0.75) ? 'shape' : 'colour';
  const pool: readonly string[] = kind === 'shape' ? cfg.shapes : cfg.colours;
  const maxImages = cfg.maxImagesPerDocument;
  const ways = intBetween(rng, 2, Math.max(2, Math.min(3, pool.length, maxImages - 1)));
  const categories = sample(rng, pool, ways);
  const names = inventNames(rng, ways, { syllables: cfg.nameSyllables });
  const bindings: Record<string, string> = {};
  categories.forEach((c, i) => (bindings[names[i]!] = c));

  const supportCount = intBetween(rng, ways, maxImages - 1);
  // Every category appears at least once in the support, so the query is always answerable from context.
  const supportCats = shuffled(rng, [...categories, ...Array.from({ length: supportCount - ways }, () => pick(rng, categories))]);
  const b = new DocumentBuilder(id, cfg);
  const sceneFor = (cat: string): Scene =>
    sampleSceneWith(rng, cfg, { count: 1, constraints: [kind === 'shape' ? { shape: cat as ShapeName } : { colour: cat as ColourName }] });
  for (const cat of supportCats) {
    const name = names[categories.indexOf(cat)]!;
    b.scene(sceneFor(cat)).text(supportSentence(rng, kind, name));
  }
  const qi = rng.int(ways);
  const query = bindingQuery(kind, names[qi]!);
  b.scene(sceneFor(categories[qi]!)).text(query.prompt + query.completion);
  return b.build('names', { bindings, query });
}

export const FORMAT_FIELDS = ['shape', 'colour', 'size', 'position', 'count'] as const;
export type FormatField = (typeof FORMAT_FIELDS)[number];

/** Output formats; each renders (field, value) pairs into one answer string. */
export const OUTPUT_FORMATS: Record<string, (pairs: Array<[string, string]>) => string> = {
  bracket: (p) => p.map(([k, v]) => `[${k.toUpperCase()}: ${v}]`).join(' '),
  keyvalue: (p) => p.map(([k, v]) => `${k}=${v}`).join('; '),
  json: (p) => `{${p.map(([k, v]) => `"${k}": "${v}"`).join(', ')}}`,
  arrow: (p) => p.map(([k, v]) => `${k} -> ${v}`).join(', '),
  upper: (p) => p.map(([, v]) => v.toUpperCase()).join(' '),
  pipe: (p) => `|${p.map(([, v]) => v).join('|')}|`,
  paren: (p) => `(${p.map(([, v]) => v).join(', ')})`,
};
export type OutputFormatName = keyof typeof OUTPUT_FORMATS;

const FORMAT_LEADS = ['Output:', 'Answer:', 'Label:', 'Tags:', 'Result:'];
// Without OpenFlamingo's `Output:` (world.formatOutputLead false) the suite's captioning label gets its meaning
// from the prompt's demonstrations, not from a training prior that a bracketed format answer follows it.
const FORMAT_LEADS_WITHOUT_OUTPUT = ['Fields:', 'Answer:', 'Label:', 'Tags:', 'Result:'];

/** Field values for a scene; count scenes may hold several objects, the other fields describe the single object. */
export function fieldValue(scene: Scene, field: FormatField): string {
  if (field === 'count') return String(scene.objects.length);
  const o = scene.objects[0]!;
  return field === 'position' ? o.position : o[field];
}

/**
 * (b) Output format shown only in the examples: the document picks a format, a lead word and which fields to
 * report; every example answer uses them, and the query must be answered the same way.
 */
export function formatDocument(rng: Random, cfg: SyntheticWorldConfig, id: string): InterleavedDocument {
  const format = pick(rng, Object.keys(OUTPUT_FORMATS));
  const lead = pick(rng, cfg.formatOutputLead ? FORMAT_LEADS : FORMAT_LEADS_WITHOUT_OUTPUT);
  const counting = chance(rng, 0.15);
  const fields: FormatField[] = counting ? ['count'] : sample(rng, ['shape', 'colour', 'size', 'position'] as const, intBetween(rng, 1, 2));
  const n = intBetween(rng, 2, cfg.maxImagesPerDocument);
  const b = new DocumentBuilder(id, cfg);
  let last = { prompt: '', completion: '', answer: '' };
  for (let i = 0; i < n; i++) {
    const scene = sampleSceneWith(rng, cfg, counting ? {} : { count: 1 });
    const answer = OUTPUT_FORMATS[format]!(fields.map((f) => [f, fieldValue(scene, f)]));
    last = { prompt: lead, completion: ` ${answer}`, answer };
    b.scene(scene).text(last.prompt + last.completion);
  }
  return b.build('format', { format, query: last });
}
