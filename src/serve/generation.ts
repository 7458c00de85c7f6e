/**
 * One generation request on the engine, shared by /v1/chat/completions and /v1/generate: checks the
 * prompt against the limits, runs the job, turns each choice's tokens into text (stop strings,
 * streaming pieces) and counts usage.
 */
import type { ServeContext } from './context.ts';
import type { MediaPayload, SamplingOptions } from './protocol.ts';
import type { ImageBytes } from './images.ts';
import { LimitError, RequestFieldError } from './errors.ts';
import { TextStream } from '../data/text-stream.ts';

export interface GenerationRequest {
  ids: number[];
  images: ImageBytes[];
  /** Set when the request has videos: all its media in order (then it runs alone as a media job, n = 1). */
  media?: MediaPayload[];
  n: number;
  options: SamplingOptions;
  stops: string[];
  /** Drop whitespace at the start of the answer (chat: the prompt ends before the answer's space). */
  trimStart: boolean;
}

export interface ChoiceResult {
  text: string;
  tokens: number[];
  finish: 'stop' | 'length';
}

/** Prompt ids for a text with <image> markers, checked against the image count and the limits. */
export function promptIds(ctx: ServeContext, text: string, images: number, param = 'prompt'): number[] {
  if (images > ctx.limits.maxImagesPerRequest) throw new LimitError('images', `${images} images is more than this server's limit of ${ctx.limits.maxImagesPerRequest} per request`);
  const ids = ctx.processor.encodeText(text);
  if (ids.length === 0) throw new RequestFieldError(param, 'the prompt is empty');
  const markers = ids.filter((t) => t === ctx.processor.tokenizer.imageTokenId).length;
  if (markers !== images) throw new RequestFieldError(param, `has ${markers} <image> marker(s) but the request has ${images} image(s)`);
  if (ids.length > ctx.limits.maxPromptTokens) throw new LimitError(param, `the prompt has ${ids.length} tokens, more than this server's limit of ${ctx.limits.maxPromptTokens}`);
  return ids;
}

/** The model's position budget: prompt + max_new_tokens must fit. */
export function checkLength(ctx: ServeContext, promptLen: number, maxNew: number, param: string): void {
  const maxLen = ctx.config.lm.max_position_embeddings;
  if (maxLen !== undefined && promptLen + maxNew > maxLen) {
    throw new LimitError(param, `the prompt's ${promptLen} tokens + ${param} ${maxNew} exceed the model's ${maxLen} positions`);
  }
}

/**
 * Run the request; `onPiece(choice, text)` receives text as it becomes final (streaming). Resolves
 * with every choice's text once all are finished; stops the job early when every choice hit a stop string.
 */
export async function runGeneration(
  ctx: ServeContext, req: GenerationRequest, signal: AbortSignal, onPiece?: (choice: number, text: string) => void,
): Promise<ChoiceResult[]> {
  const tok = ctx.processor.tokenizer;
  const streams = Array.from({ length: req.n }, () => new TextStream(tok, req.stops, req.trimStart));
  const tokens: number[][] = Array.from({ length: req.n }, () => []);
  const finish: ('stop' | 'length' | null)[] = new Array(req.n).fill(null);
  // Our own abort when every choice hit a stop string: the rest of the job is not needed.
  const local = new AbortController();
  const FINISHED = Symbol('finished');
  const onOuter = (): void => local.abort(signal.reason);
  signal.addEventListener('abort', onOuter, { once: true });
  try {
    const job = req.media
      ? { kind: 'media' as const, record: false, ids: req.ids, media: req.media, options: req.options }
      : { kind: 'generate' as const, ids: req.ids, images: req.images.map((i) => i.bytes), n: req.n, options: req.options };
    if (req.media && req.n !== 1) throw new RequestFieldError('n', 'requests with videos return one answer (n = 1)');
    await ctx.engine.run(job, {
      signal: local.signal,
      onTokens: (items) => {
        for (const it of items) {
          const s = streams[it.choice]!;
          if (finish[it.choice] !== null) continue;
          tokens[it.choice]!.push(it.token);
          const piece = s.push(it.token);
          if (piece) onPiece?.(it.choice, piece);
          if (s.stopped) finish[it.choice] = 'stop';
          else if (it.finish) {
            finish[it.choice] = it.finish;
            const rest = s.flush();
            if (rest) onPiece?.(it.choice, rest);
          }
        }
        if (finish.every((f) => f !== null)) local.abort(FINISHED);
      },
    });
  } catch (e) {
    if (!(local.signal.aborted && local.signal.reason === FINISHED)) throw e;
  } finally {
    signal.removeEventListener('abort', onOuter);
    ctx.metrics.inc('flamingo_generated_tokens_total', {}, tokens.reduce((s, t) => s + t.length, 0));
  }
  return streams.map((s, i) => ({ text: s.value, tokens: tokens[i]!, finish: finish[i] ?? 'length' }));
}
