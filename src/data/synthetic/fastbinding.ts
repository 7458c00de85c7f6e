// (c) Fast binding with caller-supplied images (e.g. Fashion-MNIST classes): N-way K-shot episodes where each
// class gets an invented name for this episode only, as in the Flamingo paper's fast-binding evaluation.

import { DocumentBuilder } from './builder.ts';
import { SyntheticDataError } from './errors.ts';
import { bindingQuery, supportSentence } from './incontext.ts';
import type { InterleavedDocument } from './interleaved.ts';
import { inventNames } from './names.ts';
import { sample, shuffled, type Random } from './random.ts';
import { renderScene } from './render.ts';
import { sampleSceneWith } from './scene.ts';
import { createRandom, STREAMS } from './seeded.ts';
import { resolveConfig, type SyntheticWorldOptions } from './config.ts';
import type { RgbImage } from './types.ts';

export interface ImageCategory {
  id: string;
  images: RgbImage[];
}

export interface FastBindingOptions {
  ways: number;
  shots: number;
  /** Syllables per invented name. */
  syllables?: [number, number];
}

export interface EpisodeItem {
  image: RgbImage;
  name: string;
  categoryId: string;
  /** Index of the image within its category, so callers can trace it back. */
  imageIndex: number;
}

export interface FastBindingEpisode {
  /** ways × shots items in random order (order carries no information). */
  support: EpisodeItem[];
  query: EpisodeItem;
  /** categoryId → invented name, for this episode only. */
  names: Record<string, string>;
}

export function fastBindingEpisode(rng: Random, categories: readonly ImageCategory[], opts: FastBindingOptions): FastBindingEpisode {
  const { ways, shots } = opts;
  if (!Number.isInteger(ways) || ways < 1 || ways > categories.length) {
    throw new SyntheticDataError('fastBindingEpisode', `ways must be an integer in [1, ${categories.length}] (number of categories), got ${ways}`);
  }
  if (!Number.isInteger(shots) || shots < 1) {
    throw new SyntheticDataError('fastBindingEpisode', `shots must be a positive integer, got ${shots}`);
  }
  // The query class needs one image beyond its shots so the query is never a support image.
  const eligible = categories.filter((c) => c.images.length >= shots);
  if (eligible.length < ways || !eligible.some((c) => c.images.length >= shots + 1)) {
    const sizes = categories.map((c) => `${c.id}:${c.images.length}`).join(', ');
    throw new SyntheticDataError('fastBindingEpisode', `${ways}-way ${shots}-shot needs ${ways} categories with >= ${shots} images and one with >= ${shots + 1}; have [${sizes}]`);
  }
  const queryCandidates = eligible.filter((c) => c.images.length >= shots + 1);
  const queryCat = queryCandidates[rng.int(queryCandidates.length)]!;
  const others = sample(rng, eligible.filter((c) => c !== queryCat), ways - 1);
  const chosen = shuffled(rng, [queryCat, ...others]);
  const nameList = inventNames(rng, ways, { syllables: opts.syllables });
  const names: Record<string, string> = {};
  chosen.forEach((c, i) => (names[c.id] = nameList[i]!));

  const support: EpisodeItem[] = [];
  let query: EpisodeItem | undefined;
  for (const c of chosen) {
    const take = c === queryCat ? shots + 1 : shots;
    const idx = sample(rng, c.images.map((_, i) => i), take);
    for (const [k, i] of idx.entries()) {
      const item = { image: c.images[i]!, name: names[c.id]!, categoryId: c.id, imageIndex: i };
      if (c === queryCat && k === shots) query = item;
      else support.push(item);
    }
  }
  return { support: shuffled(rng, support), query: query!, names };
}

/** Streaming episodes; episode i depends only on (seed, i). */
export function* fastBindingEpisodes(seed: number, categories: readonly ImageCategory[], opts: FastBindingOptions & { count?: number }): Generator<FastBindingEpisode> {
  const root = createRandom(seed).fork(STREAMS.fastBinding);
  for (let i = 0; opts.count === undefined || i < opts.count; i++) yield fastBindingEpisode(root.fork(i), categories, opts);
}

/** The episode as an interleaved document: "<image>This is a dax." per support item, then the query. */
export function episodeToDocument(rng: Random, episode: FastBindingEpisode, id = 'fastbinding'): InterleavedDocument {
  const b = new DocumentBuilder(id);
  for (const s of episode.support) b.image(s.image).text(supportSentence(rng, 'shape', s.name));
  const query = bindingQuery('shape', episode.query.name);
  b.image(episode.query.image).text(query.prompt + query.completion);
  const bindings: Record<string, string> = {};
  for (const [cat, name] of Object.entries(episode.names)) bindings[name] = cat;
  return b.build('fastbinding', { query, bindings });
}

/**
 * Built-in categories for fast binding without external data: one category per shape, each image a single object
 * of that shape with random colour, size, position and background (so only the shape identifies the class).
 */
export function shapeCategories(rng: Random, opts: { perCategory: number; world?: SyntheticWorldOptions }): ImageCategory[] {
  const cfg = resolveConfig(opts.world);
  return cfg.shapes.map((shape) => ({
    id: shape,
    images: Array.from({ length: opts.perCategory }, () =>
      renderScene(sampleSceneWith(rng, cfg, { count: 1, constraints: [{ shape }] }), cfg.imageSize, { supersample: cfg.supersample }),
    ),
  }));
}
