/**
 * The HTTP server: a fastify app built from the route plugins in routes/index.ts around one
 * ServeContext. Every error leaves as JSON `{ "error": { message, type, param, code } }` with a 4xx
 * for anything the client can fix; request counts and latencies go to /metrics.
 */
import { basename, resolve } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { BpeTokenizer } from '../data/tokenizer.ts';
import { FlamingoProcessor } from '../data/processor.ts';
import { CheckpointError, readFlamingoConfig } from '../io/checkpoint.ts';
import type { RoutePlugin, ServeContext } from './context.ts';
import { InferenceEngine } from './engine.ts';
import { ServeError, errorBody } from './errors.ts';
import { ClientGoneError } from './http.ts';
import { resolveLimits, type ServeLimits } from './limits.ts';
import { Metrics } from './metrics.ts';
import { ROUTES } from './routes/index.ts';
import { BUNDLED_MODEL_DIR } from '../pretrained/index.ts';
import type { WeightDType } from '../engine/quant.ts';

export interface ServeOptions {
  /** Model directory (default: the bundled model). */
  modelDir?: string;
  limits?: Partial<ServeLimits>;
  /** Most rows decoded together (default 32). */
  maxBatchRows?: number;
  /** Wait at most this long for more requests before a batch starts (ms, default 30). */
  batchWindowMs?: number;
  /** fastify's logger (default off). */
  logger?: boolean;
  /** Storage of the linear weights: fp32, bf16 or int8 (default: as saved). */
  dtype?: WeightDType;
}

function newMetrics(engine: InferenceEngine): Metrics {
  const m = new Metrics();
  m.counter('flamingo_http_requests_total', 'HTTP requests by route and status code');
  m.histogram('flamingo_http_request_duration_seconds', 'HTTP request latency by route', [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);
  m.counter('flamingo_jobs_total', 'Inference jobs by kind and outcome (ok, error, cancelled, timeout)');
  m.histogram('flamingo_job_queue_seconds', 'Time from submission until the worker starts a job', [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30]);
  m.histogram('flamingo_batch_rows', 'Rows decoded in the batch a job ran in', [1, 2, 4, 8, 16, 32, 64]);
  m.counter('flamingo_generated_tokens_total', 'Tokens generated');
  m.gauge('flamingo_queue_depth', 'Requests queued or running', () => engine.depth);
  return m;
}

/** Tokenizer + config on the event loop; the model itself is loaded by the worker. */
export async function createContext(opts: ServeOptions): Promise<ServeContext> {
  const modelDir = resolve(opts.modelDir ?? BUNDLED_MODEL_DIR);
  if (!existsSync(modelDir)) throw new CheckpointError(`model directory not found: ${modelDir}`);
  const tokFile = `${modelDir}/tokenizer.json`;
  if (!existsSync(tokFile)) throw new CheckpointError(`${modelDir} has no tokenizer.json`);
  const config = readFlamingoConfig(modelDir);
  const tokenizer = BpeTokenizer.fromHuggingFace(readFileSync(tokFile, 'utf8'));
  const limits = resolveLimits(opts.limits ?? {});
  const engine = await InferenceEngine.start({
    modelDir, maxBatchRows: opts.maxBatchRows ?? 32, batchWindowMs: opts.batchWindowMs ?? 30,
    maxQueue: limits.maxQueue, requestTimeoutMs: limits.requestTimeoutMs, dtype: opts.dtype,
    imageLimits: { maxBytes: limits.maxImageBytes, maxPixels: limits.maxImagePixels },
  });
  const metrics = newMetrics(engine);
  engine.onJobEnd = (kind, outcome, r) => {
    metrics.inc('flamingo_jobs_total', { kind, outcome });
    if (r.queueMs !== undefined) metrics.observe('flamingo_job_queue_seconds', r.queueMs / 1000);
    if (r.batchRows !== undefined) metrics.observe('flamingo_batch_rows', r.batchRows);
  };
  const processor = new FlamingoProcessor(tokenizer, { imageSize: config.vision.image_size, maxLength: config.lm.max_position_embeddings, preprocess: config.preprocess });
  return { engine, processor, config, modelId: basename(modelDir), modelDir, limits, metrics };
}

export async function buildApp(ctx: ServeContext, routes: RoutePlugin[] = ROUTES, logger = false): Promise<FastifyInstance> {
  const app = Fastify({ logger, bodyLimit: ctx.limits.maxRequestBytes });
  // JSON only (415 for anything else); a route plugin that takes other bodies adds its own parser.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler((err: FastifyError | Error, request, reply) => {
    if (err instanceof ClientGoneError) return reply.code(499).send(); // nobody is listening
    let e: ServeError;
    if (err instanceof ServeError) e = err;
    else {
      const status = (err as FastifyError).statusCode;
      if (status !== undefined && status >= 400 && status < 500) {
        e = new ServeError(status, status === 413 ? `request body larger than this server's limit of ${ctx.limits.maxRequestBytes} bytes` : err.message,
          status === 413 ? 'limit_exceeded' : 'invalid_request_error');
      } else {
        request.log.error(err);
        e = new ServeError(500, `internal error: ${err.message}`);
      }
    }
    if (e.retryAfter !== undefined) reply.header('retry-after', String(e.retryAfter));
    return reply.code(e.status).send(errorBody(e));
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody(new ServeError(404, `no route ${request.method} ${request.url}`, 'not_found')));
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    ctx.metrics.inc('flamingo_http_requests_total', { route, code: String(reply.statusCode) });
    ctx.metrics.observe('flamingo_http_request_duration_seconds', reply.elapsedTime / 1000, { route });
  });
  for (const r of routes) await r(app, ctx);
  return app;
}

/** Start serving; resolves with the app and its address once listening. */
export async function startServer(opts: ServeOptions & { host?: string; port?: number }): Promise<{ app: FastifyInstance; ctx: ServeContext; url: string; close: () => Promise<void> }> {
  const ctx = await createContext(opts);
  const app = await buildApp(ctx, ROUTES, opts.logger ?? false);
  const url = await app.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 8080 });
  return { app, ctx, url, close: async () => { await app.close(); await ctx.engine.close(); } };
}
