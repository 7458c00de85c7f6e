/**
 * `flamingo serve [--model DIR] [--host 127.0.0.1] [--port 8080]`: the HTTP server (OpenAI-compatible
 * chat completions, the native generate/score API, health and metrics), on the bundled model by default.
 * Options: --max-batch N (rows decoded together, 32), --max-queue N (64), --timeout MS (60000),
 * --max-new-tokens N (64), --dtype fp32|bf16|int8 (weights as saved by default), --log (fastify request log).
 */
import { startServer } from '../serve/app.ts';
import { dtypeArg, intArg, parseOptions } from './args.ts';

const OPTIONS = {
  model: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, 'max-batch': { type: 'string' },
  'max-queue': { type: 'string' }, timeout: { type: 'string' }, 'max-new-tokens': { type: 'string' }, dtype: { type: 'string' }, log: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const USAGE = 'usage: flamingo serve [--model DIR] [--host 127.0.0.1] [--port 8080] [--max-batch 32] [--max-queue 64] [--timeout 60000] [--max-new-tokens 64] [--dtype fp32|bf16|int8] [--log]\n';

export async function run(args: string[]): Promise<number> {
  const { values: v } = parseOptions(args, OPTIONS);
  if (v.help) { process.stdout.write(USAGE); return 0; }
  const ints: Record<string, number | undefined> = {};
  for (const k of ['port', 'max-batch', 'max-queue', 'timeout', 'max-new-tokens'] as const) {
    ints[k] = k === 'port' ? intArg(k, v[k], { min: 0, max: 65535 }) : intArg(k, v[k], { min: 1, max: 1e9 });
  }
  const limits: Record<string, number> = {};
  if (ints['max-queue'] !== undefined) limits.maxQueue = ints['max-queue'];
  if (ints.timeout !== undefined) limits.requestTimeoutMs = ints.timeout;
  if (ints['max-new-tokens'] !== undefined) limits.maxNewTokens = ints['max-new-tokens'];
  const server = await startServer({
    modelDir: v.model, host: v.host ?? '127.0.0.1', port: ints.port ?? 8080,
    maxBatchRows: ints['max-batch'], limits, logger: v.log ?? false, dtype: dtypeArg(v.dtype),
  });
  process.stdout.write(`flamingo serve: ${server.ctx.modelId} (weights ${server.ctx.engine.info?.weights}; kernels ${server.ctx.engine.info?.kernels}) listening on ${server.url}\n`);
  await new Promise<void>((resolveStop) => {
    const stop = (): void => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolveStop(); };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.close();
  return 0;
}
