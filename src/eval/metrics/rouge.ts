/**
 * ROUGE-L as pycocoevalcap computes it: per image, precision and recall maxima are taken
 * independently over the references, then F-beta with beta = 1.2. Tokens are split on a single
 * space (`str.split(" ")`), not on arbitrary whitespace.
 */
import { MetricInputError } from './errors.ts';
import { mean } from './stats.ts';
import type { CaptionSample } from './types.ts';

const BETA = 1.2;

/** Length of the longest common subsequence of two token sequences. */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  let prev = new Array<number>(b.length + 1).fill(0);
  let cur = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

export function rougeLSample(candidate: string, references: readonly string[]): number {
  if (references.length === 0) throw new MetricInputError('ROUGE_L', 'sample has no references');
  const cand = candidate.split(' ');
  let pMax = -Infinity;
  let rMax = -Infinity;
  for (const ref of references) {
    const r = ref.split(' ');
    const lcs = lcsLength(r, cand);
    pMax = Math.max(pMax, lcs / cand.length);
    rMax = Math.max(rMax, lcs / r.length);
  }
  if (pMax === 0 || rMax === 0) return 0;
  const b2 = BETA ** 2;
  return ((1 + b2) * pMax * rMax) / (rMax + b2 * pMax);
}

export function rougeL(samples: readonly CaptionSample[]): { score: number; perImage: number[] } {
  if (samples.length === 0) throw new MetricInputError('ROUGE_L', 'no samples to score');
  const perImage = samples.map((s) => rougeLSample(s.candidate, s.references));
  return { score: mean(perImage), perImage };
}
