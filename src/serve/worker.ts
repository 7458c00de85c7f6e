/**
 * The inference worker: owns the model, so decoding never blocks the server's event loop. Generation
 * jobs that arrive together are decoded as one batch (BatchDecoder: left padded, one KV-cache row per
 * choice, rows leave the batch when they finish) and jobs that arrive while it runs join it between
 * steps; beam and score jobs run alone. Between decoding steps
 * the worker yields to its event loop, which is where cancellations (client gone, timeout) arrive.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { setPriority } from 'node:os';
import { setImmediate as tick } from 'node:timers/promises';
import { loadPretrained } from '../pretrained/index.ts';
import { decodeImage, makeImage } from '../data/image.ts';
import { storedDType } from '../nn/quantize.ts';
import { FlamingoError, InternalError } from '../errors.ts';
import { BatchDecoder, type DecodeRow, type StepToken } from '../model/batch-decode.ts';
import { generate } from '../model/generate.ts';
import { scoreContinuations } from '../model/score.ts';
import { encodeMediaItems } from '../model/media.ts';
import { intTensor, Tensor } from '../engine/tensor.ts';
import { backend } from '../engine/backend.ts';
import type { FromWorker, GenerateJob, MediaJob, Job, ToWorker, TokenItem, WorkerOptions } from './protocol.ts';

// Linux sets nice values per thread: this lowers the priority of this thread only (and of the kernel
// threads it starts when it loads the native addon), so the server's event loop gets a core first and
// /healthz and new requests are answered promptly however busy the model is.
try {
  setPriority(0, 10);
} catch {
  // not permitted or not supported: same priority as the event loop
}

const port = parentPort!;
const opts = workerData as WorkerOptions;
const post = (m: FromWorker): void => port.postMessage(m);

const { model, processor } = loadPretrained(opts.modelDir, { dtype: opts.dtype });
const S = model.config.vision.image_size;

const inbox: Job[] = [];
const cancelled = new Set<number>();
let wake: (() => void) | null = null;
let lastArrival = 0;

/**
 * Requests sent together reach the worker spread over a few milliseconds (each is parsed and checked
 * on the event loop first): wait until none has arrived for QUIET_MS (8 ms), at most batchWindowMs, so they
 * share one batch instead of the first ones starting alone.
 */
const QUIET_MS = 8;
async function gather(): Promise<void> {
  const start = performance.now();
  await tick();
  while (performance.now() - lastArrival < QUIET_MS && performance.now() - start < opts.batchWindowMs) {
    await new Promise((r) => setTimeout(r, 1));
  }
}

port.on('message', (m: ToWorker) => {
  if (m.kind === 'cancel') {
    cancelled.add(m.id);
    const i = inbox.findIndex((j) => j.id === m.id);
    if (i >= 0) inbox.splice(i, 1);
  } else {
    inbox.push(m);
    lastArrival = performance.now();
  }
  wake?.();
});

/** The project's own errors are about the request's content (a corrupt image, a prompt the model cannot take): 400. */
function statusOf(e: unknown): number {
  return e instanceof FlamingoError && !(e instanceof InternalError) ? 400 : 500;
}

function fail(id: number, e: unknown): void {
  // a thrown non-Error value (a string, …) is reported as what it is
  const [name, message] = e instanceof Error ? [e.name, e.message] : ['Error', String(e)];
  post({ type: 'error', id, name, message, status: statusOf(e) });
}

function pixelsOf(job: { images: Uint8Array[] }): Float32Array[] {
  return job.images.map((b, i) => processor.preprocessImage(decodeImage(b, { name: `image ${i + 1}`, limits: opts.imageLimits })));
}

function visionX(pixels: Float32Array[]): Tensor | null {
  if (pixels.length === 0) return null;
  const per = 3 * S * S;
  const data = new Float32Array(pixels.length * per);
  pixels.forEach((p, i) => data.set(p, i * per));
  return new Tensor(data, [1, pixels.length, 1, 3, S, S]);
}

/**
 * A media job: one answer, greedy or sampled, over images and videos (each item encoded with its own frame
 * count), streamed as each token is chosen (generate's onToken runs inside the decoding loop, and messages
 * posted from here reach the server while the worker keeps computing). With `record` (the playground) the
 * gated cross-attention of every token goes along.
 */
function runMediaJob(job: MediaJob): void {
  const t0 = performance.now();
  post({ type: 'started', id: job.id, batchRows: 1 });
  const items = job.media.map((m, i) => (m.kind === 'image'
    ? [processor.preprocessImage(decodeImage(m.bytes, { name: `media ${i + 1}`, limits: opts.imageLimits }))]
    : m.frames.map((f) => processor.preprocessImage(makeImage(m.width, m.height, f)))));
  const media = items.length > 0 ? encodeMediaItems(model, items) : null;
  const o = job.options;
  if (!job.record) {
    generate(model, { inputIds: intTensor(job.ids, [1, job.ids.length]), media }, {
      maxNewTokens: o.maxNewTokens, strategy: o.sample ? 'sample' : 'greedy', temperature: o.temperature, topK: o.topK, topP: o.topP,
      seed: o.seed, stopAtEoc: o.stopAtEoc, stopTokens: o.stopTokens,
      onToken: (e) => {
        const stop = (o.stopAtEoc && e.token === model.config.flamingo.eoc_token_id) || o.stopTokens.includes(e.token);
        post({ type: 'tokens', id: job.id, items: [{ choice: 0, token: e.token, finish: stop ? 'stop' : e.step === o.maxNewTokens - 1 ? 'length' : null }] });
      },
    });
    post({ type: 'done', id: job.id, prefillMs: performance.now() - t0 });
    return;
  }
  const gated = [...model.lang_encoder.gated.entries()];
  post({
    type: 'inspect-header', id: job.id,
    header: { layers: gated.map(([i]) => i), attnGates: gated.map(([, g]) => g.gateValues().attn), ffGates: gated.map(([, g]) => g.gateValues().ff), frames: items.map((f) => f.length) },
  });
  const out = generate(model, { inputIds: intTensor(job.ids, [1, job.ids.length]), media }, {
    maxNewTokens: o.maxNewTokens, strategy: o.sample ? 'sample' : 'greedy', temperature: o.temperature, topK: o.topK, topP: o.topP,
    seed: o.seed, stopAtEoc: o.stopAtEoc, stopTokens: o.stopTokens, recordAttention: true,
    onToken: (e) => post({ type: 'inspect-token', id: job.id, token: e.token, attention: e.attention! }),
  });
  post({ type: 'inspect-prompt', id: job.id, prompt: out.attention!.prompt[0]! });
  post({ type: 'done', id: job.id, prefillMs: performance.now() - t0 });
}

function runSolo(job: Exclude<Job, GenerateJob | MediaJob>): void {
  const t0 = performance.now();
  post({ type: 'started', id: job.id, batchRows: 1 });
  const prompt = { inputIds: intTensor(job.ids, [1, job.ids.length]), visionX: visionX(pixelsOf(job)) };
  if (job.kind === 'score') {
    post({ type: 'result', id: job.id, logprobs: scoreContinuations(model, prompt, job.candidates) });
  } else {
    const o = job.options;
    const out = generate(model, prompt, { maxNewTokens: o.maxNewTokens, strategy: 'beam', numBeams: o.numBeams, lengthPenalty: o.lengthPenalty, stopAtEoc: o.stopAtEoc, stopTokens: o.stopTokens });
    post({ type: 'result', id: job.id, tokens: out.generated[0]! });
  }
  post({ type: 'done', id: job.id, prefillMs: performance.now() - t0 });
}

/** Decoder rows for jobs (n rows each, seeds seed + choice); a job whose images do not decode fails alone. */
function rowsOf(jobs: GenerateJob[]): { rows: DecodeRow[]; owners: { job: GenerateJob; choice: number }[]; ok: GenerateJob[] } {
  const rows: DecodeRow[] = [];
  const owners: { job: GenerateJob; choice: number }[] = [];
  const ok: GenerateJob[] = [];
  for (const job of jobs) {
    let pixels: Float32Array[];
    try {
      pixels = pixelsOf(job);
    } catch (e) {
      fail(job.id, e);
      continue;
    }
    ok.push(job);
    const o = job.options;
    for (let c = 0; c < job.n; c++) {
      rows.push({ ids: job.ids, pixels, maxNewTokens: o.maxNewTokens, sample: o.sample, temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed + c, stopAtEoc: o.stopAtEoc, stopTokens: o.stopTokens });
      owners.push({ job, choice: c });
    }
  }
  return { rows, owners, ok };
}

/** Queued generation jobs of the same kind (images or text only) whose rows fit in `room`; removed from the inbox. */
function takeCompatible(withImages: boolean, room: number): GenerateJob[] {
  const out: GenerateJob[] = [];
  for (let i = 0; i < inbox.length;) {
    const j = inbox[i]!;
    if (j.kind === 'generate' && hasImages(j) === withImages && j.n <= room) {
      out.push(j);
      room -= j.n;
      inbox.splice(i, 1);
    } else {
      i++;
    }
  }
  return out;
}

/**
 * Decode jobs as one batch; jobs of the same kind that arrive meanwhile join it between steps
 * (BatchDecoder.join) instead of waiting for it to finish.
 */
async function runBatch(jobs: GenerateJob[]): Promise<void> {
  const first = rowsOf(jobs);
  if (first.rows.length === 0) return;
  const withImages = first.ok.some(hasImages);
  const owner = [...first.owners];
  const open = new Map<number, number>();
  const prefillMs = new Map<number, number>();
  const start = (ok: GenerateJob[], rows: number): void => {
    for (const job of ok) { open.set(job.id, job.n); post({ type: 'started', id: job.id, batchRows: rows }); }
  };
  const emit = (tokens: StepToken[]): void => {
    const byJob = new Map<number, TokenItem[]>();
    for (const t of tokens) {
      const { job, choice } = owner[t.row]!;
      if (!byJob.has(job.id)) byJob.set(job.id, []);
      byJob.get(job.id)!.push({ choice, token: t.token, finish: t.finish });
      if (t.finish) open.set(job.id, open.get(job.id)! - 1);
    }
    for (const [id, items] of byJob) {
      post({ type: 'tokens', id, items });
      if (open.get(id) === 0) { post({ type: 'done', id, prefillMs: prefillMs.get(id) ?? 0 }); open.delete(id); }
    }
  };
  start(first.ok, first.rows.length);
  try {
    await decodeAll(first.rows, owner, emit, start, prefillMs, withImages, first.ok);
  } catch (e) {
    // every job still open in this batch (joined ones included) fails with the error; none waits for its timeout
    for (const id of open.keys()) fail(id, e);
    open.clear();
  }
  for (const id of open.keys()) { post({ type: 'done', id, prefillMs: prefillMs.get(id) ?? 0 }); cancelled.delete(id); }
}

async function decodeAll(
  rows: DecodeRow[], owner: { job: GenerateJob; choice: number }[], emit: (t: StepToken[]) => void,
  start: (ok: GenerateJob[], rows: number) => void, prefillMs: Map<number, number>, withImages: boolean, firstJobs: GenerateJob[],
): Promise<void> {
  const dec = new BatchDecoder(model, rows);
  let t0 = performance.now();
  emit(dec.step());
  for (const j of firstJobs) prefillMs.set(j.id, performance.now() - t0);
  let joinable = true; // once jobs could not join (positions), later ones wait for the next batch
  for (;;) {
    await tick(); // let cancellations and new jobs in
    for (const r of dec.liveRows) if (cancelled.has(owner[r]!.job.id)) dec.cancel(r);
    if (dec.done) break;
    const late = joinable ? takeCompatible(withImages, opts.maxBatchRows - dec.liveRows.length) : [];
    if (late.length > 0) {
      const more = rowsOf(late);
      let joined: StepToken[] | null = null;
      if (more.rows.length > 0) {
        t0 = performance.now();
        try {
          joined = dec.join(more.rows);
        } catch (e) {
          for (const j of more.ok) fail(j.id, e);
          joined = [];
        }
      }
      if (joined === null) {
        joinable = false;
        inbox.unshift(...more.ok); // they start the next batch
      } else if (more.ok.length > 0 && joined.length > 0) {
        owner.push(...more.owners);
        start(more.ok, dec.liveRows.length);
        for (const j of more.ok) prefillMs.set(j.id, performance.now() - t0);
        emit(joined);
      }
    }
    emit(dec.step());
  }
}

function hasImages(j: { images: Uint8Array[] }): boolean {
  return j.images.length > 0;
}

async function loop(): Promise<never> {
  for (;;) {
    if (inbox.length === 0) await new Promise<void>((r) => { wake = r; });
    wake = null;
    await gather();
    const first = inbox.shift();
    if (!first) continue;
    try {
      if (first.kind === 'media') {
        runMediaJob(first);
        continue;
      }
      if (first.kind !== 'generate') {
        runSolo(first);
        continue;
      }
      const group = [first, ...takeCompatible(hasImages(first), opts.maxBatchRows - first.n)];
      try {
        await runBatch(group);
      } catch (e) {
        for (const j of group) fail(j.id, e);
      }
    } catch (e) {
      fail(first.id, e);
    }
    cancelled.clear();
  }
}

post({ type: 'ready', info: { kernels: backend().description, parameters: model.parameters().reduce((s, p) => s + p.size, 0), weights: storedDType(model) } });
loop().catch((e: unknown) => post({ type: 'fatal', message: e instanceof Error ? e.message : String(e) }));
