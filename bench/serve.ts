/**
 * `npm run bench -- serve [--json] [--clients 16] [--seconds 10] [--max-tokens 8] [--model DIR]`
 *
 * The HTTP server under load, on loopback only: starts `flamingo serve` as a child process on
 * 127.0.0.1 (a free port), then
 *   1. the batching target: 16 short few-shot chat requests (one image example + a query image,
 *      greedy, max_tokens tokens each) run one after another, then all at once; ratio = concurrent
 *      time / sequential time (target ≤ 0.5), the median of 5 rounds;
 *   2. load: `clients` concurrent clients send such requests back to back for `seconds`, while
 *      /healthz is polled every 50 ms: requests/s, p50/p99 latency, generated tokens/s, error counts
 *      by kind, /healthz p50/p99/max latency (target < 100 ms while generating).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PNG } from 'pngjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ROUNDS = 5;

function png(seed: number): string {
  const p = new PNG({ width: 28, height: 28 });
  for (let i = 0; i < p.data.length; i++) p.data[i] = i % 4 === 3 ? 255 : (i * (seed + 5) * 13 + seed * 7) % 256;
  return `data:image/png;base64,${PNG.sync.write(p).toString('base64')}`;
}

function body(seed: number, maxTokens: number): string {
  const img = (s: number) => ({ type: 'image_url', image_url: { url: png(s) } });
  return JSON.stringify({
    model: 'bench', max_tokens: maxTokens,
    messages: [
      { role: 'user', content: [img(seed), { type: 'text', text: 'Output:' }] },
      { role: 'assistant', content: 'a dress.' },
      { role: 'user', content: [img(seed + 1000), { type: 'text', text: 'Output:' }] },
    ],
  });
}

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

async function startServer(model: string | undefined): Promise<{ url: string; child: ChildProcess }> {
  const args = ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--host', '127.0.0.1', '--port', '0', '--max-queue', '256'];
  if (model) args.push('--model', model);
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d; });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`flamingo serve exited (${code}): ${err}`)));
  });
  return { url, child };
}

interface Outcome { ms: number; status: number; tokens: number }

async function request(url: string, payload: string): Promise<Outcome> {
  const t0 = performance.now();
  try {
    const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload });
    const j = (await r.json()) as { usage?: { completion_tokens: number } };
    return { ms: performance.now() - t0, status: r.status, tokens: j.usage?.completion_tokens ?? 0 };
  } catch {
    return { ms: performance.now() - t0, status: 0, tokens: 0 };
  }
}

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv, strict: true,
    options: { json: { type: 'boolean' }, clients: { type: 'string' }, seconds: { type: 'string' }, 'max-tokens': { type: 'string' }, model: { type: 'string' } },
  });
  const clients = Number(v.clients ?? 16);
  const seconds = Number(v.seconds ?? 10);
  const maxTokens = Number(v['max-tokens'] ?? 8);
  for (const [k, x, hi] of [['clients', clients, 256], ['seconds', seconds, 600], ['max-tokens', maxTokens, 64]] as const) {
    if (!Number.isInteger(x) || x < 1 || x > hi) throw new Error(`--${k} must be an integer in 1..${hi}, got ${x}`);
  }
  const { url, child } = await startServer(v.model);
  try {
    const payloads = Array.from({ length: 16 }, (_, i) => body(i + 1, maxTokens));
    for (let i = 0; i < 3; i++) await request(url, payloads[i]!); // warm-up

    // 1. batching target: rounds of (sequential, concurrent); the median ratio is robust to a busy machine
    const rounds: { sequentialS: number; concurrentS: number; ratio: number; errors: number }[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      let t0 = performance.now();
      const seq: Outcome[] = [];
      for (const p of payloads) seq.push(await request(url, p));
      const sequentialS = (performance.now() - t0) / 1000;
      t0 = performance.now();
      const conc = await Promise.all(payloads.map((p) => request(url, p)));
      const concurrentS = (performance.now() - t0) / 1000;
      rounds.push({ sequentialS, concurrentS, ratio: concurrentS / sequentialS, errors: [...seq, ...conc].filter((o) => o.status !== 200).length });
    }
    const median = [...rounds].sort((a, b) => a.ratio - b.ratio)[ROUNDS >> 1]!;
    const ratio = median.ratio;

    // 2. load with /healthz polling
    const outcomes: Outcome[] = [];
    const health: number[] = [];
    let healthErrors = 0;
    const end = performance.now() + seconds * 1000;
    const loadStart = performance.now();
    const worker = async (c: number): Promise<void> => {
      let k = 0;
      while (performance.now() < end) outcomes.push(await request(url, body(100 + c * 1000 + (k++ % 8), maxTokens)));
    };
    const poll = async (): Promise<void> => {
      while (performance.now() < end) {
        const h0 = performance.now();
        try {
          const r = await fetch(`${url}/healthz`);
          await r.text();
          if (r.status !== 200) healthErrors++;
        } catch { healthErrors++; }
        health.push(performance.now() - h0);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await Promise.all([...Array.from({ length: clients }, (_, c) => worker(c)), poll()]);
    const loadS = (performance.now() - loadStart) / 1000;
    const ok = outcomes.filter((o) => o.status === 200);
    const result = {
      bench: 'serve',
      date: new Date().toISOString(),
      command: `npm run bench -- serve ${argv.join(' ')}`.trim(),
      model: v.model ?? 'bundled (models/flamingo-fmnist)',
      batching: {
        requests: 16, max_tokens: maxTokens,
        sequential_s: round(median.sequentialS, 3), concurrent_s: round(median.concurrentS, 3), ratio: round(ratio, 3), target: 0.5, pass: ratio <= 0.5,
        ratios: rounds.map((r) => round(r.ratio, 3)),
        errors: rounds.reduce((s, r) => s + r.errors, 0),
      },
      load: {
        clients, seconds: round(loadS, 2), requests: outcomes.length,
        requests_per_s: round(outcomes.length / loadS, 2),
        latency_ms: { p50: round(quantile(ok.map((o) => o.ms), 0.5)), p99: round(quantile(ok.map((o) => o.ms), 0.99)) },
        tokens_per_s: round(ok.reduce((s, o) => s + o.tokens, 0) / loadS, 1),
        errors: {
          '4xx': outcomes.filter((o) => o.status >= 400 && o.status < 500).length,
          '5xx': outcomes.filter((o) => o.status >= 500).length,
          network: outcomes.filter((o) => o.status === 0).length,
        },
      },
      healthz: {
        polls: health.length, errors: healthErrors,
        latency_ms: { p50: round(quantile(health, 0.5), 2), p99: round(quantile(health, 0.99), 2), max: round(Math.max(...health), 2) },
        target_ms: 100, pass: healthErrors === 0 && quantile(health, 0.99) < 100,
      },
    };
    if (v.json) {
      process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    } else {
      const b = result.batching;
      const l = result.load;
      process.stdout.write(`batching: 16 requests sequential ${b.sequential_s} s, concurrent ${b.concurrent_s} s, ratio ${b.ratio} (target ≤ 0.5: ${b.pass ? 'met' : 'NOT met'})\n`);
      process.stdout.write(`load: ${clients} clients for ${l.seconds} s: ${l.requests_per_s} req/s, p50 ${l.latency_ms.p50} ms, p99 ${l.latency_ms.p99} ms, ${l.tokens_per_s} tokens/s, errors ${JSON.stringify(l.errors)}\n`);
      process.stdout.write(`healthz: p50 ${result.healthz.latency_ms.p50} ms, p99 ${result.healthz.latency_ms.p99} ms, max ${result.healthz.latency_ms.max} ms\n`);
    }
  } finally {
    child.kill('SIGTERM');
  }
}
