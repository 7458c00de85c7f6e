/**
 * Messages between the server's event loop and its inference worker (worker_threads). Jobs carry
 * token ids and encoded image bytes; the worker decodes images, batches compatible generation jobs
 * and streams tokens back as they are produced.
 */

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

export type Job = GenerateJob | BeamJob | ScoreJob;

export type ToWorker = Job | { kind: 'cancel'; id: number };

export interface TokenItem { choice: number; token: number; finish: 'stop' | 'length' | null }

export interface WorkerInfo {
  kernels: string;
  parameters: number;
}

export type FromWorker =
  | { type: 'ready'; info: WorkerInfo }
  | { type: 'started'; id: number; batchRows: number }
  | { type: 'tokens'; id: number; items: TokenItem[] }
  | { type: 'result'; id: number; tokens?: number[]; logprobs?: number[] }
  | { type: 'done'; id: number; prefillMs: number }
  | { type: 'error'; id: number; name: string; message: string; status: number }
  | { type: 'fatal'; message: string };

export interface WorkerOptions {
  modelDir: string;
  /** Most rows (choices) decoded together in one batch. */
  maxBatchRows: number;
  /** Wait up to this long for more requests (until none arrived for 3 ms) before starting a batch. */
  batchWindowMs: number;
}
