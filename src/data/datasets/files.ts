/**
 * Datasets on disk: JSONL files, WebDataset tar shards (`shard-000000.tar` holding `key.json` + `key.png` …)
 * and plain folders laid out the same way (`key.json` next to `key.png`). Each file (or folder) is a shard.
 * Shards are read one at a time (streaming). Per epoch the shard order is a seeded shuffle of (seed, epoch),
 * shards are dealt to workers round-robin, and records inside a shard are shuffled by (seed, epoch, shard).
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Rng } from '../../engine/rng.ts';
import { decodeImage, loadImage } from '../image.ts';
import { listFrameFiles } from '../video.ts';
import { recordToDoc, type DataFormat, type MediaResolver } from './records.ts';
import { readTar, groupByKey } from './tar.ts';
import { DatasetError, epochStream, type Cursor, type DocSource, type DocStream, type EpochView, type RawDoc } from './types.ts';

export interface FileSourceOptions {
  name?: string;
  format: DataFormat;
  /** .jsonl files, .tar shards, or folders holding either (or holding key.json groups). */
  path: string | string[];
  /** Shuffle shards and records per epoch (default true); false keeps file order every epoch. */
  shuffle?: boolean;
  /** This worker's index and the worker count: worker w reads shards w, w + n, … of each epoch's order. */
  worker?: number;
  numWorkers?: number;
}

type ShardKind = 'jsonl' | 'tar' | 'folder';
interface Shard { id: string; kind: ShardKind; path: string }
interface LoadedRecord { key: string; where: string; rec: unknown; media: MediaResolver }

const IMAGE_EXT = /^(png|jpe?g)$/i;

/** Expand paths into shards, sorted by path so the list does not depend on directory listing order. */
export function discoverShards(paths: string | string[]): Shard[] {
  const out: Shard[] = [];
  for (const p0 of Array.isArray(paths) ? paths : [paths]) {
    const p = resolve(p0);
    if (!existsSync(p)) throw new DatasetError(p0, 'does not exist');
    if (statSync(p).isDirectory()) {
      const files = readdirSync(p).sort();
      const shards = files.filter((f) => /\.(jsonl|tar)$/.test(f));
      if (shards.length > 0) {
        for (const f of shards) out.push({ id: f, kind: f.endsWith('.tar') ? 'tar' : 'jsonl', path: join(p, f) });
      } else if (files.some((f) => f.endsWith('.json'))) {
        out.push({ id: basename(p), kind: 'folder', path: p });
      } else {
        throw new DatasetError(p0, 'folder holds no .jsonl, .tar or .json files');
      }
    } else if (p.endsWith('.tar')) out.push({ id: basename(p), kind: 'tar', path: p });
    else out.push({ id: basename(p), kind: 'jsonl', path: p });
  }
  const ids = new Set<string>();
  for (const s of out) {
    // shard ids seed the in-shard shuffle; make same-named files in different folders distinct
    if (ids.has(s.id)) s.id = s.path;
    ids.add(s.id);
  }
  return out;
}

function pathResolver(dir: string): MediaResolver {
  return {
    image: (ref) => () => loadImage(resolve(dir, ref)),
    frameDir: (ref) => listFrameFiles(resolve(dir, ref)).map((f) => () => loadImage(f)),
  };
}

function parseJson(where: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new DatasetError(where, `invalid JSON: ${(e as Error).message}`);
  }
}

function groupResolver(where: string, key: string, members: Map<string, Uint8Array | string>, fallbackDir: string | null): MediaResolver {
  const load = (ext: string) => {
    const m = members.get(ext)!;
    return () => (typeof m === 'string' ? loadImage(m) : decodeImage(m, `${where}/${key}.${ext}`));
  };
  const base = basename(key);
  return {
    image(ref) {
      // "key.png", "png" or a name relative to the group's folder
      for (const cand of [ref, ref.startsWith(`${base}.`) ? ref.slice(base.length + 1) : '', ref.startsWith(`${key}.`) ? ref.slice(key.length + 1) : '']) {
        if (cand && members.has(cand)) return load(cand);
      }
      if (fallbackDir !== null) return () => loadImage(resolve(fallbackDir, ref));
      throw new DatasetError(where, `group ${key} has no member for image ${JSON.stringify(ref)} (members: ${[...members.keys()].join(', ')})`);
    },
    defaultImage() {
      const imgs = [...members.keys()].filter((e) => IMAGE_EXT.test(e));
      return imgs.length === 1 ? load(imgs[0]!) : null;
    },
    frameDir: fallbackDir === null ? undefined : (ref) => listFrameFiles(resolve(fallbackDir, ref)).map((f) => () => loadImage(f)),
  };
}

function loadShard(s: Shard): LoadedRecord[] {
  const out: LoadedRecord[] = [];
  if (s.kind === 'jsonl') {
    const media = pathResolver(dirname(s.path));
    const lines = readFileSync(s.path, 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      const where = `${s.path}:${i + 1}`;
      out.push({ key: `${s.id}:${i + 1}`, where, rec: parseJson(where, line), media });
    });
  } else if (s.kind === 'tar') {
    for (const g of groupByKey(readTar(readFileSync(s.path), s.path))) {
      const json = g.members.get('json');
      if (!json) continue;
      const where = `${s.path}:${g.key}.json`;
      out.push({ key: `${s.id}:${g.key}`, where, rec: parseJson(where, new TextDecoder().decode(json)), media: groupResolver(s.path, g.key, g.members, null) });
    }
  } else {
    const groups = new Map<string, Map<string, string>>();
    for (const f of readdirSync(s.path).sort()) {
      const dot = f.indexOf('.');
      if (dot <= 0) continue;
      const key = f.slice(0, dot);
      let g = groups.get(key);
      if (!g) groups.set(key, (g = new Map()));
      g.set(f.slice(dot + 1), join(s.path, f));
    }
    for (const [key, members] of groups) {
      const json = members.get('json');
      if (!json) continue;
      const where = json;
      out.push({ key: `${s.id}:${key}`, where, rec: parseJson(where, readFileSync(json, 'utf8')), media: groupResolver(s.path, key, members, s.path) });
    }
  }
  return out;
}

/** A dataset of files; see the module comment for ordering. */
export function fileSource(opts: FileSourceOptions): DocSource {
  const shards = discoverShards(opts.path);
  const name = opts.name ?? (Array.isArray(opts.path) ? opts.path.join(',') : opts.path);
  const shuffle = opts.shuffle ?? true;
  const numWorkers = opts.numWorkers ?? 1;
  const worker = opts.worker ?? 0;
  if (!Number.isInteger(numWorkers) || numWorkers < 1 || !Number.isInteger(worker) || worker < 0 || worker >= numWorkers) {
    throw new DatasetError(name, `worker ${worker} of ${numWorkers} is not a valid assignment`);
  }
  if (shards.length < numWorkers) throw new DatasetError(name, `${shards.length} shard(s) cannot feed ${numWorkers} workers`);
  const counts = new Map<string, number>();
  let cached: { id: string; records: LoadedRecord[] } | null = null;
  const records = (s: Shard): LoadedRecord[] => {
    if (cached?.id !== s.path) cached = { id: s.path, records: loadShard(s) };
    counts.set(s.path, cached.records.length);
    return cached.records;
  };
  const count = (s: Shard): number => counts.get(s.path) ?? records(s).length;

  return {
    name,
    open(seed: number, at?: Cursor): DocStream {
      const base = new Rng(seed).fork('files').fork(name);
      const epochView = (epoch: number): EpochView => {
        const order = shards.slice();
        if (shuffle) base.fork('shards').fork(epoch).shuffle(order);
        const mine = order.filter((_, i) => i % numWorkers === worker);
        const starts: number[] = [];
        let total = 0;
        for (const s of mine) {
          starts.push(total);
          total += count(s);
        }
        let perm: { path: string; idx: number[] } | null = null;
        return {
          count: total,
          get(i: number): RawDoc {
            let j = mine.length - 1;
            while (starts[j]! > i) j--;
            const s = mine[j]!;
            const recs = records(s);
            if (perm?.path !== s.path) {
              const idx = recs.map((_, k) => k);
              if (shuffle) base.fork('records').fork(epoch).fork(s.id).shuffle(idx);
              perm = { path: s.path, idx };
            }
            const r = recs[perm.idx[i - starts[j]!]!]!;
            return recordToDoc(opts.format, r.key, r.where, r.rec, r.media);
          },
        };
      };
      return epochStream(name, epochView, at);
    },
  };
}
