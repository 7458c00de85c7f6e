import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { PNG } from 'pngjs';
import { startServer } from '../src/serve/app.ts';
import { loadPretrained } from '../src/pretrained/index.ts';
import { generate } from '../src/model/generate.ts';
import { scoreContinuations } from '../src/model/score.ts';
import { decodeImage } from '../src/data/image.ts';
import { intTensor, Tensor } from '../src/engine/tensor.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- response JSON */
const DIR = fileURLToPath(new URL('../models/flamingo-fmnist', import.meta.url));
type Server = Awaited<ReturnType<typeof startServer>>;
let server: Server;
let client: OpenAI;

before(async () => {
  server = await startServer({ modelDir: DIR, port: 0, limits: { maxImagePixels: 512 * 512, maxRequestBytes: 1024 * 1024, maxPromptTokens: 500 } });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => { await server.close(); });

function png(seed: number, w = 32, h = 32): Buffer {
  const p = new PNG({ width: w, height: h });
  for (let i = 0; i < p.data.length; i++) p.data[i] = (i % 4 === 3) ? 255 : (i * (seed + 3) * 7) % 256;
  return PNG.sync.write(p);
}
const dataUrl = (b: Buffer): string => `data:image/png;base64,${b.toString('base64')}`;
const IMGS = [png(1), png(2), png(3)];

const FEW_SHOT: OpenAI.Chat.ChatCompletionMessageParam[] = [
  { role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl(IMGS[0]!) } }, { type: 'text', text: 'Output:' }] },
  { role: 'assistant', content: 'a dress.' },
  { role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl(IMGS[1]!) } }, { type: 'text', text: 'Output:' }] },
];
const FEW_SHOT_PROMPT = '<image>Output: a dress.<|endofchunk|><image>Output:';

async function post(path: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(`${server.url}${path}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: any = null;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: res.status, json, headers: res.headers };
}

/** What the model itself gives for a prompt (same process, no server). */
const local = loadPretrained(DIR);
function direct(prompt: string, images: Buffer[], maxNewTokens: number, numBeams = 1, stopAtEoc = true): number[] {
  const S = local.model.config.vision.image_size;
  const px = images.map((b) => local.processor.preprocessImage(decodeImage(new Uint8Array(b), 'x')));
  const ids = local.processor.encodeText(prompt);
  const visionX = px.length ? new Tensor(Float32Array.from(px.flatMap((p) => Array.from(p))), [1, px.length, 1, 3, S, S]) : null;
  return generate(local.model, { inputIds: intTensor(ids, [1, ids.length]), visionX }, { maxNewTokens, numBeams, strategy: numBeams > 1 ? 'beam' : 'greedy', stopAtEoc }).generated[0]!;
}

test('chat completion with the openai client: few-shot prompt with images, greedy answer and usage', async () => {
  const r = await client.chat.completions.create({ model: 'flamingo-fmnist', messages: FEW_SHOT, max_tokens: 12 });
  const want = direct(FEW_SHOT_PROMPT, IMGS.slice(0, 2), 12);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0]!.message.content, local.processor.decode(want).trimStart());
  assert.equal(r.choices[0]!.finish_reason, want.at(-1) === local.model.config.flamingo.eoc_token_id ? 'stop' : 'length');
  assert.equal(r.usage!.prompt_tokens, local.processor.encodeText(FEW_SHOT_PROMPT).length);
  assert.equal(r.usage!.completion_tokens, want.length);
  assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + want.length);
});

test('streaming with the openai client gives the same text in pieces, then [DONE]', async () => {
  const full = await client.chat.completions.create({ model: 'x', messages: FEW_SHOT, max_tokens: 12 });
  const stream = await client.chat.completions.create({ model: 'x', messages: FEW_SHOT, max_tokens: 12, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let pieces = 0;
  let finish: string | null = null;
  let usage: any = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.content) { text += c.delta.content; pieces++; }
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, full.choices[0]!.message.content);
  assert.ok(pieces >= 2, `streamed in ${pieces} pieces`);
  assert.equal(finish, full.choices[0]!.finish_reason);
  assert.deepEqual(usage, full.usage);
  // the raw stream ends with data: [DONE]
  const raw = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: FEW_SHOT, max_tokens: 4, stream: true }) });
  assert.equal(raw.headers.get('content-type')?.startsWith('text/event-stream'), true);
  assert.match(await raw.text(), /data: \[DONE\]\n\n$/);
});

test('n, sampling with a seed, and stop strings', async () => {
  const a = await client.chat.completions.create({ model: 'x', messages: FEW_SHOT, max_tokens: 10, n: 3, temperature: 1.2, seed: 5 });
  const b = await client.chat.completions.create({ model: 'x', messages: FEW_SHOT, max_tokens: 10, n: 3, temperature: 1.2, seed: 5 });
  assert.equal(a.choices.length, 3);
  assert.deepEqual(a.choices.map((c) => c.message.content), b.choices.map((c) => c.message.content));
  assert.deepEqual(a.choices.map((c) => c.index), [0, 1, 2]);
  const greedy = (await client.chat.completions.create({ model: 'x', messages: FEW_SHOT, max_tokens: 12 })).choices[0]!.message.content!;
  const word = greedy.split(' ')[1]!;
  const cut = await client.chat.completions.create({ model: 'x', messages: FEW_SHOT, max_tokens: 12, stop: [word] });
  assert.equal(cut.choices[0]!.message.content, greedy.slice(0, greedy.indexOf(word)));
  assert.equal(cut.choices[0]!.finish_reason, 'stop');
});

test('/v1/generate (greedy and beams) and /v1/score agree with the library', async () => {
  const prompt = FEW_SHOT_PROMPT;
  const images = IMGS.slice(0, 2).map((b) => b.toString('base64'));
  const g = await post('/v1/generate', { prompt, images, max_new_tokens: 8 });
  assert.equal(g.status, 200);
  assert.deepEqual(g.json.choices[0].token_ids, direct(prompt, IMGS.slice(0, 2), 8));
  const beam = await post('/v1/generate', { prompt, images, max_new_tokens: 8, num_beams: 3 });
  assert.equal(beam.status, 200);
  assert.deepEqual(beam.json.choices[0].token_ids, direct(prompt, IMGS.slice(0, 2), 8, 3));
  const candidates = [' a dress.', ' a shoe.', ' a bag.'];
  const s = await post('/v1/score', { prompt, images, candidates });
  assert.equal(s.status, 200);
  const S = local.model.config.vision.image_size;
  const px = IMGS.slice(0, 2).map((b) => local.processor.preprocessImage(decodeImage(new Uint8Array(b), 'x')));
  const ids = local.processor.encodeText(prompt);
  const want = scoreContinuations(local.model, { inputIds: intTensor(ids, [1, ids.length]), visionX: new Tensor(Float32Array.from(px.flatMap((p) => Array.from(p))), [1, 2, 1, 3, S, S]) },
    candidates.map((c) => local.processor.encodeText(c)));
  s.json.scores.forEach((x: any, i: number) => assert.ok(Math.abs(x.logprob - want[i]!) < 1e-4, `${x.logprob} vs ${want[i]}`));
  assert.equal(s.json.best, want.indexOf(Math.max(...want)));
});

test('every malformed request kind gets a 4xx with a JSON error body', async () => {
  const ok = { messages: FEW_SHOT, max_tokens: 4 };
  const userImg = (url: string) => ({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text: 'Output:' }] }] });
  const corrupt = png(1);
  corrupt.fill(7, 40); // valid header, garbage after it
  const truncated = png(2).subarray(0, 60);
  const bomb = Buffer.from(png(1));
  bomb.writeUInt32BE(20000, 16); bomb.writeUInt32BE(20000, 20); // header claims 20000x20000
  const cases: [string, string, unknown, number, RegExp, Record<string, string>?][] = [
    ['invalid JSON', '/v1/chat/completions', '{"messages": [', 400, /JSON/i],
    ['not JSON', '/v1/chat/completions', 'hello', 415, /content-type|media type/i, { 'content-type': 'text/plain' }],
    ['body not an object', '/v1/chat/completions', [1, 2], 400, /body/],
    ['no messages', '/v1/chat/completions', { max_tokens: 3 }, 400, /messages/],
    ['empty messages', '/v1/chat/completions', { messages: [] }, 400, /messages/],
    ['bad role', '/v1/chat/completions', { messages: [{ role: 'robot', content: 'hi' }] }, 400, /role/],
    ['last message from the assistant', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'x' }] }, 400, /last message/],
    ['bad part type', '/v1/chat/completions', { messages: [{ role: 'user', content: [{ type: 'audio' }] }] }, 400, /type/],
    ['unknown field', '/v1/chat/completions', { ...ok, temprature: 1 }, 400, /temprature: unknown field/],
    ['unsupported field', '/v1/chat/completions', { ...ok, tools: [] }, 400, /tools: is not supported/],
    ['max_tokens over the limit', '/v1/chat/completions', { ...ok, max_tokens: 100000 }, 400, /max_tokens.*limit/],
    ['max_tokens not an integer', '/v1/chat/completions', { ...ok, max_tokens: 2.5 }, 400, /integer/],
    ['negative temperature', '/v1/chat/completions', { ...ok, temperature: -1 }, 400, /temperature/],
    ['top_p out of range', '/v1/chat/completions', { ...ok, top_p: 5 }, 400, /top_p/],
    ['n over the limit', '/v1/chat/completions', { ...ok, n: 1000 }, 400, /n: 1000 is more/],
    ['stop not strings', '/v1/chat/completions', { ...ok, stop: [1] }, 400, /stop/],
    ['remote image URL', '/v1/chat/completions', userImg('http://example.com/a.png'), 400, /only data URLs/],
    ['not base64', '/v1/chat/completions', userImg('data:image/png;base64,@@@@'), 400, /base64/],
    ['not an image', '/v1/chat/completions', userImg(`data:image/png;base64,${Buffer.from('hello world, not a png').toString('base64')}`), 400, /not a PNG or JPEG/],
    ['GIF type', '/v1/chat/completions', userImg('data:image/gif;base64,R0lGODlh'), 400, /unsupported image type/],
    ['corrupt PNG', '/v1/chat/completions', userImg(dataUrl(corrupt)), 400, /image/],
    ['truncated PNG', '/v1/chat/completions', userImg(dataUrl(truncated)), 400, /image/],
    ['pixel bomb', '/v1/chat/completions', userImg(dataUrl(bomb)), 413, /20000x20000.*limit/],
    ['too many images', '/v1/generate', { prompt: '<image>'.repeat(17), images: Array(17).fill(IMGS[0]!.toString('base64')) }, 400, /17 images is more/],
    ['markers without images', '/v1/generate', { prompt: '<image>Output:' }, 400, /1 <image> marker/],
    ['prompt too long', '/v1/generate', { prompt: 'word '.repeat(1000) }, 400, /tokens, more than/],
    ['prompt + max_new_tokens over the positions', '/v1/generate', { prompt: 'word '.repeat(470), max_new_tokens: 64 }, 400, /positions/],
    ['bad strategy', '/v1/generate', { prompt: 'hi', strategy: 'magic' }, 400, /strategy/],
    ['beams over the limit', '/v1/generate', { prompt: 'hi', num_beams: 99 }, 400, /num_beams/],
    ['beam with stream', '/v1/generate', { prompt: 'hi', num_beams: 2, stream: true }, 400, /beam search/],
    ['no candidates', '/v1/score', { prompt: 'hi', candidates: [] }, 400, /candidates/],
    ['prompt not a string', '/v1/score', { prompt: 5, candidates: ['a'] }, 400, /prompt/],
    ['body too large', '/v1/generate', { prompt: 'x'.repeat(2 * 1024 * 1024) }, 413, /larger than this server's limit/],
  ];
  for (const [name, path, body, status, re, headers] of cases) {
    const r = await post(path, body, headers);
    assert.equal(r.status, status, `${name}: got ${r.status} ${JSON.stringify(r.json)}`);
    assert.equal(typeof r.json.error?.message, 'string', `${name}: error body`);
    assert.match(r.json.error.message, re, name);
  }
  const nf = await fetch(`${server.url}/v1/nothing`);
  assert.equal(nf.status, 404);
  const get = await fetch(`${server.url}/v1/chat/completions`);
  assert.equal(get.status, 404);
  // the server is still fine
  assert.equal((await client.chat.completions.create({ model: 'x', messages: FEW_SHOT, max_tokens: 2 })).choices.length, 1);
});

test('16 concurrent clients: no 5xx, every answer equals its answer alone, /healthz answers meanwhile', async () => {
  const prompts = Array.from({ length: 16 }, (_, i) => [
    { role: 'user' as const, content: [{ type: 'image_url' as const, image_url: { url: dataUrl(png(i + 10)) } }, { type: 'text' as const, text: 'Output:' }] },
  ]);
  const alone: (string | null)[] = [];
  for (const m of prompts.slice(0, 4)) alone.push((await client.chat.completions.create({ model: 'x', messages: m, max_tokens: 8 })).choices[0]!.message.content);
  let health = 0;
  let generating = true;
  const healthLoop = (async () => {
    while (generating) {
      const r = await fetch(`${server.url}/healthz`);
      assert.equal(r.status, 200);
      if ((await r.json() as any).queue > 0) health++;
      await new Promise((r2) => setTimeout(r2, 5));
    }
  })();
  const results = await Promise.all(prompts.map((m) => client.chat.completions.create({ model: 'x', messages: m, max_tokens: 8 })));
  generating = false;
  await healthLoop;
  assert.equal(results.length, 16);
  results.slice(0, 4).forEach((r, i) => assert.equal(r.choices[0]!.message.content, alone[i]));
  assert.ok(health > 0, '/healthz answered while requests were queued or running');
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.doesNotMatch(metrics, /code="5\d\d"/);
  // batching happened: some job ran in a batch of more than one row
  const big = /flamingo_batch_rows_bucket\{le="1"\} (\d+)\nflamingo_batch_rows_bucket\{le="2"\} \d+\n[^]*?flamingo_batch_rows_count (\d+)/.exec(metrics);
  assert.ok(big && Number(big[2]) > Number(big[1]), 'some jobs were batched');
});

test('a request arriving while a batch runs joins it; both get their own answers', async () => {
  const rowsHist = async () => {
    const m = await (await fetch(`${server.url}/metrics`)).text();
    return { one: Number(/flamingo_batch_rows_bucket\{le="1"\} (\d+)/.exec(m)?.[1] ?? 0), count: Number(/flamingo_batch_rows_count (\d+)/.exec(m)?.[1] ?? 0) };
  };
  const before = await rowsHist();
  const images = IMGS.slice(0, 2).map((b) => b.toString('base64'));
  const res = await fetch(`${server.url}/v1/generate`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: FEW_SHOT_PROMPT, images, max_new_tokens: 48, stop_at_eoc: false, stream: true }),
  });
  const reader = res.body!.getReader();
  let raw = new TextDecoder().decode((await reader.read()).value); // A is generating
  const b = await post('/v1/generate', { prompt: '<image>This is a', images: [IMGS[2]!.toString('base64')], max_new_tokens: 6 });
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    raw += new TextDecoder().decode(value);
  }
  assert.equal(b.status, 200);
  assert.deepEqual(b.json.choices[0].token_ids, direct('<image>This is a', [IMGS[2]!], 6));
  const text = raw.split('\n\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)))
    .flatMap((c: any) => c.choices.map((x: any) => x.text)).join('');
  assert.equal(text, local.processor.decode(direct(FEW_SHOT_PROMPT, IMGS.slice(0, 2), 48, 1, false)));
  const after2 = await rowsHist();
  assert.equal(after2.count - before.count, 2);
  assert.equal(after2.one - before.one, 1, 'A started alone, B started in a batch of 2 (it joined A)');
});

test('a client that disconnects stops its generation', async () => {
  const before = await (await fetch(`${server.url}/metrics`)).text();
  const count = (m: string) => Number(/flamingo_jobs_total\{kind="generate",outcome="cancelled"\} (\d+)/.exec(m)?.[1] ?? 0);
  const ac = new AbortController();
  const res = await fetch(`${server.url}/v1/generate`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, signal: ac.signal,
    body: JSON.stringify({ prompt: 'hello', max_new_tokens: 64, stop_at_eoc: false, stream: true }),
  });
  const reader = res.body!.getReader();
  await reader.read();
  ac.abort();
  for (let i = 0; i < 100 && server.ctx.engine.depth > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(server.ctx.engine.depth, 0);
  const after2 = await (await fetch(`${server.url}/metrics`)).text();
  assert.equal(count(after2), count(before) + 1);
});

test('a full queue answers 429 with Retry-After; a request over the timeout gets 503', async () => {
  const small = await startServer({ modelDir: DIR, port: 0, limits: { maxQueue: 2 } });
  try {
    const body = { prompt: 'hello', max_new_tokens: 32, stop_at_eoc: false };
    const rs = await Promise.all(Array.from({ length: 6 }, () => fetch(`${small.url}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })));
    const codes = rs.map((r) => r.status).sort();
    assert.deepEqual(codes, [200, 200, 429, 429, 429, 429]);
    const busy = rs.find((r) => r.status === 429)!;
    assert.equal(busy.headers.get('retry-after'), '1');
    assert.match(((await busy.json()) as any).error.message, /busy/);
  } finally {
    await small.close();
  }
  const slow = await startServer({ modelDir: DIR, port: 0, limits: { requestTimeoutMs: 1 } });
  try {
    const r = await fetch(`${slow.url}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'hello', max_new_tokens: 32 }) });
    assert.equal(r.status, 503);
    assert.match(((await r.json()) as any).error.message, /timeout of 1 ms/);
  } finally {
    await slow.close();
  }
});

test('--dtype: the server loads packed weights, says so on /healthz, and still answers', async () => {
  const { main } = await import('../src/cli/main.ts');
  assert.equal(await main(['serve', '--dtype', 'int4']), 2, 'a bad --dtype is a usage error');
  const packed = await startServer({ modelDir: DIR, port: 0, dtype: 'int8' });
  try {
    const h = (await (await fetch(`${packed.url}/healthz`)).json()) as any;
    assert.equal(h.weights, 'int8');
    assert.equal(((await (await fetch(`${server.url}/healthz`)).json()) as any).weights, 'fp32');
    const r = await fetch(`${packed.url}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'hello', max_new_tokens: 3 }) });
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as any).choices?.length ?? 1, 1);
  } finally {
    await packed.close();
  }
});
