/**
 * Samples → a training batch. Token rows are right-padded by FlamingoProcessor.collate; labels follow
 * OpenFlamingo: labels = input ids with pad and `<image>` positions set to -100, and the loss at position t
 * predicts labels[t + 1] (`targets` is that shifted view, ready for crossEntropy over all positions).
 */
import { Tensor } from '../../engine/tensor.ts';
import type { FlamingoProcessor } from '../processor.ts';
import { DatasetError, type Sample } from './types.ts';

export const IGNORE_INDEX = -100;

export interface TrainBatch {
  inputIds: Tensor;
  attentionMask: Tensor;
  /** int32 (B, L): input ids with pad and media tokens → -100 (unshifted, HF convention). */
  labels: Tensor;
  /** int32 (B, L): targets[b, t] = labels[b, t + 1], -100 at the last position. */
  targets: Tensor;
  /** (B, T, F, 3, S, S) or null when no sample has media. */
  visionX: Tensor | null;
  /** Real (non-pad) tokens and media items in the batch, for throughput. */
  numTokens: number;
  numImages: number;
  keys: string[];
}

/**
 * Labels and shifted targets for right- or left-padded ids. `scored[b]` (right padding only: index t is row b's
 * token t) takes the tokens it marks 0 out of the loss (Sample.scored).
 */
export function makeLabels(ids: Int32Array, mask: ArrayLike<number>, B: number, L: number, mediaTokenId: number, scored?: readonly (Uint8Array | null | undefined)[]): { labels: Int32Array; targets: Int32Array } {
  const labels = new Int32Array(B * L);
  for (let i = 0; i < B * L; i++) labels[i] = mask[i] && ids[i] !== mediaTokenId ? ids[i]! : IGNORE_INDEX;
  scored?.forEach((s, b) => {
    if (!s) return;
    if (s.length > L) throw new DatasetError('collate', `row ${b} has ${s.length} scored flags for ${L} positions`);
    for (let t = 0; t < s.length; t++) if (!s[t]) labels[b * L + t] = IGNORE_INDEX;
  });
  const targets = new Int32Array(B * L).fill(IGNORE_INDEX);
  for (let b = 0; b < B; b++) targets.set(labels.subarray(b * L + 1, (b + 1) * L), b * L);
  return { labels, targets };
}

export function collateSamples(processor: FlamingoProcessor, samples: Sample[]): TrainBatch {
  if (samples.length === 0) throw new DatasetError('collate', 'empty batch');
  const frames = samples.flatMap((s) => s.media.map((m) => m.length));
  const F = frames.length ? frames[0]! : 1;
  if (frames.some((f) => f !== F)) throw new DatasetError('collate', `media items in one batch have different frame counts (${[...new Set(frames)].join(', ')})`);
  // The processor checks marker/image counts and pads; video frames are stacked here (it stacks one frame per item).
  const enc = processor.collate(samples.map((s) => s.tokens), samples.map((s) => s.media.map((m) => m[0]!)), 'right');
  let visionX = enc.visionX;
  if (visionX && F > 1) {
    const [B, T, , C, S] = visionX.shape as [number, number, number, number, number];
    const per = C * S * S;
    const data = new Float32Array(B * T * F * per);
    samples.forEach((s, b) => s.media.forEach((m, t) => m.forEach((px, f) => data.set(px, ((b * T + t) * F + f) * per))));
    visionX = new Tensor(data, [B, T, F, C, S, S]);
  }
  const [B, L] = enc.inputIds.shape as [number, number];
  const { labels, targets } = makeLabels(enc.inputIds.i32, enc.attentionMask.i32, B, L, processor.tokenizer.imageTokenId, samples.map((s) => s.scored));
  return {
    inputIds: enc.inputIds,
    attentionMask: enc.attentionMask,
    labels: new Tensor(labels, [B, L]),
    targets: new Tensor(targets, [B, L]),
    visionX,
    numTokens: enc.lengths.reduce((a, b) => a + b, 0),
    numImages: samples.reduce((a, s) => a + s.media.length, 0),
    keys: samples.map((s) => s.key),
  };
}
