/**
 * In-memory datasets: endless generators addressed by index (document i depends only on (seed, i)), finite
 * lists shuffled per epoch, and the synthetic world (src/data/synthetic) as interleaved documents,
 * image–text pairs, video–text pairs and plain text. They yield the same RawDoc type as the file formats.
 */
import { Rng } from '../../engine/rng.ts';
import { ANSWER_LABELS, QUESTION_LABELS, balancedQuestion, documentAt, shapeVariantPairAt, videoAt, type DocumentKind, type InterleavedDocument, type SyntheticWorldOptions } from '../synthetic/index.ts';
import type { RgbImage } from '../image.ts';
import { DatasetError, epochStream, START, subSeed, type Cursor, type DocSource, type DocStream, type RawChunk, type RawDoc } from './types.ts';

/** Endless stream: document `i` of seed `s` is `make(s, i)`; the cursor is (0, i). */
export function generatorSource(name: string, make: (seed: number, index: number) => RawDoc): DocSource {
  return {
    name,
    open(seed: number, at: Cursor = START): DocStream {
      if (at.epoch !== 0) throw new DatasetError(name, `is endless and has no epoch ${at.epoch}`);
      let i = at.offset;
      const s = subSeed(seed, 'generator', name);
      return {
        get cursor() {
          return { epoch: 0, offset: i };
        },
        next: () => make(s, i++),
      };
    },
  };
}

/** A finite list, reshuffled every epoch by (seed, epoch) unless shuffle is false. */
export function listSource(name: string, docs: readonly RawDoc[], opts: { shuffle?: boolean } = {}): DocSource {
  const shuffle = opts.shuffle ?? true;
  return {
    name,
    open(seed: number, at?: Cursor): DocStream {
      const base = new Rng(seed).fork('list').fork(name);
      return epochStream(name, (epoch) => {
        const idx = docs.map((_, k) => k);
        if (shuffle) base.fork(epoch).shuffle(idx);
        return { count: docs.length, get: (i) => docs[idx[i]!]! };
      }, at);
    },
  };
}

/** Plain texts (e.g. a text corpus) as a finite list source. */
export function textListSource(name: string, texts: readonly string[], opts: { shuffle?: boolean } = {}): DocSource {
  return listSource(name, texts.map((text, i) => ({ key: `${name}:${i}`, chunks: [{ kind: 'text', text }] })), opts);
}

const constant = (img: RgbImage) => () => img;

export function syntheticDocToRaw(doc: InterleavedDocument): RawDoc {
  return {
    key: doc.id,
    chunks: doc.chunks.map((c): RawChunk => (c.type === 'text' ? { kind: 'text', text: c.text } : { kind: 'image', image: constant(c.image) })),
  };
}

export interface SyntheticDocOptions {
  name?: string;
  kind?: DocumentKind;
  world?: SyntheticWorldOptions;
}

/** Interleaved synthetic web pages (M3W-like). */
export function syntheticDocuments(opts: SyntheticDocOptions = {}): DocSource {
  const name = opts.name ?? `synthetic-documents${opts.kind ? `-${opts.kind}` : ''}`;
  return generatorSource(name, (seed, i) => syntheticDocToRaw(documentAt(seed, i, { ...opts.world, kind: opts.kind })));
}

export type PairText = 'caption' | 'alt' | 'description' | 'mixed' | 'qa';

/** Synthetic image–text pairs (ALIGN/LTIP-like): `<image>{text}<|endofchunk|>`. */
export function syntheticPairs(opts: { name?: string; text?: PairText; world?: SyntheticWorldOptions; shape_variants?: number; labels?: QaLabels } = {}): DocSource {
  const which = opts.text ?? 'mixed';
  const texts: readonly PairText[] = ['caption', 'alt', 'description', 'mixed', 'qa'];
  if (!texts.includes(which)) throw new DatasetError(opts.name ?? 'synthetic-pairs', `text must be one of ${texts.join(', ')}, got ${JSON.stringify(which)}`);
  const labels = qaLabelsOf(opts.name ?? 'synthetic-pairs', opts.labels, which);
  const g = opts.shape_variants ?? 1;
  if (!Number.isInteger(g) || g < 1 || g > 64) throw new DatasetError(opts.name ?? 'synthetic-pairs', `shape_variants must be an integer in [1, 64], got ${g}`);
  return generatorSource(opts.name ?? 'synthetic-pairs', (seed, i) => {
    // groups of g consecutive pairs differ only in shapes (hard negatives for contrastive batches); with g = 1
    // every pair is member 0 of its own group, i.e. imageTextPairAt(seed, i)
    const p = shapeVariantPairAt(seed, Math.floor(i / g), i % g, opts.world);
    if (which === 'qa') {
      // VQAv2-like: one question about the image, kinds balanced, the answer bare
      const r = new Rng(seed).fork('qa').fork(i);
      const q = balancedQuestion(r, p.scene, opts.world);
      return { key: `${p.id}-qa`, chunks: [{ kind: 'image', image: constant(p.image) }, { kind: 'text', text: qaForm(r, labels)(q.question, q.answer) }] };
    }
    const k = which === 'mixed' ? (['caption', 'alt', 'description'] as const)[i % 3]! : which;
    const text = k === 'caption' ? p.caption : k === 'alt' ? p.altText : p.description;
    return { key: p.id, chunks: [{ kind: 'image', image: constant(p.image) }, { kind: 'text', text }] };
  });
}

/**
 * The question–answer template of one pair (or one page): `Question: … Answer: …`, or with `varied` labels drawn
 * from the documents' lists (`Q: … Reply: …`, in half the pairs without the space after the colon). A single pair
 * brings no examples to copy a form from, so a bare answer after whatever label a zero-shot prompt uses
 * (OpenFlamingo's `Question:… Short answer:`) has to be learned from many labels.
 */
function qaForm(r: Rng, labels: QaLabels): (question: string, answer: string) => string {
  if (labels === 'fixed') return (q, a) => `Question: ${q} Answer: ${a}`;
  const ql = QUESTION_LABELS[r.int(QUESTION_LABELS.length)]!;
  const al = ANSWER_LABELS[r.int(ANSWER_LABELS.length)]!;
  const sep = r.uniform() < 0.5 ? '' : ' ';
  return (q, a) => `${ql}${sep}${q} ${al}${sep}${a}`;
}

export type QaLabels = 'fixed' | 'varied';

function qaLabelsOf(name: string, labels: unknown, text: string | undefined): QaLabels {
  if (labels === undefined) return 'fixed';
  if (labels !== 'fixed' && labels !== 'varied') throw new DatasetError(name, `labels must be "fixed" or "varied", got ${JSON.stringify(labels)}`);
  if (text !== 'qa') throw new DatasetError(name, 'labels only applies to text: "qa"');
  return labels;
}

/**
 * Synthetic video–text pairs (VTP-like): one media item of F frames, then its description, or with
 * `text: 'qa'` one of its questions and the answer (`Question: … Answer: …`, the image VQA pairs' form), so
 * the model learns to answer about motion from frames as it does about scenes from images (`labels`: qaForm).
 * `per_document: n` (qa only) makes pages of 1–n such videos with one template (the video QA form of the
 * image QA pages): few-shot video prompts hold several videos, and a model that only ever saw one video per
 * sequence answers worse the more examples it is given.
 */
export function syntheticVideos(opts: { name?: string; frames?: number; size?: number; world?: SyntheticWorldOptions; text?: 'description' | 'qa'; labels?: QaLabels; per_document?: number } = {}): DocSource {
  const name = opts.name ?? 'synthetic-videos';
  const text = opts.text ?? 'description';
  if (text !== 'description' && text !== 'qa') throw new DatasetError(name, `text must be "description" or "qa", got ${JSON.stringify(opts.text)}`);
  const labels = qaLabelsOf(name, opts.labels, text);
  const n = opts.per_document ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > 16) throw new DatasetError(name, `per_document must be an integer in [1, 16], got ${JSON.stringify(opts.per_document)}`);
  if (n > 1 && text !== 'qa') throw new DatasetError(name, 'per_document only applies to text: "qa"');
  if (n > 1) {
    return generatorSource(name, (seed, i) => {
      const r = new Rng(seed).fork('video-qa-page').fork(i);
      const m = 1 + r.int(n);
      const form = qaForm(r, labels);
      const chunks: RawChunk[] = [];
      for (let j = 0; j < m; j++) {
        const v = videoAt(seed, i * n + j, { frames: opts.frames, size: opts.size, world: opts.world });
        const q = v.qa[r.int(v.qa.length)]!;
        chunks.push({ kind: 'video', frames: v.frames.map(constant) }, { kind: 'text', text: form(q.question, q.answer) });
      }
      return { key: `video-${seed}-${i}-qa-page`, chunks };
    });
  }
  return generatorSource(name, (seed, i) => {
    const v = videoAt(seed, i, { frames: opts.frames, size: opts.size, world: opts.world });
    const frames: RawChunk = { kind: 'video', frames: v.frames.map(constant) };
    if (text === 'qa') {
      const r = new Rng(seed).fork('video-qa').fork(i);
      const q = v.qa[r.int(v.qa.length)]!;
      return { key: `video-${seed}-${i}-qa`, chunks: [frames, { kind: 'text', text: qaForm(r, labels)(q.question, q.answer) }] };
    }
    const desc = v.description.charAt(0).toUpperCase() + v.description.slice(1);
    return { key: `video-${seed}-${i}`, chunks: [frames, { kind: 'text', text: desc.endsWith('.') ? desc : `${desc}.` }] };
  });
}

/** Text of synthetic documents without their images: teaches the LM the synthetic world's language. */
export function syntheticText(opts: SyntheticDocOptions = {}): DocSource {
  return generatorSource(opts.name ?? 'synthetic-text', (seed, i) => {
    const d = documentAt(seed, i, { ...opts.world, kind: opts.kind });
    return { key: d.id, chunks: [{ kind: 'text', text: d.chunks.flatMap((c) => (c.type === 'text' ? [c.text] : [])).join(' ') }] };
  });
}
