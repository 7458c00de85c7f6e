/**
 * HTTP helpers shared by the routes: an AbortSignal for "the client went away", and Server-Sent
 * Events in OpenAI's framing (`data: {json}` blocks, ending with `data: [DONE]`).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ServeError, errorBody } from './errors.ts';
import { FlamingoError } from '../errors.ts';

export class ClientGoneError extends FlamingoError {
  constructor() {
    super('the client closed the connection');
  }
}

/** Aborted when the connection closes before the response was completely written. */
export function clientSignal(request: FastifyRequest, reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  const onClose = (): void => {
    if (!reply.raw.writableFinished) ac.abort(new ClientGoneError());
  };
  reply.raw.once('close', onClose);
  request.raw.once('aborted', onClose);
  return ac.signal;
}

export interface SseStream {
  send(data: unknown): void;
  /** `data: [DONE]` and end. */
  done(): void;
  /** An error event (OpenAI's `{"error": …}` body) and end; nothing when the client is gone. */
  fail(e: unknown): void;
}

export function sse(reply: FastifyReply): SseStream {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  const write = (s: string): void => { if (!res.destroyed && !res.writableEnded) res.write(s); };
  return {
    send: (data) => write(`data: ${JSON.stringify(data)}\n\n`),
    done: () => { write('data: [DONE]\n\n'); if (!res.writableEnded) res.end(); },
    fail: (e) => {
      if (!(e instanceof ClientGoneError)) {
        const err = e instanceof ServeError ? e : new ServeError(500, 'internal error while generating');
        if (!(e instanceof ServeError)) reply.log.error(e);
        write(`data: ${JSON.stringify(errorBody(err))}\n\n`);
      }
      if (!res.writableEnded) res.end();
    },
  };
}
