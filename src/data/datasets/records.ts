/**
 * JSON records of the on-disk formats → raw documents. One record is one JSONL line or one `key.json`
 * member of a WebDataset shard. Media references are resolved by the container (file next to the JSONL,
 * member of the same tar group, file in the same folder).
 *
 *   interleaved  {"chunks": [{"text": "..."} | {"image": "a.png"} | {"video": ["f0.png", ...]}]}
 *                or MMC4 {"text_list": [...], "image_info": [{"image_name": "a.png", "matched_text_index": 0}]}
 *   pairs        {"image": "a.png", "text": "..."}   ("caption" is accepted for "text"; "image" may be omitted in a
 *                WebDataset group that has exactly one image member)
 *   video        {"frames": ["f0.png", ...] | "frames_dir": "clip/", "text": "..."}
 *   text         {"text": "..."}
 */
import { DatasetError, type LazyImage, type RawChunk, type RawDoc } from './types.ts';

export const FORMATS = ['interleaved', 'pairs', 'video', 'text'] as const;
export type DataFormat = (typeof FORMATS)[number];

/** How a container turns a reference into an image; `frameDir` lists a folder of frames (sorted). */
export interface MediaResolver {
  image(ref: string): LazyImage;
  /** The group's only image when a pair record names none (WebDataset `key.png`). */
  defaultImage?(): LazyImage | null;
  frameDir?(ref: string): LazyImage[];
}

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function str(where: string, rec: Record<string, unknown>, ...keys: string[]): string {
  for (const k of keys) if (typeof rec[k] === 'string') return rec[k] as string;
  throw new DatasetError(where, `needs a string field ${keys.map((k) => `"${k}"`).join(' or ')}`);
}

function interleaved(where: string, rec: Record<string, unknown>, media: MediaResolver): RawChunk[] {
  if (Array.isArray(rec.chunks)) {
    return rec.chunks.map((c, i): RawChunk => {
      if (!isObj(c)) throw new DatasetError(where, `chunk ${i} is not an object`);
      if (typeof c.text === 'string') return { kind: 'text', text: c.text };
      if (typeof c.image === 'string') return { kind: 'image', image: media.image(c.image) };
      if (Array.isArray(c.video)) return { kind: 'video', frames: c.video.map((f) => media.image(String(f))) };
      throw new DatasetError(where, `chunk ${i} has neither "text" nor "image": ${JSON.stringify(c).slice(0, 80)}`);
    });
  }
  if (Array.isArray(rec.text_list)) {
    // MMC4: each image goes right before the sentence it was matched to.
    const texts = rec.text_list.map((t, i) => {
      if (typeof t !== 'string') throw new DatasetError(where, `text_list[${i}] is not a string`);
      return t;
    });
    const before = new Map<number, LazyImage[]>();
    const info = Array.isArray(rec.image_info) ? rec.image_info : [];
    info.forEach((im, j) => {
      if (!isObj(im) || typeof im.image_name !== 'string' || typeof im.matched_text_index !== 'number') {
        throw new DatasetError(where, `image_info[${j}] needs "image_name" and "matched_text_index"`);
      }
      const idx = im.matched_text_index;
      if (!Number.isInteger(idx) || idx < 0 || idx >= texts.length) {
        throw new DatasetError(where, `image_info[${j}].matched_text_index ${idx} is outside text_list (${texts.length})`);
      }
      const list = before.get(idx) ?? [];
      list.push(media.image(im.image_name));
      before.set(idx, list);
    });
    const chunks: RawChunk[] = [];
    texts.forEach((t, i) => {
      for (const img of before.get(i) ?? []) chunks.push({ kind: 'image', image: img });
      chunks.push({ kind: 'text', text: t });
    });
    return chunks;
  }
  throw new DatasetError(where, 'interleaved record needs "chunks" or "text_list"');
}

/** Parse one record of `format`. `where` names the file/shard and line/key for errors. */
export function recordToDoc(format: DataFormat, key: string, where: string, rec: unknown, media: MediaResolver): RawDoc {
  if (!isObj(rec)) throw new DatasetError(where, 'record is not a JSON object');
  switch (format) {
    case 'interleaved':
      return { key, chunks: interleaved(where, rec, media) };
    case 'pairs': {
      const text = str(where, rec, 'text', 'caption');
      let image: LazyImage | null = null;
      if (typeof rec.image === 'string') image = media.image(rec.image);
      else image = media.defaultImage?.() ?? null;
      if (!image) throw new DatasetError(where, 'pair record has no "image" (and the group has no single image member)');
      return { key, chunks: [{ kind: 'image', image }, { kind: 'text', text }] };
    }
    case 'video': {
      const text = str(where, rec, 'text', 'caption');
      let frames: LazyImage[];
      if (Array.isArray(rec.frames)) frames = rec.frames.map((f) => media.image(String(f)));
      else if (typeof rec.frames_dir === 'string') {
        if (!media.frameDir) throw new DatasetError(where, '"frames_dir" is not supported inside tar shards; list "frames"');
        frames = media.frameDir(rec.frames_dir);
      } else throw new DatasetError(where, 'video record needs "frames" (list) or "frames_dir"');
      if (frames.length === 0) throw new DatasetError(where, 'video has no frames');
      return { key, chunks: [{ kind: 'video', frames }, { kind: 'text', text }] };
    }
    case 'text':
      return { key, chunks: [{ kind: 'text', text: str(where, rec, 'text') }] };
    default:
      throw new DatasetError(where, `unknown format ${JSON.stringify(format)}`);
  }
}
