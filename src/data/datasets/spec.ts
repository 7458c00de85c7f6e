/** Datasets described in plain JSON (training configs) → sources. */
import { resolve } from 'node:path';
import { loadTextCorpus, type TextSource } from '../text-corpus.ts';
import type { DocumentKind, SyntheticWorldOptions } from '../synthetic/index.ts';
import { fileSource } from './files.ts';
import { syntheticDocuments, syntheticPairs, syntheticText, syntheticVideos, textListSource, type PairText } from './memory.ts';
import { FORMATS, type DataFormat } from './records.ts';
import { fashionBinding, fashionPairs, sceneBinding, textBinding, type BindingLoss, type TextBindingOptions } from './binding.ts';
import { DatasetError, type DocSource } from './types.ts';
import { namePiecesOf, type NameInventory, type NamePieces } from '../synthetic/inventories.ts';
import type { BpeTokenizer } from '../tokenizer.ts';

export type SourceSpec =
  | { type: 'synthetic-documents'; kind?: DocumentKind; world?: SyntheticWorldOptions }
  | { type: 'synthetic-pairs'; text?: PairText; world?: SyntheticWorldOptions; shape_variants?: number; labels?: 'fixed' | 'varied' }
  | { type: 'synthetic-videos'; frames?: number; size?: number; world?: SyntheticWorldOptions; text?: 'description' | 'qa'; labels?: 'fixed' | 'varied'; per_document?: number }
  | { type: 'synthetic-text'; kind?: DocumentKind; world?: SyntheticWorldOptions }
  | { type: 'text-corpus'; sources?: TextSource[]; max_docs?: number; max_chars?: number }
  | { type: 'texts'; texts: string[] }
  | { type: 'files'; format: DataFormat; path: string | string[]; shuffle?: boolean }
  | { type: 'fashion-pairs'; classes?: number[]; split?: 'train' | 'test' }
  | { type: 'fashion-binding'; classes?: number[]; ways?: [number, number]; shots?: [number, number]; split?: 'train' | 'test'; concepts?: 'classes' | 'instances'; same_class?: number; names?: NameInventory; loss?: BindingLoss }
  | { type: 'scene-binding'; ways?: [number, number]; shots?: [number, number]; world?: SyntheticWorldOptions; names?: NameInventory; loss?: BindingLoss }
  | ({ type: 'text-binding' } & Omit<TextBindingOptions, 'name'>);

export const SOURCE_TYPES = [
  'synthetic-documents', 'synthetic-pairs', 'synthetic-videos', 'synthetic-text', 'text-corpus', 'texts', 'files',
  'fashion-pairs', 'fashion-binding', 'scene-binding', 'text-binding',
] as const;

/** The keys each source type takes besides `type` (a config naming another key is an error, not ignored). */
export const SOURCE_KEYS: Record<(typeof SOURCE_TYPES)[number], readonly string[]> = {
  'synthetic-documents': ['kind', 'world'],
  'synthetic-pairs': ['text', 'world', 'shape_variants', 'labels'],
  'synthetic-videos': ['frames', 'size', 'world', 'text', 'labels', 'per_document'],
  'synthetic-text': ['kind', 'world'],
  'text-corpus': ['sources', 'max_docs', 'max_chars'],
  texts: ['texts'],
  files: ['format', 'path', 'shuffle'],
  'fashion-pairs': ['classes', 'split'],
  'fashion-binding': ['classes', 'ways', 'shots', 'split', 'concepts', 'same_class', 'names', 'loss'],
  'scene-binding': ['ways', 'shots', 'world', 'names', 'loss'],
  'text-binding': ['ways', 'items', 'words', 'keys', 'vector_norm', 'vector_noise', 'vector_spread', 'names', 'loss'],
};

/**
 * What is wrong with a source spec's type or keys (the first problem, with the key's path under `where`), or null.
 * Training configs report it with the dataset's path; sourceFromSpec with the dataset's name.
 */
export function sourceSpecProblem(spec: unknown, where: string, opts: { custom?: boolean } = {}): string | null {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) return `${where}: must be an object with a "type"`;
  const type = (spec as { type?: unknown }).type;
  // `custom` (training runs only): the caller passes the source (StageOptions.sources), the config names its type
  if (opts.custom && type === 'custom') return Object.keys(spec).length === 1 ? null : `${where}: a custom source takes no keys besides "type"`;
  if (typeof type !== 'string' || !(SOURCE_TYPES as readonly string[]).includes(type)) {
    return `${where}.type: unknown source type ${JSON.stringify(type)} (expected one of ${SOURCE_TYPES.join(', ')})`;
  }
  const known = ['type', ...SOURCE_KEYS[type as (typeof SOURCE_TYPES)[number]]];
  for (const k of Object.keys(spec)) if (!known.includes(k)) return `${where}.${k}: unknown key for a ${type} source (expected one of ${known.join(', ')})`;
  return null;
}

/** What a training run can give its sources beyond the spec. */
export interface SourceContext {
  /** The run's tokenizer: binding episodes with `names: training` join names from its pieces too. */
  tokenizer?: BpeTokenizer;
}

const piecesCache = new WeakMap<BpeTokenizer, NamePieces>();

/** The alphabetic pieces of a tokenizer's vocabulary (special tokens aside), computed once per tokenizer. */
export function tokenizerPieces(tok: BpeTokenizer): NamePieces {
  let p = piecesCache.get(tok);
  if (!p) {
    const tokens: string[] = [];
    for (let id = 0; id < tok.vocabSize; id++) if (!tok.isSpecial(id)) tokens.push(tok.decode([id]));
    p = namePiecesOf(tokens);
    piecesCache.set(tok, p);
  }
  return p;
}

/** Build a source; `name` keys its random streams, `baseDir` resolves relative file paths. */
export function sourceFromSpec(name: string, spec: SourceSpec, baseDir = '.', ctx: SourceContext = {}): DocSource {
  const problem = sourceSpecProblem(spec, 'source');
  if (problem) throw new DatasetError(name, problem);
  const s = spec as SourceSpec & Record<string, unknown>;
  const pieces = ctx.tokenizer && (s.names === 'training' || s.names === 'pieces') ? tokenizerPieces(ctx.tokenizer) : undefined;
  switch (s.type) {
    case 'synthetic-documents':
      return syntheticDocuments({ name, kind: s.kind, world: s.world });
    case 'synthetic-pairs':
      return syntheticPairs({ name, text: s.text, world: s.world, shape_variants: s.shape_variants, labels: s.labels });
    case 'synthetic-videos':
      return syntheticVideos({ name, frames: s.frames, size: s.size, world: s.world, text: s.text, labels: s.labels, per_document: s.per_document });
    case 'synthetic-text':
      return syntheticText({ name, kind: s.kind, world: s.world });
    case 'text-corpus': {
      let docs = loadTextCorpus({ sources: s.sources });
      // Long documents are cut (the LM only sees max_tokens of each anyway); tiny corpora keep everything.
      if (s.max_chars !== undefined) docs = docs.map((d) => d.slice(0, s.max_chars));
      if (s.max_docs !== undefined) docs = docs.slice(0, s.max_docs);
      return textListSource(name, docs);
    }
    case 'texts':
      if (!Array.isArray(s.texts) || s.texts.some((t) => typeof t !== 'string')) throw new DatasetError(name, '"texts" must be a list of strings');
      return textListSource(name, s.texts);
    case 'files': {
      if (!FORMATS.includes(s.format)) throw new DatasetError(name, `format must be one of ${FORMATS.join(', ')}, got ${JSON.stringify(s.format)}`);
      const paths = (Array.isArray(s.path) ? s.path : [s.path]).map((p) => resolve(baseDir, p));
      return fileSource({ name, format: s.format, path: paths, shuffle: s.shuffle });
    }
    case 'fashion-pairs':
      return fashionPairs({ name, classes: s.classes, split: s.split });
    case 'fashion-binding':
      return fashionBinding({ name, classes: s.classes, ways: s.ways, shots: s.shots, split: s.split, concepts: s.concepts, same_class: s.same_class, names: s.names, loss: s.loss, pieces });
    case 'scene-binding':
      return sceneBinding({ name, ways: s.ways, shots: s.shots, world: s.world, names: s.names, loss: s.loss, pieces });
    case 'text-binding':
      return textBinding({ name, ways: s.ways, items: s.items, words: s.words, keys: s.keys, vector_norm: s.vector_norm, vector_noise: s.vector_noise, vector_spread: s.vector_spread, names: s.names, loss: s.loss, pieces });
    default:
      throw new DatasetError(name, `unknown source type ${JSON.stringify((s as { type?: unknown }).type)} (expected one of ${SOURCE_TYPES.join(', ')})`);
  }
}
