// SyntheticWorldConfig: one plain, JSON-serialisable object controlling every generator. Partial configs are
// merged over DEFAULT_SYNTHETIC_CONFIG and validated, so a bad value fails at the door with its field name.

import { SyntheticDataError } from './errors.ts';
import {
  BACKGROUND_NAMES, COLOUR_NAMES, POSITION_NAMES, SHAPES, TEXTURES,
  type BackgroundName, type ColourName, type PositionName, type ShapeName, type TextureName,
} from './vocab.ts';

/** Kinds of interleaved documents; see docs/SYNTHETIC.md. */
export const DOCUMENT_KINDS = ['captions', 'descriptions', 'qa', 'names', 'format', 'webpage'] as const;
export type DocumentKind = (typeof DOCUMENT_KINDS)[number];

export interface SyntheticWorldConfig {
  /** Side of the square images in pixels. */
  imageSize: number;
  /** Anti-aliasing sub-samples per pixel side (1 = off). */
  supersample: number;
  shapes: ShapeName[];
  colours: ColourName[];
  backgrounds: BackgroundName[];
  textures: TextureName[];
  /** Allowed object positions (cells of a 3x3 grid); at least maxObjects of them. */
  positions: PositionName[];
  minObjects: number;
  maxObjects: number;
  /** Maximum images in one interleaved document. */
  maxImagesPerDocument: number;
  /** Relative frequency of each document kind in `documents()`. */
  documentMix: Record<DocumentKind, number>;
  /** Syllables per invented name, inclusive range. */
  nameSyllables: [number, number];
  /**
   * Labels before captions and answers: `fixed` draws each page's from CAPTION_LABELS / QUESTION_LABELS /
   * ANSWER_LABELS; `open` makes half the pages invent theirs ("Blick:", "Zorp dax:"), so what follows an
   * unknown label has to be read off the page's earlier entries, as with a few-shot prompt's own template.
   */
  labels: 'fixed' | 'open';
  /**
   * How captions and answers are worded: `fixed` draws each caption's template and states answers bare
   * (VQA style) on every page; `page` gives each captions page one caption template and number style, and each
   * qa page its own answer conventions per question kind (bare "red" or phrased "it is red"), as pages of the
   * web and benchmark datasets each keep their own style. A model trained on it has to read a page's (or a
   * prompt's) conventions off its earlier entries: more examples, more of the conventions shown.
   */
  conventions: 'fixed' | 'page';
  /**
   * How qa pages (and web pages' asides) pick a question: `any` draws from all of a scene's questions, so about
   * 40% ask for a count and 4% for the background; `balanced` draws the kind first (`balancedQuestion`, as the
   * suite does). Default `any`: configs that do not set it get the stream of earlier runs.
   */
  qaQuestions: 'any' | 'balanced';
  /**
   * Whether `format` pages may lead their answers with `Output:`, the suite's captioning label (one page in five
   * does). With false they never do, so the label gets its meaning from a prompt's demonstrations only.
   */
  formatOutputLead: boolean;
  video: { frames: number; maxObjects: number };
}

export const DEFAULT_SYNTHETIC_CONFIG: SyntheticWorldConfig = {
  imageSize: 32,
  supersample: 3,
  shapes: [...SHAPES],
  colours: [...COLOUR_NAMES],
  backgrounds: [...BACKGROUND_NAMES],
  textures: [...TEXTURES],
  positions: [...POSITION_NAMES],
  minObjects: 1,
  maxObjects: 4,
  maxImagesPerDocument: 5,
  documentMix: { captions: 1, descriptions: 1, qa: 1, names: 2, format: 1, webpage: 1 },
  nameSyllables: [1, 2],
  labels: 'fixed',
  conventions: 'fixed',
  qaQuestions: 'any',
  formatOutputLead: true,
  video: { frames: 8, maxObjects: 2 },
};

export type SyntheticWorldOptions = Partial<Omit<SyntheticWorldConfig, 'video' | 'documentMix'>> & {
  video?: Partial<SyntheticWorldConfig['video']>;
  documentMix?: Partial<SyntheticWorldConfig['documentMix']>;
};

function fail(detail: string): never {
  throw new SyntheticDataError('config', detail);
}

function checkSubset<T extends string>(field: string, values: readonly T[], allowed: readonly string[], min: number): void {
  if (!Array.isArray(values) || values.length < min) fail(`${field} needs at least ${min} entries, got ${JSON.stringify(values)}`);
  for (const v of values) if (!allowed.includes(v)) fail(`${field}: unknown value "${v}" (allowed: ${allowed.join(', ')})`);
  if (new Set(values).size !== values.length) fail(`${field}: duplicate entries in ${JSON.stringify(values)}`);
}

function checkInt(field: string, v: number, lo: number, hi: number): void {
  if (!Number.isInteger(v) || v < lo || v > hi) fail(`${field} must be an integer in [${lo}, ${hi}], got ${v}`);
}

/** Merge a partial config over the defaults and validate the result. */
export function resolveConfig(opts: SyntheticWorldOptions = {}): SyntheticWorldConfig {
  const c: SyntheticWorldConfig = {
    ...DEFAULT_SYNTHETIC_CONFIG,
    ...opts,
    documentMix: { ...DEFAULT_SYNTHETIC_CONFIG.documentMix, ...opts.documentMix },
    video: { ...DEFAULT_SYNTHETIC_CONFIG.video, ...opts.video },
  } as SyntheticWorldConfig;
  checkInt('imageSize', c.imageSize, 8, 1024);
  checkInt('supersample', c.supersample, 1, 8);
  checkSubset('shapes', c.shapes, SHAPES, 2);
  checkSubset('colours', c.colours, COLOUR_NAMES, 2);
  checkSubset('backgrounds', c.backgrounds, BACKGROUND_NAMES, 1);
  checkSubset('textures', c.textures, TEXTURES, 1);
  checkSubset('positions', c.positions, POSITION_NAMES, 1);
  checkInt('minObjects', c.minObjects, 1, 9);
  checkInt('maxObjects', c.maxObjects, c.minObjects, 9);
  if (c.positions.length < c.maxObjects) fail(`positions has ${c.positions.length} cells but maxObjects is ${c.maxObjects}`);
  checkInt('maxImagesPerDocument', c.maxImagesPerDocument, 2, 64);
  for (const k of DOCUMENT_KINDS) {
    const w = c.documentMix[k];
    if (typeof w !== 'number' || !(w >= 0) || !Number.isFinite(w)) fail(`documentMix.${k} must be a finite number >= 0, got ${w}`);
  }
  if (DOCUMENT_KINDS.every((k) => c.documentMix[k] === 0)) fail('documentMix: all weights are zero');
  const [s0, s1] = c.nameSyllables;
  checkInt('nameSyllables[0]', s0, 1, 4);
  checkInt('nameSyllables[1]', s1, s0, 4);
  if (c.labels !== 'fixed' && c.labels !== 'open') fail(`labels must be "fixed" or "open", got ${JSON.stringify(c.labels)}`);
  if (c.conventions !== 'fixed' && c.conventions !== 'page') fail(`conventions must be "fixed" or "page", got ${JSON.stringify(c.conventions)}`);
  if (c.qaQuestions !== 'any' && c.qaQuestions !== 'balanced') fail(`qaQuestions must be "any" or "balanced", got ${JSON.stringify(c.qaQuestions)}`);
  if (typeof c.formatOutputLead !== 'boolean') fail(`formatOutputLead must be true or false, got ${JSON.stringify(c.formatOutputLead)}`);
  checkInt('video.frames', c.video.frames, 2, 256);
  checkInt('video.maxObjects', c.video.maxObjects, 1, 2);
  return c;
}
