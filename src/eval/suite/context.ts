/**
 * What every task of the built-in suite shares: the run's context (model, codec, plan, seed, the kept
 * prompts and outputs) and the small rules all tasks follow (a shot count that does not fit the model is
 * reported as null with a note, never a crash).
 */
import type { Flamingo } from '../../model/flamingo.ts';
import { FlamingoInputError } from '../../model/flamingo.ts';
import { ProcessorError, type FlamingoProcessor } from '../../data/processor.ts';
import type { RgbImage } from '../../data/image.ts';
import type { SyntheticWorldConfig } from '../../data/synthetic/index.ts';
import type { NameInventory } from '../../data/synthetic/inventories.ts';
import type { MediaRef } from '../datasets/types.ts';
import { MediaError } from '../media.ts';
import type { EvalContext } from '../tasks.ts';
import type { SuiteExample, SuiteOutput, SuitePlan, TaskReport } from './plan.ts';

export interface SuiteContext extends EvalContext {
  processor: FlamingoProcessor;
  /** Image side of the model's vision tower. */
  S: number;
  plan: SuitePlan;
  seed: number;
  world: SyntheticWorldConfig;
  log: (line: string) => void;
  prompts: SuiteOutput['prompts'];
  outputs: SuiteOutput['outputs'];
  /** Fast binding's name inventories to run; null = all. */
  inventories: readonly NameInventory[] | null;
}

export const PROMPTS_KEPT = 3;
/** Queries per forward pass. */
export const BATCH = 8;

export function keepPrompts(ctx: SuiteContext, task: string, shots: number, texts: readonly string[]): void {
  (ctx.prompts[task] ??= {})[String(shots)] = texts.slice(0, PROMPTS_KEPT);
}

export function keepOutputs(ctx: SuiteContext, task: string, shots: number, examples: readonly SuiteExample[]): void {
  // every query's answer, so a score can be traced to the answers behind it (a few KB per task)
  (ctx.outputs[task] ??= {})[String(shots)] = [...examples];
}

/** Errors that mean "this shot count does not fit this model" (too many media or positions), not a bug. */
export function doesNotFit(e: unknown): e is Error {
  return e instanceof FlamingoInputError || e instanceof ProcessorError || e instanceof MediaError;
}

/** Media slots a prompt with `media` items needs; null when the model has room. */
export function mediaLimitNote(model: Flamingo, media: number): string | null {
  const max = model.config.resampler.max_num_media;
  return max !== null && media > max ? `needs ${media} media per prompt but the model takes at most ${max} (resampler.max_num_media)` : null;
}

/** Records a shot count that could not run (null score) and why. */
export function noteUnfit(rep: TaskReport, shots: number, why: string): void {
  rep.shots[String(shots)] = null;
  (rep.notes ??= []).push(`${shots} shots: ${why}`);
}

export function memRef(key: string, load: () => RgbImage[]): MediaRef {
  return { key, files: [], load };
}

/** A percentage rounded to 4 decimals (stable JSON). */
export const pct = (x: number): number => Math.round(x * 1e4) / 1e4;
