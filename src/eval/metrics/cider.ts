/**
 * CIDEr-D as pycocoevalcap's CiderScorer computes it (n = 1..4, sigma = 6). Document frequencies
 * and N come from the references of the evaluated set, so each image's score depends on the whole
 * set being scored.
 */
import { MetricInputError } from './errors.ts';
import { ngramCounts, ngramOrder, splitWhitespace } from './ngrams.ts';
import { mean } from './stats.ts';
import type { CaptionSample } from './types.ts';

export interface CiderOptions {
  readonly n?: number;
  readonly sigma?: number;
}

interface TfIdfVector {
  /** Per order: n-gram -> tf·idf weight, in the n-gram insertion order. */
  readonly vec: Map<string, number>[];
  readonly norm: number[];
  /** Bigram count; upstream uses it as the sentence length for the Gaussian penalty. */
  readonly length: number;
}

function documentFrequency(refCounts: readonly Map<string, number>[][]): Map<string, number> {
  const df = new Map<string, number>();
  for (const refs of refCounts) {
    const seen = new Set<string>();
    for (const counts of refs) for (const g of counts.keys()) seen.add(g);
    for (const g of seen) df.set(g, (df.get(g) ?? 0) + 1);
  }
  return df;
}

function toVector(counts: Map<string, number>, df: Map<string, number>, logN: number, n: number): TfIdfVector {
  const vec = Array.from({ length: n }, () => new Map<string, number>());
  const sq = new Array<number>(n).fill(0);
  let length = 0;
  for (const [g, tf] of counts) {
    const order = ngramOrder(g) - 1;
    const w = tf * (logN - Math.log(Math.max(1, df.get(g) ?? 0)));
    vec[order]!.set(g, w);
    sq[order]! += w ** 2;
    if (order === 1) length += tf;
  }
  return { vec, norm: sq.map(Math.sqrt), length };
}

function similarity(hyp: TfIdfVector, ref: TfIdfVector, n: number, sigma: number): number[] {
  const delta = hyp.length - ref.length;
  // Upstream writes np.e ** x rather than exp(x); keep the same operation.
  const penalty = Math.E ** (-(delta ** 2) / (2 * sigma ** 2));
  const val = new Array<number>(n).fill(0);
  for (let k = 0; k < n; k++) {
    const refVec = ref.vec[k]!;
    for (const [g, wHyp] of hyp.vec[k]!) {
      const wRef = refVec.get(g) ?? 0;
      val[k]! += Math.min(wHyp, wRef) * wRef;
    }
    if (hyp.norm[k] !== 0 && ref.norm[k] !== 0) val[k]! /= hyp.norm[k]! * ref.norm[k]!;
    val[k]! *= penalty;
  }
  return val;
}

export function ciderD(samples: readonly CaptionSample[], opts: CiderOptions = {}): { score: number; perImage: number[] } {
  const n = opts.n ?? 4;
  const sigma = opts.sigma ?? 6;
  if (samples.length === 0) throw new MetricInputError('CIDEr', 'no samples to score');
  const refCounts = samples.map((s, i) => {
    if (s.references.length === 0) throw new MetricInputError('CIDEr', `sample ${i} has no references`);
    return s.references.map((r) => ngramCounts(splitWhitespace(r), n));
  });
  const df = documentFrequency(refCounts);
  const logN = Math.log(samples.length);
  const perImage = samples.map((s, i) => {
    const hyp = toVector(ngramCounts(splitWhitespace(s.candidate), n), df, logN, n);
    const acc = new Array<number>(n).fill(0);
    for (const counts of refCounts[i]!) {
      const sim = similarity(hyp, toVector(counts, df, logN, n), n, sigma);
      for (let k = 0; k < n; k++) acc[k]! += sim[k]!;
    }
    return (mean(acc) / refCounts[i]!.length) * 10;
  });
  return { score: mean(perImage), perImage };
}
