/**
 * Hateful Memes: jsonl files of {id, img, label, text} (train.jsonl, dev_seen.jsonl / dev.jsonl) and an
 * `img/` folder. `img` is relative to the dataset folder ("img/42953.png"); like OpenFlamingo we also
 * accept the bare file name inside the image folder. The query jsonl is also the scorer's annotations.
 */
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { readJsonlFile, FormatError } from '../formats.ts';
import { EvalDatasetError, type ClassificationItem, type EvalDataset, type LoadOptions } from './types.ts';
import { readCheckedSplits, field, imageRef, isId, isObject, isString } from './common.ts';

export interface HatefulMemesOptions extends LoadOptions {
  readonly support: string;
  readonly query: string;
  /** Folder the `img` paths are relative to (the dataset root). */
  readonly root: string;
  /** Folder holding the images by bare file name (default `<root>/img`). */
  readonly images?: string;
}

export const HM_CLASS_NAMES = ['no', 'yes'] as const;

function readSplit(file: string, opts: HatefulMemesOptions): ClassificationItem[] {
  let lines;
  try {
    lines = readJsonlFile(file);
  } catch (e) {
    if (e instanceof FormatError) throw new EvalDatasetError(file, e.message.slice(file.length + 2));
    throw e;
  }
  const imgDir = opts.images ?? join(opts.root, 'img');
  const ids = new Set<string>();
  const items = lines.map(({ line, value }) => {
    const where = `line ${line}`;
    if (!isObject(value)) throw new EvalDatasetError(file, `${where} must be a JSON object`);
    const id = field(file, where, value, 'id', isId, 'an integer or string id');
    const img = field(file, where, value, 'img', isString, 'a string');
    const text = field(file, where, value, 'text', isString, 'a string');
    const label = value.label;
    if (label !== 0 && label !== 1) throw new EvalDatasetError(file, `${where}: field "label" must be 0 or 1, got ${JSON.stringify(label)}`);
    if (ids.has(JSON.stringify(id))) throw new EvalDatasetError(file, `${where}: duplicate id ${JSON.stringify(id)}`);
    ids.add(JSON.stringify(id));
    const rel = join(opts.root, img);
    const path = existsSync(rel) ? rel : join(imgDir, basename(img));
    return { kind: 'classification', id, media: imageRef(path), text, label } satisfies ClassificationItem;
  });
  if (items.length === 0) throw new EvalDatasetError(file, 'no entries');
  return items;
}

export function loadHatefulMemes(opts: HatefulMemesOptions): EvalDataset {
  const { query, support, skipped } = readCheckedSplits(opts, (file) => readSplit(file, opts));
  return {
    name: 'hateful_memes',
    kind: 'classification',
    support,
    query,
    skipped,
    scoring: () => ({ task: 'classification', annotations: opts.query }),
  };
}
