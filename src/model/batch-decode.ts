/**
 * Step-by-step decoding of several independent prompts in one batch (serving and streaming): the
 * prompts are left padded into one batch and prefilled together, then every call to `step()` runs one
 * single-token step for the rows still live and returns each row's new token. Rows finish on their own
 * (stop token, their own max_new_tokens, or `cancel`) and are then dropped from the batch, so the
 * remaining rows stop paying for them. Each row samples from its own seeded Rng, so a row's output
 * does not depend on which other rows share its batch; its keys and values stay in its own cache row
 * (the attention mask keeps padding and other rows out). Prompts with images and text-only prompts
 * go in separate batches (see the constructor).
 */
import { Tensor, zeros } from '../engine/tensor.ts';
import { noGrad, concat } from '../engine/index.ts';
import { Rng } from '../engine/rng.ts';
import { type Flamingo, type FlamingoState, FlamingoInputError } from './flamingo.ts';
import { CachedKV } from './lm/index.ts';
import { argmax, sampleRow, type SamplingOptions } from './token-choice.ts';
import { selectStateRows, prefill, decodeStep } from './decode-state.ts';
import type { GenerationConfig } from './generate.ts';
import { GenerationOptionError, validateGenerationConfig } from './generation-options.ts';

export interface DecodeRow extends SamplingOptions {
  /** Prompt token ids (with <image> markers). */
  ids: number[];
  /** Preprocessed pixels (3·S·S each), one per <image> marker, in order. */
  pixels: Float32Array[];
  maxNewTokens: number;
  /** Greedy when temperature is 0 or absent and not `sample`. */
  sample?: boolean;
  /** Stop at <|endofchunk|> (default true). */
  stopAtEoc?: boolean;
  stopTokens?: number[];
}

export interface StepToken {
  /** Index of the row in the array given to the constructor. */
  row: number;
  token: number;
  /** The row has finished with this token ('stop': a stop token; 'length': max_new_tokens reached). */
  finish: 'stop' | 'length' | null;
}

interface Live {
  row: number;
  spec: DecodeRow;
  rng: Rng;
  stops: Set<number>;
  produced: number;
}

export class BatchDecoder {
  private state: FlamingoState | null = null;
  private logits: Float32Array | null = null;
  private live: Live[];
  private readonly cancelled = new Set<number>();
  /** Tokens of the last step (one per live row) and the rows that finished with them. */
  private pending: number[] = [];
  private finished = new Set<number>();
  readonly promptLength: number;
  /** Rows given so far (constructor and join): the next joined row gets this index. */
  private rowCount: number;
  private readonly withImages: boolean;

  constructor(private readonly model: Flamingo, rows: DecodeRow[]) {
    if (rows.length === 0) throw new FlamingoInputError('BatchDecoder needs at least one row');
    this.rowCount = rows.length;
    this.withImages = rows.some((r) => r.pixels.length > 0);
    const cfg = model.config;
    const maxLen = cfg.lm.max_position_embeddings;
    const mid = cfg.flamingo.media_token_id;
    this.promptLength = Math.max(...rows.map((r) => r.ids.length));
    rows.forEach((r, i) => {
      if (r.ids.length === 0) throw new FlamingoInputError(`row ${i}: the prompt is empty`);
      // The same option checks as generate(): the server's rows get the same messages as the CLI and the library.
      try {
        validateGenerationConfig({
          maxNewTokens: r.maxNewTokens, strategy: r.sample ? 'sample' : 'greedy', temperature: r.temperature, topK: r.topK,
          topP: r.topP, seed: r.seed, stopAtEoc: r.stopAtEoc, stopTokens: r.stopTokens,
        }, { vocabSize: cfg.lm.vocab_size, maxPositions: maxLen });
      } catch (e) {
        if (e instanceof GenerationOptionError) throw new GenerationOptionError(`row ${i}: ${e.message}`);
        throw e;
      }
      const bad = r.ids.findIndex((t) => !(Number.isInteger(t) && t >= 0 && t < cfg.lm.vocab_size));
      if (bad >= 0) throw new FlamingoInputError(`row ${i}: prompt token id ${r.ids[bad]} at position ${bad} is outside the model's vocabulary [0, ${cfg.lm.vocab_size})`);
      const markers = r.ids.filter((t) => t === mid).length;
      if (markers !== r.pixels.length) throw new FlamingoInputError(`row ${i}: ${markers} <image> marker(s) but ${r.pixels.length} image(s)`);
      // Left padding puts every row at the batch's length, so each row must fit from there.
      if (maxLen !== undefined && this.promptLength + r.maxNewTokens > maxLen) {
        throw new FlamingoInputError(`row ${i}: prompt of ${this.promptLength} tokens + ${r.maxNewTokens} new tokens exceeds the model's ${maxLen} positions`);
      }
    });
    // A prompt without images runs the LM alone (the gated blocks are skipped); in a batch with media
    // its tokens would pass through the gated FFWs, so it would not give its own single-prompt output.
    const withImages = rows.filter((r) => r.pixels.length > 0).length;
    if (withImages > 0 && withImages < rows.length) {
      throw new FlamingoInputError('a batch mixes prompts with and without images; decode them in separate batches');
    }
    this.live = rows.map((spec, row) => ({
      row, spec, rng: new Rng(spec.seed ?? 0), produced: 0,
      stops: new Set([...(spec.stopTokens ?? []), ...((spec.stopAtEoc ?? true) ? [cfg.flamingo.eoc_token_id] : [])]),
    }));
  }

  /** Rows still generating (indices into the constructor's array). */
  get liveRows(): number[] {
    return this.live.map((l) => l.row);
  }

  /** Every row has finished or was cancelled: `step()` would do nothing. */
  get done(): boolean {
    return this.live.every((l) => this.finished.has(l.row) || this.cancelled.has(l.row));
  }

  /** Drop a row: it produces nothing more and leaves the batch at the next step. */
  cancel(row: number): void {
    this.cancelled.add(row);
  }

  /**
   * Add rows to the running batch between steps (continuous batching): they are prefilled as a batch of
   * their own, then their cache rows join this batch's, both left padded to the longer length (padding is
   * masked, and positions count only real tokens, so no row's output changes). Returns the new rows'
   * first tokens (their indices continue after the rows given before), or null when they cannot join:
   * the batch has not started or is done, they differ in kind (images or text only), or the merged
   * length would not leave every row its remaining max_new_tokens.
   */
  join(rows: DecodeRow[]): StepToken[] | null {
    if (this.state === null || this.done || rows.length === 0) return null;
    const other = new BatchDecoder(this.model, rows); // the constructor's checks
    if (other.withImages !== this.withImages) return null;
    const maxLen = this.model.config.lm.max_position_embeddings;
    const L = Math.max(this.state.length, other.promptLength);
    const need = Math.max(...this.live.map((l) => l.spec.maxNewTokens - l.produced), ...rows.map((r) => r.maxNewTokens));
    if (maxLen !== undefined && L + need > maxLen) return null;
    const first = other.step();
    this.state = noGrad(() => mergeStates(this.state!, other.state!));
    const offset = this.rowCount;
    this.rowCount += rows.length;
    this.live.push(...other.live.map((l) => ({ ...l, row: l.row + offset })));
    this.pending.push(...other.pending);
    for (const r of other.finished) this.finished.add(r + offset);
    return first.map((t) => ({ ...t, row: t.row + offset }));
  }

  /** One decoding step (the first call also runs the prompt). Returns the new token of every live row. */
  step(): StepToken[] {
    return noGrad(() => {
      if (this.state === null) {
        this.live = this.live.filter((l) => !this.cancelled.has(l.row));
        if (this.live.length === 0) return [];
        this.prefillRows();
      } else {
        this.advance();
        if (this.live.length === 0) return [];
      }
      const V = this.model.config.lm.vocab_size;
      const out: StepToken[] = [];
      const logits = this.logits!;
      this.live.forEach((l, b) => {
        const s = l.spec;
        const sample = s.sample ?? ((s.temperature ?? 0) > 0);
        const cfg: GenerationConfig = { maxNewTokens: s.maxNewTokens, temperature: s.temperature, topK: s.topK, topP: s.topP };
        const token = sample ? sampleRow(logits, b * V, V, cfg, l.rng) : argmax(logits, b * V, V);
        l.produced++;
        const finish = l.stops.has(token) ? 'stop' : l.produced >= s.maxNewTokens ? 'length' : null;
        out.push({ row: l.row, token, finish });
      });
      this.pending = out.map((t) => t.token);
      this.finished = new Set(out.filter((t) => t.finish !== null).map((t) => t.row));
      return out;
    });
  }

  private prefillRows(): void {
    const cfg = this.model.config;
    const pad = cfg.flamingo.pad_token_id;
    const B = this.live.length;
    const L = this.promptLength;
    const ids = new Int32Array(B * L).fill(pad);
    const mask = new Int32Array(B * L);
    this.live.forEach((l, b) => {
      const off = L - l.spec.ids.length;
      ids.set(l.spec.ids, b * L + off);
      mask.fill(1, b * L + off, (b + 1) * L);
    });
    const T = Math.max(0, ...this.live.map((l) => l.spec.pixels.length));
    let visionX: Tensor | null = null;
    if (T > 0) {
      const S = cfg.vision.image_size;
      const per = 3 * S * S;
      const data = new Float32Array(B * T * per);
      this.live.forEach((l, b) => l.spec.pixels.forEach((px, t) => {
        if (px.length !== per) throw new FlamingoInputError(`row ${l.row}: image ${t} has ${px.length} values, expected 3×${S}×${S}`);
        data.set(px, (b * T + t) * per);
      }));
      visionX = new Tensor(data, [B, T, 1, 3, S, S]);
    }
    const first = prefill(this.model, { inputIds: new Tensor(ids, [B, L]), attentionMask: new Tensor(mask, [B, L]), visionX });
    this.state = first.state;
    this.logits = first.lastLogits;
  }

  /** Feed the tokens of the last step to the rows that go on (dropping the finished ones first). */
  private advance(): void {
    const keep: number[] = [];
    const tokens: number[] = [];
    this.live.forEach((l, b) => {
      if (!this.finished.has(l.row) && !this.cancelled.has(l.row)) { keep.push(b); tokens.push(this.pending[b]!); }
    });
    this.compact(keep);
    if (this.live.length === 0) return;
    this.logits = decodeStep(this.model, this.state!, tokens);
  }

  private compact(keep: number[]): void {
    if (keep.length === this.live.length) return;
    this.live = keep.map((b) => this.live[b]!);
    this.pending = keep.map((b) => this.pending[b]!);
    if (keep.length > 0) this.state = selectStateRows(this.state!, keep);
  }
}

/** (B, H, L, D) → (B, H, L + pad, D) with zeros on the left of the length axis. */
function padLength(t: Tensor, pad: number): Tensor {
  if (pad === 0) return t;
  const [B, H, , D] = t.shape as [number, number, number, number];
  return concat([zeros([B, H, pad, D]), t], 2);
}

/** Rows of b after rows of a, left padded to the longer length; media padded with filler slots. */
function mergeStates(a: FlamingoState, b: FlamingoState): FlamingoState {
  const L = Math.max(a.length, b.length);
  const cat = (x: CachedKV | null, y: CachedKV | null, i: number): CachedKV => {
    if (!x || !y) throw new FlamingoInputError(`cannot merge batches: layer ${i} has no cached keys in one of them`);
    return CachedKV.fromTensor(concat([padLength(x.toTensor(), L - a.length), padLength(y.toTensor(), L - b.length)], 0));
  };
  let media: Tensor | null = null;
  if (a.media && b.media) {
    const T = Math.max(a.media.shape[1]!, b.media.shape[1]!);
    const fill = (m: Tensor): Tensor => {
      const [B, t, n, D] = m.shape as [number, number, number, number];
      return t === T ? m : concat([m, zeros([B, T - t, n, D])], 1);
    };
    media = concat([fill(a.media), fill(b.media)], 0);
  } else if (a.media || b.media) {
    throw new FlamingoInputError('cannot merge a batch with images and one without');
  }
  const mask = new Uint8Array((a.batch + b.batch) * L);
  for (const [s, base] of [[a, 0], [b, a.batch]] as const) {
    for (let r = 0; r < s.batch; r++) mask.set(s.mask.subarray(r * s.length, (r + 1) * s.length), (base + r) * L + L - s.length);
  }
  const mediaCount = new Int32Array(a.batch + b.batch);
  mediaCount.set(a.mediaCount, 0);
  mediaCount.set(b.mediaCount, a.batch);
  return {
    media,
    cache: { keys: a.cache.keys.map((k, i) => cat(k, b.cache.keys[i] ?? null, i)), values: a.cache.values.map((v, i) => cat(v, b.cache.values[i] ?? null, i)) },
    mask, length: L, batch: a.batch + b.batch, mediaCount, mediaKV: new Map(),
  };
}
