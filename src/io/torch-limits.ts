/**
 * What reading a torch checkpoint may cost, and how it fails: TorchCheckpointError names the file, and
 * each exceeded budget (bytes materialised, pickle values, nesting, pickle size, compression ratio) says which.
 */
import { FlamingoError } from '../errors.ts';

export class TorchCheckpointError extends FlamingoError {
  readonly file: string;

  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super(`torch checkpoint ${file}: ${message}`, options);
    this.file = file;
  }
}

/**
 * Limits on what a checkpoint may make us build. The defaults are far above what torch.save writes for real models
 * (multi-GB OpenFlamingo releases: stored, uncompressed storages viewed in place, a few thousand pickle values,
 * nesting depth < 10) and far below what would exhaust memory.
 */
export interface TorchBudgets {
  /**
   * Bytes allocated beyond the file buffer, summed over the whole checkpoint: inflated (deflate) zip entries,
   * misaligned storages copied, and strided or stride-0 tensors materialised as contiguous copies.
   * Default 128 MiB + 2 x the file size.
   */
  maxMaterializedBytes?: number;
  /** Values the pickle may create (containers, strings, numbers, globals, call results, MARKs). Default 500,000
   * (a state dict needs ~20 per tensor; each value costs up to ~300 bytes of JS heap). */
  maxObjects?: number;
  /** Open MARKs at once, and nesting depth of the unpickled object. Default 1000. */
  maxDepth?: number;
  /** Inflated / compressed size of a deflated zip entry (entries under 16 MiB inflated are exempt). Default 64. */
  maxCompressionRatio?: number;
  /**
   * Size of data.pkl. References (memo puts, DUP, APPEND of an existing value) create no new value but still cost
   * memory per opcode, so the pickle itself is bounded. Default 16 MiB (a 1000-tensor state dict pickles to ~200 KB).
   */
  maxPickleBytes?: number;
}

export const DEFAULT_TORCH_BUDGETS = {
  baseMaterializedBytes: 128 * 1024 * 1024,
  maxObjects: 500_000,
  maxDepth: 1000,
  maxCompressionRatio: 64,
  maxPickleBytes: 16 * 1024 * 1024,
} as const;

/** Deflated entries that inflate to less than this are never refused for their ratio (zeros compress ~1000:1). */
export const RATIO_EXEMPT_BYTES = 16 * 1024 * 1024;

export interface Budget {
  file: string;
  maxBytes: number;
  bytes: number;
  maxObjects: number;
  maxDepth: number;
  maxRatio: number;
  maxPickle: number;
}

export function makeBudget(file: string, fileBytes: number, b: TorchBudgets = {}): Budget {
  const check = (name: string, v: number | undefined, min: number): void => {
    if (v !== undefined && !(typeof v === 'number' && v >= min && !Number.isNaN(v))) {
      throw new TypeError(`readTorchObject: budgets.${name} must be a number >= ${min}, got ${String(v)}`);
    }
  };
  check('maxMaterializedBytes', b.maxMaterializedBytes, 0);
  check('maxObjects', b.maxObjects, 1);
  check('maxDepth', b.maxDepth, 1);
  check('maxCompressionRatio', b.maxCompressionRatio, 1);
  check('maxPickleBytes', b.maxPickleBytes, 1);
  return {
    file,
    maxBytes: b.maxMaterializedBytes ?? DEFAULT_TORCH_BUDGETS.baseMaterializedBytes + 2 * fileBytes,
    bytes: 0,
    maxObjects: b.maxObjects ?? DEFAULT_TORCH_BUDGETS.maxObjects,
    maxDepth: b.maxDepth ?? DEFAULT_TORCH_BUDGETS.maxDepth,
    maxRatio: b.maxCompressionRatio ?? DEFAULT_TORCH_BUDGETS.maxCompressionRatio,
    maxPickle: b.maxPickleBytes ?? DEFAULT_TORCH_BUDGETS.maxPickleBytes,
  };
}

/** Reserve `n` bytes of the materialisation budget before allocating them. */
export function spend(budget: Budget, n: number, what: string): void {
  if (budget.bytes + n > budget.maxBytes) {
    throw new TorchCheckpointError(budget.file, `${what} would bring the bytes materialised to ${budget.bytes + n}, over the `
      + `budget of ${budget.maxBytes} (budgets.maxMaterializedBytes; a small file asking for this much is malformed)`);
  }
  budget.bytes += n;
}
