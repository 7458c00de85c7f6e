/**
 * Validation of generate()'s options (GenerationConfig), done inside the library so the CLI, the server and
 * library callers all get the same one-line error naming the option. Counts must be integers, sampling knobs
 * within their ranges, token ids inside the model's vocabulary, and the beam count and new-token count bounded
 * (each beam holds its own KV cache, so an unbounded count is unbounded memory).
 */
import { UsageError } from '../errors.ts';
import type { GenerationConfig } from './generate.ts';

/** A bad option value is bad usage (exit code 2 on the command line). */
export class GenerationOptionError extends UsageError {}

/** Most beams accepted: beam search keeps numBeams KV caches and numBeams x 2 candidates per step. */
export const MAX_BEAMS = 64;
/** Longest generation when the model itself does not bound its positions. */
export const MAX_NEW_TOKENS_UNBOUNDED = 65536;

const KNOWN: ReadonlySet<string> = new Set([
  'maxNewTokens', 'strategy', 'numBeams', 'lengthPenalty', 'temperature', 'topK', 'topP', 'seed', 'stopAtEoc',
  'stopTokens', 'returnStepLogits', 'recordAttention', 'onToken',
]);

export interface VocabularyLimits {
  /** Token ids must be in [0, vocabSize). */
  vocabSize: number;
  /** Positions the model accepts (prompt + generated), if bounded; without a bound maxNewTokens ≤ MAX_NEW_TOKENS_UNBOUNDED. */
  maxPositions?: number;
}

const show = (v: unknown): string => (typeof v === 'string' ? `'${v}'` : typeof v === 'number' || typeof v === 'boolean' || v === null ? String(v) : typeof v);

/**
 * Throw a GenerationOptionError naming the first bad option. `limits` adds the model-dependent checks (token ids
 * in the vocabulary, maxNewTokens within the model's positions).
 */
export function validateGenerationConfig(cfg: GenerationConfig, limits?: VocabularyLimits): void {
  if (cfg === null || typeof cfg !== 'object') throw new GenerationOptionError(`generation options must be an object, got ${show(cfg)}`);
  const fail = (name: string, want: string): never => {
    throw new GenerationOptionError(`generation option ${name} must be ${want}, got ${show((cfg as unknown as Record<string, unknown>)[name])}`);
  };
  for (const k of Object.keys(cfg)) {
    if (!KNOWN.has(k)) throw new GenerationOptionError(`unknown generation option '${k}' (known: ${[...KNOWN].join(', ')})`);
  }
  const int = (name: keyof GenerationConfig, min: number, max: number, optional = true): void => {
    const v = cfg[name];
    if (v === undefined && optional) return;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(name, `an integer in [${min}, ${max}]`);
  };
  const bool = (name: keyof GenerationConfig): void => {
    if (cfg[name] !== undefined && typeof cfg[name] !== 'boolean') fail(name, 'true or false');
  };

  // With bounded positions the caller checks prompt + maxNewTokens against them (a better message, with the prompt).
  int('maxNewTokens', 1, limits?.maxPositions !== undefined ? Number.MAX_SAFE_INTEGER : MAX_NEW_TOKENS_UNBOUNDED, false);
  if (cfg.strategy !== undefined && !['greedy', 'beam', 'sample'].includes(cfg.strategy)) fail('strategy', "'greedy', 'beam' or 'sample'");
  int('numBeams', 1, MAX_BEAMS);
  if (cfg.lengthPenalty !== undefined && !(typeof cfg.lengthPenalty === 'number' && Number.isFinite(cfg.lengthPenalty))) fail('lengthPenalty', 'a finite number');
  // 0 means greedy (the most likely token); negative or non-finite temperatures have no meaning.
  if (cfg.temperature !== undefined && !(typeof cfg.temperature === 'number' && Number.isFinite(cfg.temperature) && cfg.temperature >= 0)) {
    fail('temperature', 'a finite number ≥ 0');
  }
  int('topK', 0, Number.MAX_SAFE_INTEGER); // 0 = no top-k filtering
  if (cfg.topP !== undefined && !(typeof cfg.topP === 'number' && cfg.topP > 0 && cfg.topP <= 1)) fail('topP', 'a number in (0, 1]');
  int('seed', 0, Number.MAX_SAFE_INTEGER);
  bool('stopAtEoc');
  bool('returnStepLogits');
  bool('recordAttention');
  if (cfg.onToken !== undefined && typeof cfg.onToken !== 'function') fail('onToken', 'a function');
  if (cfg.stopTokens !== undefined) {
    if (!Array.isArray(cfg.stopTokens)) fail('stopTokens', 'an array of token ids');
    const hi = limits ? limits.vocabSize - 1 : Number.MAX_SAFE_INTEGER;
    cfg.stopTokens.forEach((t, i) => {
      if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t > hi) {
        throw new GenerationOptionError(`generation option stopTokens[${i}] must be a token id in [0, ${hi}]${limits ? ' (the model\'s vocabulary)' : ''}, got ${show(t)}`);
      }
    });
  }
}
