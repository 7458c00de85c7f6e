/**
 * From a raw document to a training sample, with the Flamingo/OpenFlamingo text conventions:
 * every media item becomes one `<image>` token, `<|endofchunk|>` closes the text that follows each item
 * (written before the next item and at the end), items beyond `maxImages` are dropped together with their
 * marker, and the sequence is cut at `maxTokens`; a marker left with none of its text after the cut is dropped.
 */
import type { BpeTokenizer } from '../tokenizer.ts';
import { preprocessClip, preprocessImage, type NormalizeOptions } from '../image-tensor.ts';
import { type RgbImage } from '../image.ts';
import type { PreprocessConfig } from '../../model/preprocess-config.ts';
import { sampleFrames } from '../video.ts';
import { DatasetError, type RawDoc, type Sample, type LazyImage } from './types.ts';

export interface SampleOptions {
  /** Images (media items) kept per sample (paper: 5 for M3W). */
  maxImages: number;
  /** Tokens kept per sample (paper: 256 for M3W). */
  maxTokens: number;
  /** Model input resolution S; media become (3, S, S) CLIP-normalised pixels. */
  imageSize: number;
  normalize?: NormalizeOptions;
  /**
   * The model's image preprocessing (config `preprocess`). Training always converts to RGB first,
   * as OpenFlamingo's training loader does, whatever order the config gives for evaluation.
   */
  preprocess?: PreprocessConfig;
  /** Frames per video item; longer clips are thinned evenly, shorter ones repeat their last frame. */
  videoFrames?: number;
  /** Append the eos token after the document (as OpenFlamingo does for LAION pairs). Default false. */
  appendEos?: boolean;
}

/** Text with the special markers removed, so raw web text cannot forge an `<image>`. */
function cleanText(tok: BpeTokenizer, text: string): string {
  const names = tok.specialTokenNames;
  let t = text;
  for (const s of [names.image, names.eoc, names.pad, names.eos]) if (t.includes(s)) t = t.split(s).join('');
  return t;
}

/** The document as Flamingo text (markers included) and its media in order. */
export function docToText(tok: BpeTokenizer, doc: RawDoc): { text: string; media: (LazyImage | LazyImage[])[] } {
  const { image, eoc } = tok.specialTokenNames;
  let text = '';
  let lastWasText = false;
  const media: (LazyImage | LazyImage[])[] = [];
  for (const c of doc.chunks) {
    if (c.kind === 'text') {
      if (lastWasText) text += ' ';
      text += cleanText(tok, c.text);
      lastWasText = true;
    } else {
      if (media.length > 0) text += eoc;
      text += image;
      media.push(c.kind === 'image' ? c.image : c.frames);
      lastWasText = false;
    }
  }
  if (media.length > 0) text += eoc;
  return { text, media };
}

function pixelsOf(img: RgbImage, o: SampleOptions): Float32Array {
  if (o.preprocess) return preprocessImage(img, o.imageSize, { ...o.preprocess, order: 'rgb_first' });
  return preprocessClip(img, o.imageSize, o.normalize);
}

function framesOf(item: LazyImage | LazyImage[], o: SampleOptions, key: string): Float32Array[] {
  if (!Array.isArray(item)) return [pixelsOf(item(), o)];
  if (item.length === 0) throw new DatasetError(key, 'video has no frames');
  let picked = item;
  const F = o.videoFrames;
  if (F !== undefined) {
    picked = sampleFrames(item, { maxFrames: F });
    while (picked.length < F) picked = [...picked, picked[picked.length - 1]!];
  }
  return picked.map((f) => pixelsOf(f(), o));
}

/**
 * Cut ids at maxTokens, then drop trailing `<image>` markers that have none of their text left.
 * Returns the kept ids; the number of markers in them is the number of media items kept (the first ones).
 */
export function truncateTokens(ids: readonly number[], imageId: number, maxTokens: number): number[] {
  const out = ids.slice(0, Math.max(0, maxTokens));
  while (out.length > 0 && out[out.length - 1] === imageId) out.pop();
  return out;
}

/** The document without media items beyond the first `maxImages` (their text stays, as plain text). */
export function limitMedia(doc: RawDoc, maxImages: number): RawDoc {
  let n = 0;
  const chunks = doc.chunks.filter((c) => c.kind === 'text' || n++ < maxImages);
  return { key: doc.key, chunks };
}

/** Tokenise a document and load the media it keeps. */
export function buildSample(tok: BpeTokenizer, doc: RawDoc, o: SampleOptions): Sample {
  const { text, media } = docToText(tok, limitMedia(doc, o.maxImages));
  const raw = tok.encode(text);
  if (o.appendEos) raw.push(tok.eosTokenId);
  const imageId = tok.imageTokenId;
  const ids = truncateTokens(raw, imageId, o.maxTokens);
  if (ids.length === 0) throw new DatasetError(doc.key, 'is empty after tokenisation');
  let k = 0;
  for (const t of ids) if (t === imageId) k++;
  const pixels = media.slice(0, k).map((m) => framesOf(m, o, doc.key));
  return { key: doc.key, tokens: ids, media: pixels };
}

/** Text-only view of a document (markers and media removed): for LM pretraining and the CLIP text tower. */
export function docPlainText(doc: RawDoc): string {
  return doc.chunks.filter((c) => c.kind === 'text').map((c) => (c as { text: string }).text).join(' ');
}
