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
import { Tensor } from '../engine/tensor.ts';
import { noGrad } from '../engine/index.ts';
import { Rng } from '../engine/rng.ts';
import { type Flamingo, type FlamingoState, FlamingoInputError } from './flamingo.ts';
import { argmax, sampleRow, selectStateRows, prefill, decodeStep, type GenerationConfig } from './generate.ts';
import { GenerationOptionError, validateGenerationConfig } from './generation-options.ts';

export interface DecodeRow {
  /** Prompt token ids (with <image> markers). */
  ids: number[];
  /** Preprocessed pixels (3·S·S each), one per <image> marker, in order. */
  pixels: Float32Array[];
  maxNewTokens: number;
  /** Greedy when temperature is 0 or absent and not `sample`. */
  sample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
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

  constructor(private readonly model: Flamingo, rows: DecodeRow[]) {
    if (rows.length === 0) throw new FlamingoInputError('BatchDecoder needs at least one row');
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
