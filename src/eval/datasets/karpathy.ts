/**
 * COCO and Flickr30K captions in Karpathy's split files (`dataset_coco.json`, `dataset_flickr30k.json`):
 * {images: [{filepath?, filename, cocoid?, split, sentences: [{raw, tokens}]}]}.
 * As OpenFlamingo: demonstrations come from split "train", queries from split "test"; COCO results
 * are keyed by cocoid, Flickr30K by the file name without extension. Scoring needs COCO-style
 * reference captions, which are written from the same json.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { EvalDatasetError, type CaptionItem, type EvalDataset, type EvalItem, type LoadOptions, type SkippedItem } from './types.ts';
import { checkMedia, field, imageRef, isArray, isId, isObject, isString, readJson, writeJson } from './common.ts';

export interface KarpathyOptions extends LoadOptions {
  /** The Karpathy split json. */
  readonly annotations: string;
  /** Root folder of the images: `<root>/<filepath>/<filename>` (COCO) or `<root>/<filename>`. */
  readonly images: string;
  readonly dataset: 'coco' | 'flickr30k';
  /** Split names (defaults "train" and "test", as OpenFlamingo). */
  readonly supportSplit?: string;
  readonly querySplit?: string;
}

function imagePath(root: string, filepath: string | undefined, filename: string): string {
  if (filepath) {
    const p = join(root, filepath, filename);
    if (existsSync(p)) return p;
  }
  const direct = join(root, filename);
  if (existsSync(direct) || !filepath) return direct;
  return join(root, filepath, filename); // report the canonical location when neither exists
}

export function loadKarpathyCaptions(opts: KarpathyOptions): EvalDataset {
  const file = opts.annotations;
  const data = readJson(file);
  if (!isObject(data) || !Array.isArray(data.images)) throw new EvalDatasetError(file, 'expected an object with an "images" array (Karpathy split format)');
  const supportSplit = opts.supportSplit ?? 'train';
  const querySplit = opts.querySplit ?? 'test';
  const support: CaptionItem[] = [];
  const query: CaptionItem[] = [];
  const seen = new Set<string>();
  data.images.forEach((raw, i) => {
    const where = `images[${i}]`;
    if (!isObject(raw)) throw new EvalDatasetError(file, `${where} must be an object`);
    const filename = field(file, where, raw, 'filename', isString, 'a string');
    const split = field(file, where, raw, 'split', isString, 'a string');
    const filepath = raw.filepath === undefined ? undefined : field(file, where, raw, 'filepath', isString, 'a string');
    const sentences = field(file, where, raw, 'sentences', isArray, 'an array');
    const captions = sentences.map((s, j) => {
      if (!isObject(s) || typeof s.raw !== 'string') throw new EvalDatasetError(file, `${where}.sentences[${j}] must be an object with a string "raw"`);
      return s.raw;
    });
    if (split !== supportSplit && split !== querySplit) return;
    if (captions.length === 0) throw new EvalDatasetError(file, `${where} (${filename}) has no sentences`);
    const id = opts.dataset === 'coco' ? field(file, where, raw, 'cocoid', isId, 'an integer id') : filename.split('.')[0]!;
    const key = `${split}:${String(id)}`;
    if (seen.has(key)) throw new EvalDatasetError(file, `${where}: image id ${JSON.stringify(id)} appears twice in split "${split}"`);
    seen.add(key);
    const item: CaptionItem = { kind: 'captioning', id, media: imageRef(imagePath(opts.images, filepath, filename)), captions };
    (split === querySplit ? query : support).push(item);
  });
  if (query.length === 0) throw new EvalDatasetError(file, `no images in split "${querySplit}"`);
  const skipped: SkippedItem[] = [];
  const q = checkMedia(query, 'query', opts, skipped, file);
  const s = checkMedia(support, 'support', opts, skipped, file);
  return {
    name: opts.dataset,
    kind: 'captioning',
    support: s,
    query: q,
    skipped,
    scoring: (outDir, items) => {
      const annotations = join(outDir, `${opts.dataset}_${querySplit}_annotations_coco_style.json`);
      writeJson(annotations, cocoStyle(items));
      return { task: 'captioning', annotations };
    },
  };
}

/** COCO caption annotation format ({images, annotations}) for the given caption items. */
export function cocoStyle(items: readonly EvalItem[]): { images: { id: unknown }[]; annotations: { image_id: unknown; id: number; caption: string }[] } {
  const images: { id: unknown }[] = [];
  const annotations: { image_id: unknown; id: number; caption: string }[] = [];
  for (const it of items) {
    if (it.kind !== 'captioning') continue;
    images.push({ id: it.id });
    for (const c of it.captions) annotations.push({ image_id: it.id, id: annotations.length, caption: c });
  }
  return { images, annotations };
}
