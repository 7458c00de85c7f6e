/**
 * What one request may ask of the server. Everything a client controls is bounded here, so no request
 * can make the server allocate or compute without bound; exceeding a limit is a 4xx naming it.
 */
import { UsageError } from '../errors.ts';

export interface ServeLimits {
  /** Whole request body (bytes); larger bodies get 413 before they are parsed. */
  maxRequestBytes: number;
  /** One encoded image (bytes, after base64 decoding). */
  maxImageBytes: number;
  /** One image's width × height, read from its header before decoding. */
  maxImagePixels: number;
  maxImagesPerRequest: number;
  /** Prompt tokens (the model's own position limit applies as well). */
  maxPromptTokens: number;
  /** Largest max_tokens / max_new_tokens a request may ask for. */
  maxNewTokens: number;
  /** Largest n (choices) and num_beams. */
  maxChoices: number;
  maxBeams: number;
  /** Candidates of one /v1/score request. */
  maxCandidates: number;
  /** Requests queued or running at once; more get 429. */
  maxQueue: number;
  /** A request that has not finished after this many ms is stopped (503). */
  requestTimeoutMs: number;
}

export const DEFAULT_LIMITS: ServeLimits = {
  maxRequestBytes: 8 * 1024 * 1024,
  maxImageBytes: 4 * 1024 * 1024,
  maxImagePixels: 4096 * 4096,
  maxImagesPerRequest: 16,
  maxPromptTokens: 448,
  maxNewTokens: 64,
  maxChoices: 8,
  maxBeams: 8,
  maxCandidates: 32,
  maxQueue: 64,
  requestTimeoutMs: 60_000,
};

/** Limits with overrides; unknown keys and non-positive or non-integer values are errors naming the key. */
export function resolveLimits(overrides: Record<string, unknown> = {}): ServeLimits {
  const out: ServeLimits = { ...DEFAULT_LIMITS };
  for (const [k, v] of Object.entries(overrides)) {
    if (!(k in DEFAULT_LIMITS)) throw new UsageError(`limits.${k}: unknown key (known: ${Object.keys(DEFAULT_LIMITS).join(', ')})`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new UsageError(`limits.${k}: must be an integer ≥ 1, got ${JSON.stringify(v)}`);
    (out as unknown as Record<string, number>)[k] = v;
  }
  return out;
}
