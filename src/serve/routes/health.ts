/** GET /healthz (answered on the event loop, never waiting for the model), GET /v1/models, GET /metrics. */
import type { RoutePlugin } from '../context.ts';

export const healthRoutes: RoutePlugin = (app, ctx) => {
  const started = Math.floor(Date.now() / 1000);
  app.get('/healthz', async () => ({ status: 'ok', model: ctx.modelId, queue: ctx.engine.depth, kernels: ctx.engine.info?.kernels ?? null, weights: ctx.engine.info?.weights ?? null }));
  app.get('/v1/models', async () => ({
    object: 'list',
    data: [{ id: ctx.modelId, object: 'model', created: started, owned_by: 'flamingo-ts', parameters: ctx.engine.info?.parameters ?? null, max_position_embeddings: ctx.config.lm.max_position_embeddings ?? null }],
  }));
  app.get('/metrics', async (_req, reply) => {
    reply.type('text/plain; version=0.0.4; charset=utf-8');
    return ctx.metrics.render();
  });
};
