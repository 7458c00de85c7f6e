// Samples scenes: 1–N objects in distinct cells of a 3x3 grid, so positions are unambiguous and objects never
// overlap. Some objects copy their predecessor's look, so scenes contain groups ("two small blue squares").

import { resolveConfig, type SyntheticWorldConfig, type SyntheticWorldOptions } from './config.ts';
import { SyntheticDataError } from './errors.ts';
import { chance, intBetween, pick, sample, type Random } from './random.ts';
import type { Scene, SceneObject } from './types.ts';
import { POSITIONS, SIZES, SIZE_RADIUS, type ColourName, type PositionName, type ShapeName, type SizeName } from './vocab.ts';

/** Fixes some attributes of one object; unspecified ones are sampled. */
export interface ObjectConstraint {
  shape?: ShapeName;
  colour?: ColourName;
  size?: SizeName;
  position?: PositionName;
}

export interface SampleSceneOptions {
  world?: SyntheticWorldOptions;
  /** Exact number of objects (default: uniform in [minObjects, maxObjects]). */
  count?: number;
  /** constraints[i] applies to object i. */
  constraints?: ObjectConstraint[];
  /** Probability that an unconstrained object copies the previous object's shape, colour and size. */
  repeatProbability?: number;
}

const CELL = 1 / 3;
const MARGIN = 0.01;

/** Centre of a grid cell plus a jitter that keeps an object of radius r inside its cell. */
export function placeInCell(rng: Random, position: PositionName, r: number): { x: number; y: number } {
  const [col, row] = POSITIONS[position];
  const jit = Math.max(0, CELL / 2 - r - MARGIN);
  return {
    x: (col + 0.5) * CELL + (rng.uniform() * 2 - 1) * jit,
    y: (row + 0.5) * CELL + (rng.uniform() * 2 - 1) * jit,
  };
}

export function sampleScene(rng: Random, opts: SampleSceneOptions = {}): Scene {
  return sampleSceneWith(rng, resolveConfig(opts.world), opts);
}

/** sampleScene with an already-resolved config (generators resolve once, not per image). */
export function sampleSceneWith(rng: Random, cfg: SyntheticWorldConfig, opts: Omit<SampleSceneOptions, 'world'> = {}): Scene {
  const constraints = opts.constraints ?? [];
  const count = opts.count ?? Math.max(constraints.length, intBetween(rng, cfg.minObjects, cfg.maxObjects));
  if (!Number.isInteger(count) || count < 1 || count > cfg.positions.length || count < constraints.length) {
    throw new SyntheticDataError(
      'sampleScene',
      `count ${count} must be an integer in [max(1, constraints=${constraints.length}), positions=${cfg.positions.length}]`,
    );
  }
  const pinned = constraints.map((c) => c.position).filter((p): p is PositionName => p !== undefined);
  if (new Set(pinned).size !== pinned.length) {
    throw new SyntheticDataError('sampleScene', `constraints pin two objects to the same position: ${pinned.join(', ')}`);
  }
  const free = sample(rng, cfg.positions.filter((p) => !pinned.includes(p)), count);
  const repeatP = opts.repeatProbability ?? 0.3;
  const objects: SceneObject[] = [];
  for (let i = 0; i < count; i++) {
    const c = constraints[i] ?? {};
    const prev = objects[i - 1];
    const copy = prev !== undefined && constraints[i] === undefined && chance(rng, repeatP);
    const shape = c.shape ?? (copy ? prev.shape : pick(rng, cfg.shapes));
    const colour = c.colour ?? (copy ? prev.colour : pick(rng, cfg.colours));
    const size = c.size ?? (copy ? prev.size : pick(rng, SIZES));
    const position = c.position ?? free.pop()!;
    const { x, y } = placeInCell(rng, position, SIZE_RADIUS[size]);
    objects.push({ shape, colour, size, position, x, y });
  }
  return {
    background: {
      colour: pick(rng, cfg.backgrounds),
      texture: pick(rng, cfg.textures),
      seed: rng.int(0x7fffffff),
    },
    objects,
  };
}
