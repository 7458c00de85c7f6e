/**
 * From `--data` values to a loaded dataset. Each value is a folder (files found by their official
 * names), an annotation file (its role guessed from its name: train/val/test, questions/annotations)
 * or `key=path` to name a file explicitly; explicit files win over the folder. Keys per task:
 *   coco, flickr30k   annotations= (Karpathy json)  images= (image root)
 *   vqav2 okvqa textvqa vizwiz
 *                     train_questions= train_annotations= train_images= train_pattern=
 *                     test_questions=  test_annotations=  test_images=  test_pattern=
 *   hateful_memes     train= test= (jsonl)  root= (folder `img` paths are relative to)  images=
 *   msrvtt_qa         train= test= (qa json)  videos= (folder of frame folders or video files)
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  EvalDatasetError, loadHatefulMemes, loadKarpathyCaptions, loadMsrvttQa, loadVqaDataset,
  type EvalDataset, type LoadOptions, type VqaDatasetName,
} from './datasets/index.ts';
import { FlamingoError } from '../errors.ts';

export const TASKS = ['coco', 'flickr30k', 'vqav2', 'okvqa', 'textvqa', 'vizwiz', 'hateful_memes', 'msrvtt_qa'] as const;
export type TaskName = (typeof TASKS)[number];

export class DataArgsError extends FlamingoError {}

interface Parsed {
  dir: string | null;
  keys: Map<string, string>;
}

/** The key a bare annotation file stands for, from its name (e.g. v2_mscoco_val2014_annotations.json → test_annotations). */
export function inferKey(task: TaskName, file: string): string | null {
  const n = basename(file).toLowerCase();
  const side = n.includes('train') ? 'train' : 'test';
  switch (task) {
    case 'coco':
    case 'flickr30k':
      return n.endsWith('.json') ? 'annotations' : null;
    case 'hateful_memes':
      return n.endsWith('.jsonl') ? side : null;
    case 'msrvtt_qa':
      return n.endsWith('.json') ? side : null;
    default:
      if (!n.endsWith('.json')) return null;
      return n.includes('question') ? `${side}_questions` : n.includes('annotation') ? `${side}_annotations` : null;
  }
}

function parse(task: TaskName, values: readonly string[]): Parsed {
  let dir: string | null = null;
  const keys = new Map<string, string>();
  for (const v of values) {
    const m = /^([a-z_]+)=(.*)$/.exec(v);
    if (m) {
      keys.set(m[1]!, m[2]!);
    } else if (existsSync(v) && statSync(v).isFile()) {
      const key = inferKey(task, v);
      if (!key) throw new DataArgsError(`--data ${v}: cannot tell which ${task} file this is; pass it as key=path`);
      if (keys.has(key)) throw new DataArgsError(`--data: ${keys.get(key)} and ${v} both look like the ${key} file; pass them as key=path`);
      keys.set(key, v);
    } else if (dir === null) {
      dir = v;
    } else {
      throw new DataArgsError(`--data: two folders given (${dir} and ${v}); name files with key=path`);
    }
  }
  if (dir !== null && !(existsSync(dir) && statSync(dir).isDirectory())) throw new DataArgsError(`--data ${dir}: not a folder`);
  return { dir, keys };
}

/** First existing candidate inside dir (files or folders). */
function find(dir: string | null, names: string[]): string | null {
  if (dir === null) return null;
  for (const n of names) if (existsSync(join(dir, n))) return join(dir, n);
  return null;
}

function need(p: Parsed, key: string, fallback: string | null, what: string): string {
  const v = p.keys.get(key) ?? fallback;
  if (!v) throw new DataArgsError(`--data: cannot find the ${what}; pass --data ${key}=<path>`);
  return v;
}

/** json files in dir whose lower-case name contains every word of `all` and one of `any`. */
function scan(dir: string | null, all: string[], any: string[]): string | null {
  if (dir === null) return null;
  const hits = readdirSync(dir).filter((f) => {
    const n = f.toLowerCase();
    return n.endsWith('.json') && all.every((w) => n.includes(w)) && any.some((w) => n.includes(w));
  }).sort();
  return hits.length ? join(dir, hits[0]!) : null;
}

const VQA_TASKS: Record<string, VqaDatasetName> = { vqav2: 'vqav2', okvqa: 'okvqa', textvqa: 'textvqa', vizwiz: 'vizwiz' };

export function loadTaskData(task: TaskName, values: readonly string[], opts: LoadOptions): EvalDataset {
  const p = parse(task, values);
  const d = p.dir;
  switch (task) {
    case 'coco':
    case 'flickr30k': {
      const annName = task === 'coco' ? 'dataset_coco.json' : 'dataset_flickr30k.json';
      const annotations = need(p, 'annotations', find(d, [annName]), `Karpathy split file ${annName}`);
      const images = need(p, 'images', task === 'flickr30k' ? (find(d, ['flickr30k_images']) ?? d) : d, 'image folder');
      return loadKarpathyCaptions({ ...opts, annotations, images, dataset: task });
    }
    case 'hateful_memes': {
      const support = need(p, 'train', find(d, ['train.jsonl']), 'training jsonl (train.jsonl)');
      const query = need(p, 'test', find(d, ['dev_seen.jsonl', 'dev.jsonl', 'test_seen.jsonl']), 'evaluation jsonl (dev_seen.jsonl / dev.jsonl)');
      const root = p.keys.get('root') ?? d ?? join(query, '..');
      return loadHatefulMemes({ ...opts, support, query, root, images: p.keys.get('images') });
    }
    case 'msrvtt_qa': {
      const support = need(p, 'train', find(d, ['train_qa.json']), 'training qa file (train_qa.json)');
      const query = need(p, 'test', find(d, ['test_qa.json', 'val_qa.json']), 'evaluation qa file (test_qa.json)');
      const videos = need(p, 'videos', find(d, ['frames', 'videos']), 'folder of frame folders or video files (frames/ or videos/)');
      return loadMsrvttQa({ ...opts, support, query, videos });
    }
    default: {
      const dataset = VQA_TASKS[task];
      if (!dataset) throw new DataArgsError(`unknown task ${task}`);
      const split = (side: 'train' | 'test') => {
        const words = side === 'train' ? ['train'] : ['val', 'test'];
        const imgs = side === 'train' ? ['train2014', 'train_images', 'train', 'images'] : ['val2014', 'val_images', 'val', 'test_images', 'test', 'images'];
        return {
          questions: need(p, `${side}_questions`, find(d, [`${side}_questions.json`]) ?? scan(d, ['question'], words), `${side} questions json`),
          annotations: need(p, `${side}_annotations`, find(d, [`${side}_annotations.json`]) ?? scan(d, ['annotation'], words), `${side} annotations json`),
          images: need(p, `${side}_images`, find(d, imgs), `${side} image folder`),
          pattern: p.keys.get(`${side}_pattern`),
        };
      };
      return loadVqaDataset({ ...opts, dataset, support: split('train'), query: split('test') });
    }
  }
}

export function isDatasetError(e: unknown): boolean {
  return e instanceof EvalDatasetError || e instanceof DataArgsError;
}
