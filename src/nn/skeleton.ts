/**
 * Skeleton construction for loading: an Rng whose fills leave buffers untouched. Built with it, a
 * model's parameters are zero-filled allocations the loader overwrites (or replaces by packed
 * storage) one tensor at a time. Large zero-filled buffers are not backed by memory until written,
 * so building a skeleton does not cost the fp32 model's size in RSS — that is what lets a model
 * load straight into bf16 / int8 (or a 9B model load at all).
 */
import { Rng } from '../engine/rng.ts';

export class SkipInitRng extends Rng {
  constructor() {
    super(0);
  }

  override fillNormal(out: Float32Array): Float32Array {
    return out;
  }

  override fillUniform(out: Float32Array): Float32Array {
    return out;
  }

  override fork(): Rng {
    return this;
  }
}
