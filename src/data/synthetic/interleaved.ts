// Interleaved image–text documents (M3W-like) and their conversion to the Flamingo prompt convention used by
// OpenFlamingo: each image becomes "<image>", and the text that follows an image is closed by "<|endofchunk|>".

import { SyntheticDataError } from './errors.ts';
import type { RgbImage, Scene } from './types.ts';

export const IMAGE_TOKEN = '<image>';
export const END_OF_CHUNK_TOKEN = '<|endofchunk|>';

export type Chunk = { type: 'text'; text: string } | { type: 'image'; image: RgbImage; id: string };

/** For in-context tasks: the document's last text chunk is exactly `prompt + completion`. */
export interface DocumentQuery {
  /** Text of the last chunk up to where the model should start generating. */
  prompt: string;
  /** What follows the prompt in the training text (e.g. " dax."). */
  completion: string;
  /** The expected short answer, normalised (e.g. "dax"). */
  answer: string;
}

export interface InterleavedDocument {
  id: string;
  kind: string;
  chunks: Chunk[];
  /** Scene behind each synthetic image, by image id (absent for caller-supplied images). */
  scenes: Record<string, Scene>;
  query?: DocumentQuery;
  /** Invented name → the category it is bound to in this document only. */
  bindings?: Record<string, string>;
  /** Output format used by this document (format tasks), e.g. "bracket". */
  format?: string;
}

export interface FlamingoPrompt {
  text: string;
  images: RgbImage[];
  imageIds: string[];
}

/**
 * Flamingo text with `<image>` markers and the image list in order. Every image after the first is preceded by
 * `<|endofchunk|>`, and the document ends with one, so an image-led document reads "<image>caption<|endofchunk|>"
 * per image. `closeLast: false` leaves the final chunk open, which is how a prompt for generation ends.
 */
export function interleavedToPrompt(doc: Pick<InterleavedDocument, 'chunks'>, opts: { closeLast?: boolean } = {}): FlamingoPrompt {
  const closeLast = opts.closeLast ?? true;
  let text = '';
  let lastWasText = false;
  const images: RgbImage[] = [];
  const imageIds: string[] = [];
  for (const [i, chunk] of doc.chunks.entries()) {
    if (chunk.type === 'image') {
      if (images.length > 0) text += END_OF_CHUNK_TOKEN;
      text += IMAGE_TOKEN;
      images.push(chunk.image);
      imageIds.push(chunk.id);
      lastWasText = false;
    } else if (chunk.type === 'text') {
      if (chunk.text.includes(IMAGE_TOKEN) || chunk.text.includes(END_OF_CHUNK_TOKEN)) {
        throw new SyntheticDataError('interleavedToPrompt', `chunk ${i} text contains a reserved marker: ${JSON.stringify(chunk.text)}`);
      }
      // Adjacent text chunks are separate paragraphs of the same page; keep them apart by one space.
      if (lastWasText) text += ' ';
      text += chunk.text;
      lastWasText = true;
    } else {
      throw new SyntheticDataError('interleavedToPrompt', `chunk ${i} has unknown type ${JSON.stringify((chunk as { type: unknown }).type)}`);
    }
  }
  if (closeLast && images.length > 0) text += END_OF_CHUNK_TOKEN;
  return { text, images, imageIds };
}

/** The document with its last chunk cut back to the query prompt: what an evaluator feeds the model. */
export function withoutAnswer(doc: InterleavedDocument): InterleavedDocument {
  const q = doc.query;
  const last = doc.chunks[doc.chunks.length - 1];
  if (!q || !last || last.type !== 'text' || last.text !== q.prompt + q.completion) {
    throw new SyntheticDataError('withoutAnswer', `document ${doc.id} has no query whose prompt+completion is its last text chunk`);
  }
  return { ...doc, chunks: [...doc.chunks.slice(0, -1), { type: 'text', text: q.prompt }] };
}

/** Prompt for few-shot evaluation: the context with the final answer removed and the last chunk left open. */
export function queryPrompt(doc: InterleavedDocument): FlamingoPrompt & { answer: string } {
  return { ...interleavedToPrompt(withoutAnswer(doc), { closeLast: false }), answer: doc.query!.answer };
}
