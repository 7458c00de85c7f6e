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

/** A run of a document's text and whether its tokens are loss targets (RawChunk `scored`). */
export interface TextPiece {
  text: string;
  scored: boolean;
}

/**
 * The document as Flamingo text (markers included) and its media in order; `pieces` is the same text cut where
 * a chunk's `scored` changes (markers are scored; `<image>` never is a target anyway).
 */
export function docToText(tok: BpeTokenizer, doc: RawDoc): { text: string; media: (LazyImage | LazyImage[])[]; pieces: TextPiece[] } {
  const { image, eoc } = tok.specialTokenNames;
  const pieces: TextPiece[] = [];
  const put = (text: string, scored: boolean): void => {
    const last = pieces[pieces.length - 1];
    if (last && last.scored === scored) last.text += text;
    else pieces.push({ text, scored });
  };
  let lastWasText = false;
  const media: (LazyImage | LazyImage[])[] = [];
  for (const c of doc.chunks) {
    if (c.kind === 'text') {
      // the joining space goes with the chunk after it, where the pre-tokenizer cuts too
      put((lastWasText ? ' ' : '') + cleanText(tok, c.text), c.scored ?? true);
      lastWasText = true;
    } else {
      put((media.length > 0 ? eoc : '') + image, true);
      media.push(c.kind === 'image' ? c.image : c.frames);
      lastWasText = false;
    }
  }
  if (media.length > 0) put(eoc, true);
  return { text: pieces.map((p) => p.text).join(''), media, pieces };
}

/**
 * Token ids of text pieces and, when some piece is unscored, which ids are loss targets. Each piece is encoded
 * on its own; that must give the ids of the whole text (pieces cut where the pre-tokenizer cuts anyway, e.g.
 * before a space), else the document is rejected rather than trained on other ids than the text's.
 */
export function encodePieces(tok: BpeTokenizer, pieces: readonly TextPiece[], parseSpecial: boolean, where: string): { ids: number[]; scored: Uint8Array | null } {
  const whole = tok.encode(pieces.map((p) => p.text).join(''), { parseSpecial });
  if (pieces.every((p) => p.scored)) return { ids: whole, scored: null };
  const ids: number[] = [];
  const flags: number[] = [];
  for (const p of pieces) {
    for (const id of tok.encode(p.text, { parseSpecial })) {
      ids.push(id);
      flags.push(p.scored ? 1 : 0);
    }
  }
  if (ids.length !== whole.length || ids.some((id, i) => id !== whole[i])) {
    throw new DatasetError(where, 'its scored and unscored text pieces tokenise differently apart than together (cut them before a space)');
  }
  return { ids: whole, scored: Uint8Array.from(flags) };
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
  const { pieces, media } = docToText(tok, limitMedia(doc, o.maxImages));
  const { ids: raw, scored } = encodePieces(tok, pieces, true, doc.key);
  if (o.appendEos) raw.push(tok.eosTokenId);
  const imageId = tok.imageTokenId;
  const ids = truncateTokens(raw, imageId, o.maxTokens);
  if (ids.length === 0) throw new DatasetError(doc.key, 'is empty after tokenisation');
  let k = 0;
  for (const t of ids) if (t === imageId) k++;
  const pixels = media.slice(0, k).map((m) => framesOf(m, o, doc.key));
  const sample: Sample = { key: doc.key, tokens: ids, media: pixels };
  if (scored) {
    const s = new Uint8Array(ids.length).fill(1); // an appended eos stays scored
    s.set(scored.subarray(0, Math.min(scored.length, ids.length)));
    sample.scored = s;
  }
  return sample;
}

/** Text-only view of a document (markers and media removed): for LM pretraining and the CLIP text tower. */
export function docPlainText(doc: RawDoc): string {
  return docPlainPieces(doc).map((p) => p.text).join('');
}

/** docPlainText cut into pieces by the chunks' `scored` (the joining space goes with the chunk after it). */
export function docPlainPieces(doc: RawDoc): TextPiece[] {
  const pieces: TextPiece[] = [];
  for (const c of doc.chunks) {
    if (c.kind !== 'text') continue;
    const text = (pieces.length ? ' ' : '') + c.text;
    const scored = c.scored ?? true;
    const last = pieces[pieces.length - 1];
    if (last && last.scored === scored) last.text += text;
    else pieces.push({ text, scored });
  }
  return pieces;
}
