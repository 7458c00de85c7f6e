/**
 * Errors the server answers with: each carries its HTTP status and an OpenAI-style `type`, and is
 * sent as `{ "error": { "message", "type", "param", "code" } }` (the body OpenAI clients parse).
 */
import { FlamingoError } from '../errors.ts';

export class ServeError extends FlamingoError {
  constructor(
    readonly status: number,
    message: string,
    readonly type = status >= 500 ? 'server_error' : 'invalid_request_error',
    readonly param: string | null = null,
    /** Seconds, sent as Retry-After (429 / 503). */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/** A request field is missing, of the wrong type or out of range (400). */
export class RequestFieldError extends ServeError {
  constructor(param: string, message: string) {
    super(400, `${param}: ${message}`, 'invalid_request_error', param);
  }
}

/** A configured limit is exceeded (413 for sizes, 400 otherwise). */
export class LimitError extends ServeError {
  constructor(param: string, message: string, status = 400) {
    super(status, message, 'limit_exceeded', param);
  }
}

/** The queue is full (429 with Retry-After). */
export class QueueFullError extends ServeError {
  constructor(depth: number, retryAfter: number) {
    super(429, `the server is busy (${depth} requests queued or running); retry after ${retryAfter} s`, 'rate_limit_exceeded', null, retryAfter);
  }
}

/** The request ran longer than the per-request timeout (503: the server could not finish it in time). */
export class RequestTimeoutError extends ServeError {
  constructor(ms: number) {
    super(503, `the request did not finish within the server's timeout of ${ms} ms`, 'timeout', null, 1);
  }
}

/** The inference worker died or the server is shutting down (503). */
export class EngineUnavailableError extends ServeError {
  constructor(message: string) {
    super(503, message, 'server_error', null, 1);
  }
}

export function errorBody(e: ServeError): { error: { message: string; type: string; param: string | null; code: string | null } } {
  return { error: { message: e.message, type: e.type, param: e.param, code: e.name } };
}
