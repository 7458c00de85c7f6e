// The random source the synthetic world draws from. Generators only use this small surface, so any seeded
// generator with these methods works; helpers here are built on `int` so results are stable across implementations.

export interface Random {
  /** Uniform float in [0, 1). */
  uniform(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** An independent generator derived from this one's seed and a stream id; does not advance this one. */
  fork(stream: number): Random;
}

export function pick<T>(rng: Random, items: readonly T[]): T {
  return items[rng.int(items.length)]!;
}

/** Fisher–Yates on a copy (the input is left untouched). */
export function shuffled<T>(rng: Random, items: readonly T[]): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}

/** k distinct items in random order. */
export function sample<T>(rng: Random, items: readonly T[], k: number): T[] {
  return shuffled(rng, items).slice(0, k);
}

/** Integer in [lo, hi] inclusive. */
export function intBetween(rng: Random, lo: number, hi: number): number {
  return lo + rng.int(hi - lo + 1);
}

export function chance(rng: Random, p: number): boolean {
  return rng.uniform() < p;
}

/** Index drawn with probability proportional to weights (all >= 0, sum > 0). */
export function weightedIndex(rng: Random, weights: readonly number[]): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let r = rng.uniform() * total;
  for (let i = 0; i < weights.length; i++) {
    r -= weights[i]!;
    if (r < 0) return i;
  }
  return weights.length - 1;
}
