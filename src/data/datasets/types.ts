/**
 * Shared types of the training data pipeline: raw documents (text and lazily loaded media, as read from a
 * format), tokenised samples (what a batch is built from), and cursors (where a stream is, for resuming).
 */
import type { RgbImage } from '../image.ts';
import { Rng } from '../../engine/rng.ts';
import { FlamingoError } from '../../errors.ts';

export class DatasetError extends FlamingoError {
  constructor(where: string, detail: string) {
    super(`dataset ${where}: ${detail}`);
  }
}

/** Media is decoded only when a sample keeps it (images beyond the limit are never read). */
export type LazyImage = () => RgbImage;

export type RawChunk =
  /**
   * `scored: false` keeps the text's tokens out of the loss (they are still read): binding episodes score only
   * the names a model can copy from earlier in the prompt, not the first, unpredictable, occurrence of each.
   */
  | { kind: 'text'; text: string; scored?: boolean }
  | { kind: 'image'; image: LazyImage }
  | { kind: 'video'; frames: LazyImage[] };

/** One document of any format before tokenisation: image–text pair, interleaved page, video–text pair, plain text. */
export interface RawDoc {
  key: string;
  chunks: RawChunk[];
  /**
   * Text-only documents for LM pretraining may hold `<image>` placeholders with a vector each: the LM stage
   * adds the i-th vector (of the model's width) to the i-th `<image>` token's input embedding. See
   * `textBinding({ keys: 'vectors' })`. Deterministic for a given document.
   */
  keyVectors?: (dim: number) => Float32Array[];
  /**
   * With keyVectors: the tokens after each `<image>` (up to the next one) get its vector times this factor, as
   * image-causal cross-attention can write to every token that follows an image. Default 0.
   */
  keySpread?: number;
}

/** A tokenised sample: ids with one `<image>` per media item, and each item's frames as (3, S, S) pixels. */
export interface Sample {
  key: string;
  tokens: number[];
  /** 1 where the token is a loss target, 0 where its document marked it unscored; absent = all scored. */
  scored?: Uint8Array;
  media: Float32Array[][];
}

/** Position of a stream: epoch and number of documents already taken in it. JSON-serialisable. */
export interface Cursor {
  epoch: number;
  offset: number;
}

export const START: Cursor = Object.freeze({ epoch: 0, offset: 0 });

/** An open, deterministic stream of documents. `cursor` is the position of the next document. */
export interface DocStream {
  next(): RawDoc;
  readonly cursor: Cursor;
}

/**
 * A dataset: opens a stream for a seed at a cursor. The same (seed, cursor) always yields the same documents,
 * so a resumed run continues exactly where a killed one stopped.
 */
export interface DocSource {
  readonly name: string;
  open(seed: number, at?: Cursor): DocStream;
}

/** One epoch of a finite dataset: its size and random access in that epoch's (shuffled) order. */
export interface EpochView {
  count: number;
  get(i: number): RawDoc;
}

/**
 * Turn a finite dataset into an endless stream over epochs. `epochView(epoch)` must be deterministic; it is
 * called lazily, when the stream first needs a document of that epoch.
 */
export function epochStream(name: string, epochView: (epoch: number) => EpochView, at: Cursor = START): DocStream {
  let epoch = at.epoch;
  let offset = at.offset;
  let cur: EpochView | null = null;
  const view = (): EpochView => {
    for (;;) {
      cur ??= epochView(epoch);
      if (cur.count === 0) throw new DatasetError(name, `epoch ${epoch} has no documents`);
      if (offset < cur.count) return cur;
      // A cursor at (or past) the end of an epoch continues at the start of the next one.
      offset -= cur.count;
      epoch++;
      cur = null;
    }
  };
  return {
    get cursor() {
      return { epoch, offset };
    },
    next() {
      const doc = view().get(offset);
      offset++;
      return doc;
    },
  };
}

/** 32-bit seed for a named sub-stream of `seed` (datasets, shards, epochs never share a stream). */
export function subSeed(seed: number, ...path: (string | number)[]): number {
  let r = new Rng(seed);
  for (const p of path) r = r.fork(p);
  return r.nextU32();
}
