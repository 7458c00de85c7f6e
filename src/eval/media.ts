/**
 * Media encoding with a per-run cache: each distinct image (or video) is decoded, preprocessed and
 * passed through the frozen vision encoder once, however many prompts show it. When the resampler
 * has no media-position embedding (max_num_media null) its output depends only on the image, so the
 * resampled tokens (n, D) are cached; otherwise the ViT patch tokens are cached and the resampler
 * runs per batch with the real positions.
 */
import { Tensor, noGrad, reshape } from '../engine/index.ts';
import { preprocessImage } from '../data/image-tensor.ts';
import { ImageDecodeError } from '../data/image.ts';
import type { Flamingo } from '../model/flamingo.ts';
import type { MediaRef } from './datasets/types.ts';
import { FlamingoError } from '../errors.ts';

export class MediaError extends FlamingoError {
  constructor(readonly file: string, detail: string) {
    super(`${file}: ${detail}`);
  }
}

interface Entry {
  /** Frames F of this media. */
  frames: number;
  /** Resampled (n·D) when cacheResampled, else ViT tokens (F·P·W). */
  data: Float32Array;
}

export interface MediaStats {
  encoded: number;
  hits: number;
}

export class MediaEncoder {
  private readonly cache = new Map<string, Entry>();
  private readonly cacheResampled: boolean;
  readonly stats: MediaStats = { encoded: 0, hits: 0 };

  /** maxEntries bounds memory: the least recently used entries are evicted first. */
  constructor(readonly model: Flamingo, readonly maxEntries = 4096) {
    this.cacheResampled = model.config.resampler.max_num_media === null;
  }

  /** Preprocessed frames (F · 3·S·S) of one media item; decode errors name the file. */
  pixels(ref: MediaRef): Float32Array[] {
    const S = this.model.config.vision.image_size;
    let images;
    try {
      images = ref.load();
    } catch (e) {
      if (e instanceof ImageDecodeError) throw new MediaError(e.file, e.message);
      throw new MediaError(ref.files[0] ?? ref.key, (e as Error).message);
    }
    if (images.length === 0) throw new MediaError(ref.files[0] ?? ref.key, 'media has no frames');
    // The model's own preprocessing (config `preprocess`; absent = the legacy transform it was trained with).
    return images.map((im) => preprocessImage(im, S, this.model.config.preprocess));
  }

  /** Encode the refs not yet cached. */
  private fill(refs: readonly MediaRef[]): void {
    const todo: MediaRef[] = [];
    const seen = new Set<string>();
    for (const r of refs) {
      const hit = this.cache.get(r.key);
      if (hit) {
        // Re-insert: Map order is then least-recently-used first, which is what eviction drops.
        this.cache.delete(r.key);
        this.cache.set(r.key, hit);
        this.stats.hits++;
        continue;
      }
      if (!seen.has(r.key)) {
        seen.add(r.key);
        todo.push(r);
      }
    }
    if (todo.length === 0) return;
    const S = this.model.config.vision.image_size;
    const per = 3 * S * S;
    const frames = todo.map((r) => this.pixels(r));
    const maxF = this.model.config.resampler.max_num_frames;
    frames.forEach((f, i) => {
      if (maxF !== null && f.length > maxF) {
        throw new MediaError(todo[i]!.files[0] ?? todo[i]!.key, `${f.length} frames, but the model takes at most ${maxF} per video (resampler.max_num_frames); use fewer frames (--frames)`);
      }
    });
    // One vision-encoder call per media item: the numbers of an item then never depend on which other
    // items happened to be uncached in the same batch (so shards of a run equal the single run bit for bit).
    noGrad(() => {
      todo.forEach((r, i) => {
        const F = frames[i]!.length;
        const px = new Float32Array(F * per);
        frames[i]!.forEach((p, k) => px.set(p, k * per));
        const tokens = this.model.encodeImages(new Tensor(px, [F, 3, S, S]));
        const [, P, W] = tokens.shape as [number, number, number];
        let data = tokens.f32.slice();
        if (this.cacheResampled) data = this.model.perceiver.forward(new Tensor(data, [1, 1, F, P, W])).f32.slice();
        this.put(r.key, { frames: F, data });
        this.stats.encoded++;
      });
    });
  }

  private put(key: string, e: Entry): void {
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, e);
  }

  /**
   * Visual tokens (B, T, n, D) for rows of media (T = longest row; shorter rows are zero-filled,
   * those slots are never attended because no <image> token points at them).
   */
  encode(rows: readonly (readonly MediaRef[])[]): Tensor {
    this.fill(rows.flat());
    const { num_latents: n, dim: D } = this.model.config.resampler;
    const B = rows.length;
    const T = Math.max(1, ...rows.map((r) => r.length));
    if (this.cacheResampled) {
      const out = new Float32Array(B * T * n * D);
      rows.forEach((row, b) => row.forEach((r, t) => out.set(this.cache.get(r.key)!.data, (b * T + t) * n * D)));
      return new Tensor(out, [B, T, n, D]);
    }
    // Positional resampler: stack ViT tokens (all rows need the same frame count) and resample per batch.
    const entries = rows.map((row) => row.map((r) => this.cache.get(r.key)!));
    const F = entries[0]![0]!.frames;
    if (entries.some((row) => row.some((e) => e.frames !== F))) throw new MediaError('batch', 'media of one batch must have the same frame count');
    const PW = entries[0]![0]!.data.length / F;
    const feats = new Float32Array(B * T * F * PW);
    entries.forEach((row, b) => row.forEach((e, t) => feats.set(e.data, (b * T + t) * F * PW)));
    const W = this.model.config.vision.width;
    return noGrad(() => reshape(this.model.perceiver.forward(new Tensor(feats, [B, T, F, PW / W, W])), [B, T, n, D]));
  }

  /** CLIP image embedding (pooled, L2-normalised) of each ref; videos average their frames' embeddings. */
  embed(refs: readonly MediaRef[], batchSize = 16): Float32Array[] {
    const S = this.model.config.vision.image_size;
    const per = 3 * S * S;
    const out: Float32Array[] = [];
    for (let i = 0; i < refs.length; i += batchSize) {
      const chunk = refs.slice(i, i + batchSize);
      const frames = chunk.map((r) => this.pixels(r));
      const total = frames.reduce((s, f) => s + f.length, 0);
      const px = new Float32Array(total * per);
      let o = 0;
      for (const f of frames) for (const p of f) { px.set(p, o * per); o++; }
      const pooled = noGrad(() => this.model.vision_encoder.forward(new Tensor(px, [total, 3, S, S])).pooled);
      const Dp = pooled.shape[1]!;
      let off = 0;
      for (const f of frames) {
        const v = new Float32Array(Dp);
        for (let k = 0; k < f.length; k++) for (let j = 0; j < Dp; j++) v[j]! += pooled.f32[(off + k) * Dp + j]!;
        off += f.length;
        out.push(normalize(v));
      }
    }
    return out;
  }
}

export function normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const n = Math.sqrt(s);
  if (n > 0) for (let j = 0; j < v.length; j++) v[j] = v[j]! / n;
  return v;
}
