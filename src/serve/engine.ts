/**
 * The server's side of the inference worker: starts it, keeps the bounded queue (full → 429), routes
 * the worker's messages to the request that owns them, enforces the per-request timeout and stops a
 * job whose client went away. One worker: the native kernels already use both cores, and one model
 * copy keeps memory flat; concurrency comes from batching inside the worker.
 */
import { Worker } from 'node:worker_threads';
import type { FromWorker, InspectHeader, Job, TokenAttentionMsg, TokenItem, WorkerInfo, WorkerOptions } from './protocol.ts';
import { EngineUnavailableError, QueueFullError, RequestTimeoutError, ServeError } from './errors.ts';

type JobInput = Job extends infer J ? J extends Job ? Omit<J, 'id'> : never : never;

export interface JobHandlers {
  /** Tokens as they are generated (generate jobs). */
  onTokens?: (items: TokenItem[]) => void;
  /** Inspect jobs: the gates and prompt attention first, then each token with its attention. */
  onInspectHeader?: (h: InspectHeader) => void;
  onInspectToken?: (token: number, attention: TokenAttentionMsg) => void;
  /** After the last token: the attention of every prompt position. */
  onInspectPrompt?: (prompt: TokenAttentionMsg[]) => void;
  /** Aborted when the client goes away: the job is cancelled and the promise rejects with its reason. */
  signal?: AbortSignal;
}

export interface JobResult {
  tokens?: number[];
  logprobs?: number[];
  /** Time from submission to the worker starting the job, and the first step (prefill) in ms. */
  queueMs: number;
  prefillMs: number;
  batchRows: number;
}

interface Pending {
  handlers: JobHandlers;
  resolve: (r: JobResult) => void;
  reject: (e: unknown) => void;
  result: Partial<JobResult>;
  submitted: number;
  timer: NodeJS.Timeout;
  cleanup: () => void;
}

export interface EngineOptions extends WorkerOptions {
  maxQueue: number;
  requestTimeoutMs: number;
}

/** A worker running worker.js next to this file, or under tsx the worker.ts source (development). */
function newWorker(workerData: WorkerOptions): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./worker.js', import.meta.url), { workerData });
  // Loader hooks are per thread: the worker registers tsx itself before importing the source.
  const api = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const src = JSON.stringify(new URL('./worker.ts', import.meta.url).href);
  return new Worker(`import(${api}).then((m) => { m.register(); return import(${src}); })`, { eval: true, workerData });
}

export class InferenceEngine {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closing = false;
  info: WorkerInfo | null = null;
  /** Called once per finished job (metrics). */
  onJobEnd: ((kind: Job['kind'], outcome: string, r: Partial<JobResult>) => void) | null = null;

  private constructor(private readonly opts: EngineOptions) {}

  static async start(opts: EngineOptions): Promise<InferenceEngine> {
    const e = new InferenceEngine(opts);
    await e.spawn();
    return e;
  }

  /** Requests queued or running. */
  get depth(): number {
    return this.pending.size;
  }

  private spawn(): Promise<void> {
    const { modelDir, maxBatchRows, batchWindowMs, dtype, imageLimits } = this.opts;
    const w = newWorker({ modelDir, maxBatchRows, batchWindowMs, dtype, imageLimits });
    this.worker = w;
    return new Promise((resolve, reject) => {
      let ready = false;
      w.on('message', (m: FromWorker) => {
        if (m.type === 'ready') { ready = true; this.info = m.info; resolve(); return; }
        this.onMessage(m);
      });
      w.on('error', (err) => {
        if (!ready) reject(err);
        this.failAll(new EngineUnavailableError(`the inference worker failed: ${err.message}`));
      });
      w.on('exit', (code) => {
        if (this.worker === w) this.worker = null;
        if (!ready) reject(new EngineUnavailableError(`the inference worker exited with code ${code} before it was ready`));
        this.failAll(new EngineUnavailableError(`the inference worker exited (code ${code})`));
        // A crashed worker is replaced so the server keeps serving; its requests got 503.
        if (ready && !this.closing) this.spawn().catch(() => undefined);
      });
    });
  }

  private failAll(e: ServeError): void {
    for (const [id, p] of this.pending) { this.pending.delete(id); p.cleanup(); p.reject(e); }
  }

  private onMessage(m: FromWorker): void {
    if (m.type === 'fatal') {
      this.failAll(new EngineUnavailableError(`the inference worker stopped: ${m.message}`));
      void this.worker?.terminate();
      return;
    }
    if (m.type === 'ready') return;
    const p = this.pending.get(m.id);
    if (!p) return; // cancelled or timed out: late messages are dropped
    switch (m.type) {
      case 'started':
        p.result.queueMs = performance.now() - p.submitted;
        p.result.batchRows = m.batchRows;
        break;
      case 'tokens':
        p.handlers.onTokens?.(m.items);
        break;
      case 'inspect-header':
        p.handlers.onInspectHeader?.(m.header);
        break;
      case 'inspect-token':
        p.handlers.onInspectToken?.(m.token, m.attention);
        break;
      case 'inspect-prompt':
        p.handlers.onInspectPrompt?.(m.prompt);
        break;
      case 'result':
        if (m.tokens) p.result.tokens = m.tokens;
        if (m.logprobs) p.result.logprobs = m.logprobs;
        break;
      case 'done':
        this.pending.delete(m.id);
        p.cleanup();
        p.result.prefillMs = m.prefillMs;
        p.resolve({ queueMs: 0, batchRows: 1, ...p.result, prefillMs: m.prefillMs });
        break;
      case 'error':
        this.pending.delete(m.id);
        p.cleanup();
        p.reject(new ServeError(m.status, m.message, m.status >= 500 ? 'server_error' : 'invalid_request_error', null));
        break;
    }
  }

  /** Throws QueueFullError (429) when a job submitted now would be refused (before a stream is opened). */
  assertCapacity(): void {
    if (this.closing || !this.worker) throw new EngineUnavailableError('the inference worker is not running');
    if (this.pending.size >= this.opts.maxQueue) throw new QueueFullError(this.pending.size, 1);
  }

  /** Queue a job; rejects with QueueFullError (429) when the queue is full. */
  run(input: JobInput, handlers: JobHandlers = {}): Promise<JobResult> {
    if (this.closing || !this.worker) return Promise.reject(new EngineUnavailableError('the inference worker is not running'));
    if (this.pending.size >= this.opts.maxQueue) {
      // A rough wait: the queue drains about one batch per second on the bundled model.
      return Promise.reject(new QueueFullError(this.pending.size, 1));
    }
    if (handlers.signal?.aborted) return Promise.reject(handlers.signal.reason);
    const id = this.nextId++;
    const job = { ...input, id } as Job;
    return new Promise<JobResult>((resolve, reject) => {
      const stop = (reason: unknown, outcome: string): void => {
        if (!this.pending.has(id)) return;
        this.pending.delete(id);
        cleanup();
        this.worker?.postMessage({ kind: 'cancel', id });
        this.onJobEnd?.(job.kind, outcome, p.result);
        reject(reason);
      };
      const onAbort = (): void => stop(handlers.signal!.reason, 'cancelled');
      const timer = setTimeout(() => stop(new RequestTimeoutError(this.opts.requestTimeoutMs), 'timeout'), this.opts.requestTimeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        handlers.signal?.removeEventListener('abort', onAbort);
      };
      handlers.signal?.addEventListener('abort', onAbort, { once: true });
      const p: Pending = {
        handlers, submitted: performance.now(), timer, cleanup, result: {},
        resolve: (r) => { this.onJobEnd?.(job.kind, 'ok', r); resolve(r); },
        reject: (e) => { this.onJobEnd?.(job.kind, 'error', p.result); reject(e); },
      };
      this.pending.set(id, p);
      // Transfer nothing: image bytes are copied, so the request's buffers stay valid for its handler.
      this.worker!.postMessage(job);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    this.failAll(new EngineUnavailableError('the server is shutting down'));
    await this.worker?.terminate();
    this.worker = null;
  }
}
