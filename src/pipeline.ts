/**
 * The high-level entry, in the spirit of transformers.js pipelines: load a model directory (the bundled
 * model by default) and call it with an interleaved prompt — text pieces and images in order, the
 * few-shot examples first, the query last:
 *
 *   const flamingo = await pipeline();
 *   const answer = await flamingo.generate([{ image: 'a.png' }, 'Output: a dress.<|endofchunk|>', { image: 'b.png' }, 'Output:']);
 *   for await (const piece of flamingo.stream(prompt)) process.stdout.write(piece);
 *
 * Each image part becomes an <image> marker at its place. Greedy, sampled and beam decoding; streaming
 * yields text as tokens are produced (beam search knows its answer only at the end).
 */
import { setImmediate as tick } from 'node:timers/promises';
import { BUNDLED_MODEL_DIR, loadPretrained, type PretrainedLocation } from './pretrained/index.ts';
import type { WeightDType } from './engine/quant.ts';
import { decodeImage, loadImage, type RgbImage } from './data/image.ts';
import type { FlamingoProcessor } from './data/processor.ts';
import { TextStream } from './data/text-stream.ts';
import { BatchDecoder } from './model/batch-decode.ts';
import type { Flamingo } from './model/flamingo.ts';
import { generate as generateTokens } from './model/generate.ts';
import type { SamplingOptions } from './model/token-choice.ts';
import { scoreContinuations } from './model/score.ts';
import { intTensor, Tensor } from './engine/tensor.ts';
import { FlamingoError } from './errors.ts';

/** A wrong prompt part or option given to the pipeline. */
export class PipelineInputError extends FlamingoError {
  constructor(message: string) {
    super(message);
  }
}

/** An image: a file path (PNG/JPEG), encoded bytes, or decoded RGB pixels. */
export type ImageSource = string | Uint8Array | RgbImage;
/** Text (may contain <|endofchunk|> between examples) or an image. */
export type PromptPart = string | { image: ImageSource };

export interface PipelineGenerateOptions extends SamplingOptions {
  /** Default 20. */
  maxNewTokens?: number;
  /** > 1: beam search. */
  numBeams?: number;
  lengthPenalty?: number;
  /** > 0: sampling (with topK / topP); 0 or absent: greedy. */
  temperature?: number;
  /** Stop at <|endofchunk|> (default true). */
  stopAtEoc?: boolean;
  /** Stop streaming (and generating) when aborted. */
  signal?: AbortSignal;
}

function checkOptions(o: PipelineGenerateOptions): Required<Pick<PipelineGenerateOptions, 'maxNewTokens' | 'numBeams'>> {
  const maxNewTokens = o.maxNewTokens ?? 20;
  const numBeams = o.numBeams ?? 1;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new PipelineInputError(`maxNewTokens must be an integer ≥ 1, got ${maxNewTokens}`);
  if (!Number.isInteger(numBeams) || numBeams < 1 || numBeams > 64) throw new PipelineInputError(`numBeams must be an integer in 1..64, got ${numBeams}`);
  if (o.temperature !== undefined && !(o.temperature >= 0)) throw new PipelineInputError(`temperature must be ≥ 0, got ${o.temperature}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new PipelineInputError(`topP must be in (0, 1], got ${o.topP}`);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) throw new PipelineInputError(`topK must be an integer ≥ 0, got ${o.topK}`);
  if (numBeams > 1 && (o.temperature ?? 0) > 0) throw new PipelineInputError('beam search (numBeams > 1) does not sample: leave temperature at 0');
  return { maxNewTokens, numBeams };
}

export class FlamingoPipeline {
  constructor(readonly model: Flamingo, readonly processor: FlamingoProcessor) {}

  /** Prompt text with <image> markers and the images' pixels, from the interleaved parts. */
  encode(parts: readonly PromptPart[]): { ids: number[]; pixels: Float32Array[] } {
    if (!Array.isArray(parts) || parts.length === 0) throw new PipelineInputError('the prompt must be a non-empty array of text and { image } parts');
    let text = '';
    const pixels: Float32Array[] = [];
    parts.forEach((p, i) => {
      if (typeof p === 'string') { text += p; return; }
      if (typeof p !== 'object' || p === null || !('image' in p)) throw new PipelineInputError(`prompt part ${i} must be a string or { image }`);
      pixels.push(this.processor.preprocessImage(toRgb(p.image, i)));
      text += '<image>';
    });
    const ids = this.processor.encodeText(text);
    const markers = ids.filter((t) => t === this.processor.tokenizer.imageTokenId).length;
    if (markers !== pixels.length) throw new PipelineInputError(`the text parts contain ${markers - pixels.length} literal <image> marker(s); give images as { image } parts`);
    return { ids, pixels };
  }

  /** The answer as one string. */
  async generate(parts: readonly PromptPart[], options: PipelineGenerateOptions = {}): Promise<string> {
    let out = '';
    for await (const piece of this.stream(parts, options)) out += piece;
    return out;
  }

  /** The answer as it is generated, piece by piece (the event loop runs between tokens). */
  async *stream(parts: readonly PromptPart[], options: PipelineGenerateOptions = {}): AsyncGenerator<string> {
    const { maxNewTokens, numBeams } = checkOptions(options);
    const { ids, pixels } = this.encode(parts);
    const text = new TextStream(this.processor.tokenizer);
    if (numBeams > 1) {
      const out = generateTokens(this.model, this.prompt(ids, pixels), { maxNewTokens, strategy: 'beam', numBeams, lengthPenalty: options.lengthPenalty ?? 1, stopAtEoc: options.stopAtEoc ?? true });
      for (const t of out.generated[0]!) text.push(t);
      yield text.flush();
      return;
    }
    const temperature = options.temperature ?? 0;
    const dec = new BatchDecoder(this.model, [{
      ids, pixels, maxNewTokens, sample: temperature > 0, temperature, topK: options.topK, topP: options.topP, seed: options.seed ?? 0, stopAtEoc: options.stopAtEoc ?? true,
    }]);
    while (!dec.done) {
      if (options.signal?.aborted) return;
      for (const t of dec.step()) {
        const piece = text.push(t.token);
        if (piece) yield piece;
        if (t.finish) { const rest = text.flush(); if (rest) yield rest; }
      }
      await tick();
    }
  }

  /** Log-likelihood of each candidate continuation after the prompt (classification: the largest wins). */
  async score(parts: readonly PromptPart[], candidates: readonly string[]): Promise<number[]> {
    if (!Array.isArray(candidates) || candidates.length === 0 || candidates.some((c) => typeof c !== 'string' || c.length === 0)) {
      throw new PipelineInputError('candidates must be a non-empty array of non-empty strings');
    }
    const { ids, pixels } = this.encode(parts);
    return scoreContinuations(this.model, this.prompt(ids, pixels), candidates.map((c) => this.processor.encodeText(c)));
  }

  private prompt(ids: number[], pixels: Float32Array[]): { inputIds: Tensor; visionX: Tensor | null } {
    const S = this.model.config.vision.image_size;
    let visionX: Tensor | null = null;
    if (pixels.length > 0) {
      const per = 3 * S * S;
      const data = new Float32Array(pixels.length * per);
      pixels.forEach((p, i) => data.set(p, i * per));
      visionX = new Tensor(data, [1, pixels.length, 1, 3, S, S]);
    }
    return { inputIds: intTensor(ids, [1, ids.length]), visionX };
  }
}

function toRgb(src: ImageSource, i: number): RgbImage {
  if (typeof src === 'string') return loadImage(src);
  if (src instanceof Uint8Array) return decodeImage(src, `prompt image ${i}`);
  if (src && typeof src === 'object' && Number.isInteger(src.width) && Number.isInteger(src.height) && src.data instanceof Uint8Array) return src;
  throw new PipelineInputError(`prompt part ${i}: image must be a file path, encoded bytes (Uint8Array) or { width, height, data }`);
}

/**
 * Load a model: a model directory (config.json, weights.safetensors, tokenizer.json; the bundled model
 * by default) or a released OpenFlamingo, as `{ openClip, lm, checkpoint }` files or an exported directory.
 */
export async function pipeline(location: PretrainedLocation = BUNDLED_MODEL_DIR, opts: { dtype?: WeightDType } = {}): Promise<FlamingoPipeline> {
  const { model, processor } = loadPretrained(location, { dtype: opts.dtype });
  return new FlamingoPipeline(model, processor);
}
