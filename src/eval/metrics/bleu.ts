/**
 * BLEU-1..N as pycocoevalcap's BleuScorer computes it (option "closest"): clipped n-gram matches
 * against the per-n-gram maximum reference count, corpus statistics summed over images before the
 * geometric mean, and the brevity penalty from summed candidate / effective reference lengths.
 */
import { MetricInputError } from './errors.ts';
import { ngramCounts, ngramOrder, splitWhitespace } from './ngrams.ts';
import type { CaptionSample } from './types.ts';

// pycocoevalcap's smoothing constants; they make an order with no match a tiny positive number.
const TINY = 1e-15;
const SMALL = 1e-9;

export interface BleuResult {
  /** corpus[k] is BLEU-(k+1). */
  readonly corpus: number[];
  /** perImage[k][i] is BLEU-(k+1) of sample i alone. */
  readonly perImage: number[][];
}

interface BleuStats {
  testLen: number;
  refLen: number;
  guess: number[];
  correct: number[];
}

/** Reference length closest to the candidate length; on a tie the shorter one (Python tuple min). */
export function closestRefLength(refLens: readonly number[], testLen: number): number {
  let best = refLens[0]!;
  for (const l of refLens) {
    const d = Math.abs(l - testLen);
    const bd = Math.abs(best - testLen);
    if (d < bd || (d === bd && l < best)) best = l;
  }
  return best;
}

function sampleStats(sample: CaptionSample, maxN: number): BleuStats {
  const maxRefCounts = new Map<string, number>();
  const refLens: number[] = [];
  for (const ref of sample.references) {
    const toks = splitWhitespace(ref);
    refLens.push(toks.length);
    for (const [g, c] of ngramCounts(toks, maxN)) {
      if (c > (maxRefCounts.get(g) ?? 0)) maxRefCounts.set(g, c);
    }
  }
  const cand = splitWhitespace(sample.candidate);
  const testLen = cand.length;
  const guess: number[] = [];
  const correct: number[] = new Array<number>(maxN).fill(0);
  for (let k = 1; k <= maxN; k++) guess.push(Math.max(0, testLen - k + 1));
  for (const [g, c] of ngramCounts(cand, maxN)) {
    correct[ngramOrder(g) - 1]! += Math.min(maxRefCounts.get(g) ?? 0, c);
  }
  return { testLen, refLen: closestRefLength(refLens, testLen), guess, correct };
}

/** Cumulative geometric means for orders 1..N with the brevity penalty applied. */
function bleuFromStats(s: BleuStats, maxN: number): number[] {
  const out: number[] = [];
  let prod = 1;
  for (let k = 0; k < maxN; k++) {
    prod *= (s.correct[k]! + TINY) / (s.guess[k]! + SMALL);
    out.push(prod ** (1 / (k + 1)));
  }
  const ratio = (s.testLen + TINY) / (s.refLen + SMALL);
  if (ratio < 1) {
    const bp = Math.exp(1 - 1 / ratio);
    for (let k = 0; k < maxN; k++) out[k]! *= bp;
  }
  return out;
}

export function bleu(samples: readonly CaptionSample[], maxN = 4): BleuResult {
  if (samples.length === 0) throw new MetricInputError('BLEU', 'no samples to score');
  const total: BleuStats = { testLen: 0, refLen: 0, guess: new Array<number>(maxN).fill(0), correct: new Array<number>(maxN).fill(0) };
  const perImage: number[][] = Array.from({ length: maxN }, () => []);
  samples.forEach((sample, i) => {
    if (sample.references.length === 0) throw new MetricInputError('BLEU', `sample ${i} has no references`);
    const s = sampleStats(sample, maxN);
    total.testLen += s.testLen;
    total.refLen += s.refLen;
    for (let k = 0; k < maxN; k++) {
      total.guess[k]! += s.guess[k]!;
      total.correct[k]! += s.correct[k]!;
    }
    bleuFromStats(s, maxN).forEach((v, k) => perImage[k]!.push(v));
  });
  return { corpus: bleuFromStats(total, maxN), perImage };
}
