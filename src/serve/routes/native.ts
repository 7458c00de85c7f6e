/**
 * The native API, in Flamingo's own terms:
 *   POST /v1/generate  { prompt (text with <image> markers), images: [data URL | base64; data:video/… URLs are
 *                        videos, decoded by ffmpeg to the model's frame count], max_new_tokens,
 *                        strategy: greedy | sample | beam, num_beams, length_penalty, temperature, top_k,
 *                        top_p, seed, n, stop, stop_at_eoc, stream }
 *   POST /v1/score     { prompt, images, candidates: [text] } → log-likelihood of each continuation
 *                        (close-ended tasks: classification by the most likely candidate).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RoutePlugin, ServeContext } from '../context.ts';
import { asObject, bool, checkKeys, num, stopStrings, str, type Body } from '../fields.ts';
import { LimitError, RequestFieldError } from '../errors.ts';
import { imageFromUrl, type ImageBytes } from '../images.ts';
import { decodeMediaParts, mediaPart, type MediaPart } from '../video.ts';
import { checkLength, promptIds, runGeneration } from '../generation.ts';
import { clientSignal, sse } from '../http.ts';

function imagesOf(body: Body, ctx: ServeContext): ImageBytes[] {
  const v = body.images ?? [];
  if (!Array.isArray(v)) throw new RequestFieldError('images', 'must be an array of data URLs or base64 strings');
  if (v.length > ctx.limits.maxImagesPerRequest) throw new LimitError('images', `${v.length} images is more than this server's limit of ${ctx.limits.maxImagesPerRequest} per request`);
  return v.map((u, i) => imageFromUrl(u, `images[${i}]`, ctx.limits));
}

/** /v1/generate's media: images, and videos (data:video/…) decoded by ffmpeg; null when there is no video. */
function generateMedia(body: Body, ctx: ServeContext): MediaPart[] | null {
  const v = body.images ?? [];
  if (!Array.isArray(v)) throw new RequestFieldError('images', 'must be an array of data URLs or base64 strings');
  if (v.length > ctx.limits.maxImagesPerRequest) throw new LimitError('images', `${v.length} images is more than this server's limit of ${ctx.limits.maxImagesPerRequest} per request`);
  const parts = v.map((u, i) => mediaPart(u, `images[${i}]`, ctx));
  return parts.some((p) => p.kind === 'video') ? parts : null;
}

const GENERATE_KEYS = ['model', 'prompt', 'images', 'max_new_tokens', 'strategy', 'num_beams', 'length_penalty', 'temperature', 'top_k', 'top_p', 'seed', 'n', 'stop', 'stop_at_eoc', 'stream'];

export const nativeRoutes: RoutePlugin = (app, ctx) => {
  app.post('/v1/generate', async (request: FastifyRequest, reply: FastifyReply) => {
    const body = asObject(request.body, 'body');
    checkKeys(body, GENERATE_KEYS, '');
    const videoParts = generateMedia(body, ctx);
    const images = videoParts ? [] : imagesOf(body, ctx);
    const ids = promptIds(ctx, str(body, 'prompt'), videoParts ? videoParts.length : images.length);
    const maxNew = num(body, 'max_new_tokens', 20, { int: true, min: 1, max: ctx.limits.maxNewTokens, limit: true });
    checkLength(ctx, ids.length, maxNew, 'max_new_tokens');
    const numBeams = num(body, 'num_beams', 1, { int: true, min: 1, max: ctx.limits.maxBeams, limit: true });
    const strategy = body.strategy ?? (numBeams > 1 ? 'beam' : 'greedy');
    if (strategy !== 'greedy' && strategy !== 'sample' && strategy !== 'beam') throw new RequestFieldError('strategy', `must be greedy, sample or beam, got ${JSON.stringify(strategy)}`);
    const temperature = num(body, 'temperature', 1, { min: 0, max: 100, exclusiveMin: true });
    const topK = num(body, 'top_k', 0, { int: true, min: 0, max: ctx.config.lm.vocab_size });
    const topP = num(body, 'top_p', 1, { min: 0, max: 1, exclusiveMin: true });
    const seed = num(body, 'seed', 0, { int: true, min: 0, max: 2 ** 31 - 1 });
    const n = num(body, 'n', 1, { int: true, min: 1, max: ctx.limits.maxChoices, limit: true });
    const stopAtEoc = bool(body, 'stop_at_eoc', true);
    const stops = stopStrings(body);
    const stream = bool(body, 'stream', false);
    const lengthPenalty = num(body, 'length_penalty', 1, { min: -10, max: 10 });
    const id = `gen-${randomUUID()}`;
    const usage = (completion: number) => ({ prompt_tokens: ids.length, completion_tokens: completion, total_tokens: ids.length + completion });
    const signal = clientSignal(request, reply);

    if (videoParts && strategy === 'beam') throw new RequestFieldError('strategy', 'requests with videos decode greedily or by sampling (not beam search)');
    const media = videoParts ? await decodeMediaParts(videoParts, ctx, signal) : undefined;
    if (strategy === 'beam') {
      if (n !== 1 || stream || stops.length > 0) throw new RequestFieldError('strategy', 'beam search returns one answer: n, stream and stop are not available with it');
      const r = await ctx.engine.run({ kind: 'beam', ids, images: images.map((i) => i.bytes), options: { maxNewTokens: maxNew, numBeams, lengthPenalty, stopAtEoc, stopTokens: [] } }, { signal });
      const tokens = r.tokens ?? [];
      const eoc = ctx.config.flamingo.eoc_token_id;
      return {
        id, model: ctx.modelId,
        choices: [{ index: 0, text: ctx.processor.decode(tokens), token_ids: tokens, finish_reason: tokens.at(-1) === eoc ? 'stop' : 'length' }],
        usage: usage(tokens.length),
      };
    }
    const req = {
      ids, images, media, n, stops, trimStart: false,
      options: { maxNewTokens: maxNew, sample: strategy === 'sample', temperature, topK: topK || undefined, topP: topP < 1 ? topP : undefined, seed, stopAtEoc, stopTokens: [] },
    };
    if (!stream) {
      const choices = await runGeneration(ctx, req, signal);
      return {
        id, model: ctx.modelId,
        choices: choices.map((c, index) => ({ index, text: c.text, token_ids: c.tokens, finish_reason: c.finish })),
        usage: usage(choices.reduce((s, c) => s + c.tokens.length, 0)),
      };
    }
    ctx.engine.assertCapacity();
    const out = sse(reply);
    try {
      const choices = await runGeneration(ctx, req, signal, (index, text) => out.send({ id, choices: [{ index, text, finish_reason: null }] }));
      choices.forEach((c, index) => out.send({ id, choices: [{ index, text: '', finish_reason: c.finish }] }));
      out.send({ id, choices: [], usage: usage(choices.reduce((s, c) => s + c.tokens.length, 0)) });
      out.done();
    } catch (e) {
      out.fail(e);
    }
    return reply;
  });

  app.post('/v1/score', async (request: FastifyRequest, reply: FastifyReply) => {
    const body = asObject(request.body, 'body');
    checkKeys(body, ['model', 'prompt', 'images', 'candidates'], '');
    const images = imagesOf(body, ctx);
    const ids = promptIds(ctx, str(body, 'prompt'), images.length);
    const c = body.candidates;
    if (!Array.isArray(c) || c.length === 0 || c.some((x) => typeof x !== 'string' || x.length === 0)) {
      throw new RequestFieldError('candidates', 'must be a non-empty array of non-empty strings');
    }
    if (c.length > ctx.limits.maxCandidates) throw new LimitError('candidates', `${c.length} candidates is more than this server's limit of ${ctx.limits.maxCandidates}`);
    const candidates = (c as string[]).map((s) => ctx.processor.encodeText(s));
    const longest = Math.max(...candidates.map((t) => t.length));
    checkLength(ctx, ids.length, longest, 'candidates');
    const r = await ctx.engine.run({ kind: 'score', ids, images: images.map((i) => i.bytes), candidates }, { signal: clientSignal(request, reply) });
    const lp = r.logprobs ?? [];
    let best = 0;
    lp.forEach((v, i) => { if (v > lp[best]!) best = i; });
    return {
      model: ctx.modelId,
      scores: (c as string[]).map((text, i) => ({ candidate: text, logprob: lp[i], tokens: candidates[i]!.length })),
      best, usage: { prompt_tokens: ids.length, candidate_tokens: candidates.reduce((s, t) => s + t.length, 0) },
    };
  });
};
