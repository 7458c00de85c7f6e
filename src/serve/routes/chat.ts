/**
 * POST /v1/chat/completions, compatible with OpenAI's API. The conversation becomes one Flamingo
 * prompt: each image_url part becomes an <image> marker at its place, each assistant message ends with
 * <|endofchunk|>, so the earlier (user, assistant) turns are the few-shot examples and the last user
 * message is the query the model continues. A `video_url` part (a data URL of a video) is one media item
 * too: ffmpeg samples the model's frame count from it (src/serve/video.ts). System messages are plain text at their place.
 * Default temperature is 0 (greedy, as Flamingo's evaluations decode); temperature > 0 samples, from a
 * fresh seed per request unless `seed` is given.
 */
import { randomInt, randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RoutePlugin, ServeContext } from '../context.ts';
import { asObject, bool, checkKeys, num, stopStrings, type Body } from '../fields.ts';
import { RequestFieldError } from '../errors.ts';
import { imageFromUrl, type ImageBytes } from '../images.ts';
import { VIDEO_TYPES, decodeMediaParts, mediaPart, type MediaPart } from '../video.ts';
import { checkLength, promptIds, runGeneration, type GenerationRequest } from '../generation.ts';
import { clientSignal, sse } from '../http.ts';

const KNOWN = ['model', 'messages', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'n', 'stop', 'stream', 'stream_options', 'seed', 'user', 'frequency_penalty', 'presence_penalty'] as const;
const UNSUPPORTED = ['tools', 'tool_choice', 'functions', 'function_call', 'logprobs', 'top_logprobs', 'logit_bias', 'response_format', 'audio', 'modalities'];

/**
 * The conversation as Flamingo prompt text plus its images in order; `media` lists images and videos
 * (`video_url` parts: data URLs of mp4, webm, avi, mov, mkv or gif) in prompt order.
 */
export function chatPrompt(messagesRaw: unknown, ctx: ServeContext): { text: string; images: ImageBytes[]; media: MediaPart[] } {
  if (!Array.isArray(messagesRaw) || messagesRaw.length === 0) throw new RequestFieldError('messages', 'must be a non-empty array');
  const images: ImageBytes[] = [];
  const media: MediaPart[] = [];
  let text = '';
  messagesRaw.forEach((mRaw, i) => {
    const where = `messages[${i}]`;
    const m = asObject(mRaw, where);
    checkKeys(m, ['role', 'content', 'name'], where);
    const role = m.role;
    if (role !== 'system' && role !== 'user' && role !== 'assistant' && role !== 'developer') {
      throw new RequestFieldError(`${where}.role`, `must be system, developer, user or assistant, got ${JSON.stringify(role)}`);
    }
    let part = '';
    if (typeof m.content === 'string') {
      part = m.content;
    } else if (Array.isArray(m.content)) {
      m.content.forEach((cRaw, j) => {
        const cw = `${where}.content[${j}]`;
        const c = asObject(cRaw, cw);
        if (c.type === 'text') {
          checkKeys(c, ['type', 'text'], cw);
          if (typeof c.text !== 'string') throw new RequestFieldError(`${cw}.text`, 'must be a string');
          part += c.text;
        } else if (c.type === 'image_url') {
          if (role !== 'user') throw new RequestFieldError(cw, 'images are only accepted in user messages');
          checkKeys(c, ['type', 'image_url'], cw);
          const iu = typeof c.image_url === 'string' ? { url: c.image_url } : asObject(c.image_url, `${cw}.image_url`);
          checkKeys(iu, ['url', 'detail'], `${cw}.image_url`);
          if (media.length >= ctx.limits.maxImagesPerRequest) {
            throw new RequestFieldError(cw, `more than this server's limit of ${ctx.limits.maxImagesPerRequest} images per request`);
          }
          const image = imageFromUrl(iu.url, `${cw}.image_url.url`, ctx.limits);
          images.push(image);
          media.push({ kind: 'image', image });
          part += '<image>';
        } else if (c.type === 'video_url') {
          if (role !== 'user') throw new RequestFieldError(cw, 'videos are only accepted in user messages');
          checkKeys(c, ['type', 'video_url'], cw);
          const vu = typeof c.video_url === 'string' ? { url: c.video_url } : asObject(c.video_url, `${cw}.video_url`);
          checkKeys(vu, ['url'], `${cw}.video_url`);
          if (media.length >= ctx.limits.maxImagesPerRequest) {
            throw new RequestFieldError(cw, `more than this server's limit of ${ctx.limits.maxImagesPerRequest} images and videos per request`);
          }
          const p = mediaPart(vu.url, `${cw}.video_url.url`, ctx);
          if (p.kind !== 'video') throw new RequestFieldError(`${cw}.video_url.url`, `must be a video data URL (data:video/mp4;base64,…; types: ${Object.keys(VIDEO_TYPES).join(', ')})`);
          media.push(p);
          part += '<image>';
        } else {
          throw new RequestFieldError(`${cw}.type`, `must be 'text', 'image_url' or 'video_url', got ${JSON.stringify(c.type)}`);
        }
      });
    } else {
      throw new RequestFieldError(`${where}.content`, 'must be a string or an array of content parts');
    }
    if (role === 'assistant') {
      // The example's answer follows its question with one space, as Flamingo's prompts are written.
      const sep = text.length > 0 && !/\s$/.test(text) && !/^\s/.test(part) ? ' ' : '';
      text += `${sep}${part}<|endofchunk|>`;
    } else {
      text += part;
    }
  });
  const last = (messagesRaw[messagesRaw.length - 1] as Body).role;
  if (last === 'assistant') throw new RequestFieldError('messages', 'the last message must not be an assistant message (it is the query the model answers)');
  return { text, images, media };
}

export const chatRoutes: RoutePlugin = (app, ctx) => {
  app.post('/v1/chat/completions', async (request: FastifyRequest, reply: FastifyReply) => {
    const body = asObject(request.body, 'body');
    checkKeys(body, KNOWN, '', UNSUPPORTED);
    if (body.model !== undefined && typeof body.model !== 'string') throw new RequestFieldError('model', 'must be a string');
    const { text, images, media: parts } = chatPrompt(body.messages, ctx);
    const hasVideo = parts.some((p) => p.kind === 'video');
    const ids = promptIds(ctx, text, parts.length, 'messages');
    const maxTokens = num(body, 'max_tokens', undefined, { int: true, min: 1, max: ctx.limits.maxNewTokens, limit: true })
      ?? num(body, 'max_completion_tokens', 16, { int: true, min: 1, max: ctx.limits.maxNewTokens, limit: true });
    checkLength(ctx, ids.length, maxTokens, 'max_tokens');
    const temperature = num(body, 'temperature', 0, { min: 0, max: 2 });
    const topP = num(body, 'top_p', 1, { min: 0, max: 1, exclusiveMin: true });
    const n = num(body, 'n', 1, { int: true, min: 1, max: ctx.limits.maxChoices, limit: true });
    num(body, 'frequency_penalty', 0, { min: 0, max: 0 });
    num(body, 'presence_penalty', 0, { min: 0, max: 0 });
    const stream = bool(body, 'stream', false);
    const includeUsage = body.stream_options !== undefined && body.stream_options !== null
      ? bool(asObject(body.stream_options, 'stream_options'), 'include_usage', false) : false;
    const signal = clientSignal(request, reply);
    if (hasVideo && n !== 1) throw new RequestFieldError('n', 'requests with videos return one answer (n = 1)');
    // Videos are decoded here (ffmpeg runs as its own process; the event loop only waits for it).
    const media = hasVideo ? await decodeMediaParts(parts, ctx, signal) : undefined;
    const req: GenerationRequest = {
      ids, images, media, n, stops: stopStrings(body), trimStart: true,
      options: {
        maxNewTokens: maxTokens, sample: temperature > 0, temperature, topP: topP < 1 ? topP : undefined,
        // As with OpenAI, samples differ between calls unless the request fixes `seed`.
        seed: num(body, 'seed', randomInt(2 ** 31 - 1), { int: true, min: 0, max: 2 ** 31 - 1 }), stopAtEoc: true, stopTokens: [],
      },
    };
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const model = ctx.modelId; // any requested name is served by the one loaded model
    const usage = (completion: number) => ({ prompt_tokens: ids.length, completion_tokens: completion, total_tokens: ids.length + completion });

    if (!stream) {
      const choices = await runGeneration(ctx, req, signal);
      return {
        id, object: 'chat.completion', created, model,
        choices: choices.map((c, index) => ({ index, message: { role: 'assistant', content: c.text }, logprobs: null, finish_reason: c.finish })),
        usage: usage(choices.reduce((s, c) => s + c.tokens.length, 0)),
      };
    }
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) => ({ id, object: 'chat.completion.chunk', created, model, choices, ...extra });
    ctx.engine.assertCapacity(); // a full queue is a plain 429, not an event stream
    const out = sse(reply);
    try {
      for (let i = 0; i < n; i++) out.send(chunk([{ index: i, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]));
      const choices = await runGeneration(ctx, req, signal, (index, piece) => out.send(chunk([{ index, delta: { content: piece }, logprobs: null, finish_reason: null }])));
      choices.forEach((c, index) => out.send(chunk([{ index, delta: {}, logprobs: null, finish_reason: c.finish }])));
      if (includeUsage) out.send(chunk([], { usage: usage(choices.reduce((s, c) => s + c.tokens.length, 0)) }));
      out.done();
    } catch (e) {
      out.fail(e);
    }
    return reply;
  });
};
