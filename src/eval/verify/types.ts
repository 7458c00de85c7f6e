/**
 * What `flamingo verify` runs: fixture kinds. A kind is one file under src/eval/verify/ that
 * exports a VerifyKind and is listed in `kinds.ts`; it claims directories (by the `kind` field of
 * their case.json, or by their files for fixture formats without one) and turns each into results.
 */

import type { WeightDType } from '../../engine/quant.ts';

/** One compared output of a case (or one sub-check, e.g. a tokenizer case). */
export interface VerifyOutput {
  name: string;
  pass: boolean;
  /** Largest |got − want| (floats); for integers the largest difference of a mismatching element. */
  maxAbsError?: number;
  /** Integer outputs and exact comparisons: number of mismatching elements. */
  mismatches?: number;
  /** Short human-readable detail of a failure. */
  detail?: string;
}

/** One JSON line of `flamingo verify --json`. */
export interface VerifyResult {
  case: string;
  dir: string;
  kind: string;
  pass: boolean;
  maxAbsError?: number;
  outputs: VerifyOutput[];
  /** Set when the case could not be run at all (unreadable files, wrong layout, …). */
  error?: string;
  /** Low-precision runs (--dtype bf16|int8): the verdict's numbers (see io/parity.ts). */
  lowPrecision?: { dtype: string; logitsCosine: number; top1Agreement: number | null; positions: number };
}

export interface VerifyOptions {
  /** Storage of the frozen linear weights (fp32 unless --dtype); kinds without weights ignore it. */
  dtype?: WeightDType;
}

export interface VerifyKind {
  /** Name of the fixture format, e.g. 'parity'. */
  readonly name: string;
  /** `kind` values of case.json files this format runs. */
  readonly caseKinds: readonly string[];
  /** For formats without a case.json per case: does this directory hold a fixture of this format? */
  claimsDir?(dir: string): boolean;
  /** Run everything in the directory. Failing comparisons are results, not exceptions. */
  run(dir: string, caseJson: Record<string, unknown> | null, opts?: VerifyOptions): Promise<VerifyResult[]>;
}
