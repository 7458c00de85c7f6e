// Seeded random source for the synthetic world: the engine's Rng (forks depend only on seed lineage + stream id).
import { Rng } from '../../engine/rng.ts';
import type { Random } from './random.ts';

export function createRandom(seed: number): Random {
  return new Rng(seed);
}

/** Stream ids: each generator family forks its own stream, so adding one never shifts another's output. */
export const STREAMS = { documents: 1, pairs: 2, videos: 3, fastBinding: 4 } as const;
