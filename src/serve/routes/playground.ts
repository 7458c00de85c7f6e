/**
 * The web playground (static page at `/`, files under playground/ at the package root) and its API:
 *
 *   POST /v1/playground/generate  { prompt (text with <image> markers), media: [data URL], max_new_tokens,
 *                                   temperature (0 = greedy), seed }
 *     media: PNG/JPEG images, or videos (mp4, webm, avi, mov, mkv, gif) decoded by ffmpeg to the model's
 *     frame count. Answers with Server-Sent Events, one JSON object each, ending with `data: [DONE]`:
 *       {type:'header', layers, attn_gates, ff_gates, frames, prompt_tokens}  the gated layers' tanh gates
 *       {type:'token', index, token, text, attention: {weights: [layer][media], strength: [layer]}}
 *       {type:'prompt', attention: [position] → {weights, strength}}            after the last token
 *       {type:'done', text, finish}
 *   GET /v1/playground/samples   a few Fashion-MNIST test images (data URLs) when the dataset is installed.
 */
import { readFileSync } from 'node:fs';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RoutePlugin, ServeContext } from '../context.ts';
import { asObject, checkKeys, num, str } from '../fields.ts';
import { LimitError, RequestFieldError } from '../errors.ts';
import { checkLength, promptIds } from '../generation.ts';
import { clientSignal, sse } from '../http.ts';
import { TextStream } from '../../data/text-stream.ts';
import type { MediaPayload } from '../protocol.ts';
import { decodeMediaParts, mediaPart } from '../video.ts';
import { encodePng } from '../../data/image.ts';
import { FASHION_MNIST_CLASSES, fashionMnistAvailable, fashionMnistImage, loadFashionMnist } from '../../data/fashion-mnist.ts';

const STATIC: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

function staticFile(name: string): Buffer {
  // playground/ sits at the package root, three levels above both src/serve/routes/ and dist/serve/routes/.
  return readFileSync(new URL(`../../../playground/${name}`, import.meta.url));
}

const KEYS = ['prompt', 'media', 'max_new_tokens', 'temperature', 'seed'];

/** Media of a playground request, videos decoded (in order, each bounded in time and size). */
async function mediaOf(raw: unknown, ctx: ServeContext, signal: AbortSignal): Promise<MediaPayload[]> {
  const list = raw ?? [];
  if (!Array.isArray(list)) throw new RequestFieldError('media', 'must be an array of data URLs (images or videos)');
  if (list.length > ctx.limits.maxImagesPerRequest) throw new LimitError('media', `${list.length} media items is more than this server's limit of ${ctx.limits.maxImagesPerRequest} per request`);
  return decodeMediaParts(list.map((u, i) => mediaPart(u, `media[${i}]`, ctx)), ctx, signal);
}

let samples: { label: string; url: string }[] | null = null;

/** Two test images of each of the first five classes (the bundled model's seen classes), encoded once. */
function sampleImages(): { label: string; url: string }[] {
  if (samples) return samples;
  if (!fashionMnistAvailable()) return (samples = []);
  const ds = loadFashionMnist({ split: 'test' });
  const out: { label: string; url: string }[] = [];
  const per = new Map<number, number>();
  for (let i = 0; i < ds.n && out.length < 10; i++) {
    const c = ds.labels[i]!;
    if (c >= 5 || (per.get(c) ?? 0) >= 2) continue;
    per.set(c, (per.get(c) ?? 0) + 1);
    out.push({ label: FASHION_MNIST_CLASSES[c]!, url: `data:image/png;base64,${encodePng(fashionMnistImage(ds, i)).toString('base64')}` });
  }
  out.sort((a, b) => a.label.localeCompare(b.label));
  return (samples = out);
}

export const playgroundRoutes: RoutePlugin = (app, ctx) => {
  const files = new Map(Object.keys(STATIC).map((n) => [n, staticFile(n)]));
  app.get('/', async (_req, reply) => reply.type(STATIC['index.html']!).send(files.get('index.html')));
  app.get('/playground/:file', async (request: FastifyRequest<{ Params: { file: string } }>, reply) => {
    const name = request.params.file;
    const body = files.get(name);
    if (!body) throw new RequestFieldError('file', `no playground file '${name}'`);
    return reply.type(STATIC[name]!).send(body);
  });
  app.get('/v1/playground/samples', async () => ({ model: ctx.modelId, samples: sampleImages() }));

  app.post('/v1/playground/generate', async (request: FastifyRequest, reply: FastifyReply) => {
    const body = asObject(request.body, 'body');
    checkKeys(body, KEYS, '');
    const signal = clientSignal(request, reply);
    const prompt = str(body, 'prompt');
    const maxNew = num(body, 'max_new_tokens', 16, { int: true, min: 1, max: ctx.limits.maxNewTokens, limit: true });
    const temperature = num(body, 'temperature', 0, { min: 0, max: 2 });
    const seed = num(body, 'seed', 0, { int: true, min: 0, max: 2 ** 31 - 1 });
    if (!Array.isArray(body.media) || body.media.length === 0) throw new RequestFieldError('media', 'the playground shows attention to images: give at least one image or video');
    const ids = promptIds(ctx, prompt, body.media.length);
    checkLength(ctx, ids.length, maxNew, 'max_new_tokens');
    const media = await mediaOf(body.media, ctx, signal);
    ctx.engine.assertCapacity();
    const tok = ctx.processor.tokenizer;
    const out = sse(reply);
    const text = new TextStream(tok, [], true);
    let index = 0;
    let finish: 'stop' | 'length' = 'length';
    try {
      await ctx.engine.run({ kind: 'media', record: true, ids, media, options: { maxNewTokens: maxNew, sample: temperature > 0, temperature, seed, stopAtEoc: true, stopTokens: [] } }, {
        signal,
        onInspectHeader: (h) => out.send({
          type: 'header', layers: h.layers, attn_gates: h.attnGates, ff_gates: h.ffGates, frames: h.frames,
          prompt_tokens: ids.map((t) => tok.decode([t], { skipSpecial: false })),
        }),
        onInspectToken: (token, attention) => {
          if (token === ctx.config.flamingo.eoc_token_id) finish = 'stop';
          const piece = text.push(token);
          out.send({ type: 'token', index: index++, token, text: piece, label: tok.decode([token], { skipSpecial: false }), attention });
        },
        onInspectPrompt: (attention) => out.send({ type: 'prompt', attention }),
      });
      const rest = text.flush();
      out.send({ type: 'done', text: text.value, rest, finish });
      ctx.metrics.inc('flamingo_generated_tokens_total', {}, index);
      out.done();
    } catch (e) {
      out.fail(e);
    }
    return reply;
  });
};
