/**
 * Messages between the server's event loop and its inference worker (worker_threads). Jobs carry
 * token ids and encoded image bytes; the worker decodes images, batches compatible generation jobs
 * and streams tokens back as they are produced.
 */
import type { WeightDType } from '../engine/quant.ts';

export interface SamplingOptions {
  maxNewTokens: number;
  /** Sample (with temperature / top-k / top-p) instead of greedy decoding. */
  sample: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed: number;
  stopAtEoc: boolean;
  stopTokens: number[];
}

/** Greedy or sampled generation of `n` choices; batched with other such jobs. */
export interface GenerateJob {
  kind: 'generate';
  id: number;
  ids: number[];
  images: Uint8Array[];
  n: number;
  options: SamplingOptions;
}

/** Beam search (run alone: its beams already form a batch). */
export interface BeamJob {
  kind: 'beam';
  id: number;
  ids: number[];
  images: Uint8Array[];
  options: { maxNewTokens: number; numBeams: number; lengthPenalty: number; stopAtEoc: boolean; stopTokens: number[] };
}

/** Log-likelihood of each candidate continuation after the prompt. */
export interface ScoreJob {
  kind: 'score';
  id: number;
  ids: number[];
  images: Uint8Array[];
  candidates: number[][];
}

/** Media as the worker receives them: encoded image bytes, or the RGB24 frames of a video decoded by ffmpeg. */
export type MediaPayload =
  | { kind: 'image'; bytes: Uint8Array }
  | { kind: 'video'; width: number; height: number; frames: Uint8Array[] };

/**
 * One greedy or sampled answer whose media may be videos (frame counts differ per item), run alone.
 * With `record` (the playground) it also reports, for every token, the gated cross-attention's weight
 * on each media item and its strength per layer (inspect-* messages); without, plain `tokens` messages.
 */
export interface MediaJob {
  kind: 'media';
  id: number;
  ids: number[];
  media: MediaPayload[];
  options: SamplingOptions;
  record: boolean;
}

export type Job = GenerateJob | BeamJob | ScoreJob | MediaJob;

/** Per layer (in `layers` order): attention mass on each media item, and ‖tanh(α)·xattn‖ / ‖x‖. */
export interface TokenAttentionMsg { weights: number[][]; strength: number[] }

/** What a recording media job reports before its tokens: the gated layers, their gate values, frames per media item. */
export interface InspectHeader {
  layers: number[];
  attnGates: number[];
  ffGates: number[];
  frames: number[];
}

export type ToWorker = Job | { kind: 'cancel'; id: number };

export interface TokenItem { choice: number; token: number; finish: 'stop' | 'length' | null }

export interface WorkerInfo {
  kernels: string;
  parameters: number;
  /** How the linear weights are stored (fp32, bf16, int8). */
  weights: string;
}

export type FromWorker =
  | { type: 'ready'; info: WorkerInfo }
  | { type: 'started'; id: number; batchRows: number }
  | { type: 'tokens'; id: number; items: TokenItem[] }
  | { type: 'result'; id: number; tokens?: number[]; logprobs?: number[] }
  | { type: 'inspect-header'; id: number; header: InspectHeader }
  | { type: 'inspect-token'; id: number; token: number; attention: TokenAttentionMsg }
  | { type: 'inspect-prompt'; id: number; prompt: TokenAttentionMsg[] }
  | { type: 'done'; id: number; prefillMs: number }
  | { type: 'error'; id: number; name: string; message: string; status: number }
  | { type: 'fatal'; message: string };

export interface WorkerOptions {
  modelDir: string;
  /** Most rows (choices) decoded together in one batch. */
  maxBatchRows: number;
  /** Wait up to this long for more requests (until none arrived for 8 ms) before starting a batch. */
  batchWindowMs: number;
  /** Storage of the linear weights (default: as saved). */
  dtype?: WeightDType;
  /** What an image may take when decoded: the limits the server checked the headers against. */
  imageLimits?: { maxBytes: number; maxPixels: number };
}
