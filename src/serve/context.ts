/**
 * What every route plugin gets: the engine, the tokenizer side of the processor (prompts are tokenised
 * and checked on the event loop; the model lives in the worker), the model's config, limits and metrics.
 */
import type { FastifyInstance } from 'fastify';
import type { FlamingoProcessor } from '../data/processor.ts';
import type { FlamingoConfig } from '../model/config.ts';
import type { InferenceEngine } from './engine.ts';
import type { ServeLimits } from './limits.ts';
import type { Metrics } from './metrics.ts';

export interface ServeContext {
  engine: InferenceEngine;
  processor: FlamingoProcessor;
  config: FlamingoConfig;
  /** The name clients use in `model` (the model directory's base name). */
  modelId: string;
  modelDir: string;
  limits: ServeLimits;
  metrics: Metrics;
}

/** A group of routes: `app.ts` registers each plugin listed in `routes/index.ts`. */
export type RoutePlugin = (app: FastifyInstance, ctx: ServeContext) => void | Promise<void>;
