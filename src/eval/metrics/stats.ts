/** Plain left-to-right float64 mean (the upstream code uses np.mean / sum()/len; differences are last-bit only). */
export function mean(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}
