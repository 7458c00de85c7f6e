/**
 * The web playground: its API (/v1/playground/generate streams tokens with their cross-attention, equal
 * to the model's own recording; videos decoded by ffmpeg; bad media are 4xx) and the page end to end in
 * headless Chromium (Debian's chromium driven by playwright-core): add two example images and a query
 * image, run, see the streamed answer and the attention picture. Screenshots go to artifacts/playground/.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { startServer } from '../src/serve/app.ts';
import { loadPretrained } from '../src/pretrained/index.ts';
import { generate } from '../src/model/generate.ts';
import { encodeMediaItems } from '../src/model/media.ts';
import { decodeImage, encodePng } from '../src/data/image.ts';
import { fashionMnistAvailable, fashionMnistImage, loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { makeImage } from '../src/data/image.ts';
import { intTensor } from '../src/engine/tensor.ts';
import { findOnPath } from '../src/data/ffmpeg.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- event JSON */
const DIR = fileURLToPath(new URL('../models/flamingo-fmnist', import.meta.url));
const ARTIFACTS = fileURLToPath(new URL('../artifacts/playground/', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
type Server = Awaited<ReturnType<typeof startServer>>;
let server: Server;
const tmp = mkdtempSync(join(tmpdir(), 'flamingo-playground-'));

/** Three images: Fashion-MNIST test images when installed (what the bundled model knows), else patterns. */
function images(): Buffer[] {
  if (fashionMnistAvailable()) {
    const ds = loadFashionMnist({ split: 'test' });
    const pick = (c: number, skip: number) => { let k = 0; for (let i = 0; i < ds.n; i++) if (ds.labels[i] === c && k++ === skip) return i; return 0; };
    return [pick(0, 0), pick(1, 0), pick(0, 1)].map((i) => encodePng(fashionMnistImage(ds, i)));
  }
  return [1, 2, 3].map((s) => encodePng(makeImage(28, 28, Uint8Array.from({ length: 28 * 28 * 3 }, (_, i) => (i * s * 37) % 256))));
}
const IMGS = images();
const dataUrl = (b: Buffer, type = 'image/png'): string => `data:${type};base64,${b.toString('base64')}`;
const PROMPT = '<image>Output:A picture of a t-shirt/top<|endofchunk|><image>Output:A picture of a trouser<|endofchunk|><image>Output:';

before(async () => {
  server = await startServer({ modelDir: DIR, port: 0 });
});
after(async () => {
  await server.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** POST and collect the event stream (or the JSON error). */
async function generateEvents(body: unknown): Promise<{ status: number; events: any[]; error?: any; raw: string }> {
  const res = await fetch(`${server.url}/v1/playground/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const raw = await res.text();
  if (res.status !== 200) return { status: res.status, events: [], error: JSON.parse(raw), raw };
  const blocks = raw.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => b.slice(6));
  assert.equal(blocks[blocks.length - 1], '[DONE]');
  return { status: 200, events: blocks.slice(0, -1).map((b) => JSON.parse(b)), raw };
}

test('API: tokens stream with the attention the model records for them', async () => {
  const r = await generateEvents({ prompt: PROMPT, media: IMGS.map((b) => dataUrl(b)), max_new_tokens: 8 });
  assert.equal(r.status, 200, r.raw);
  const [header, ...rest] = r.events;
  assert.equal(header.type, 'header');
  assert.deepEqual(header.frames, [1, 1, 1]);
  const tokens = rest.filter((e) => e.type === 'token');
  const promptEv = rest.find((e) => e.type === 'prompt');
  const done = rest[rest.length - 1];
  assert.equal(done.type, 'done');
  // the same answer and the same numbers as the model in this process
  const { model, processor } = loadPretrained(DIR);
  const ids = processor.encodeText(PROMPT);
  const media = encodeMediaItems(model, IMGS.map((b) => [processor.preprocessImage(decodeImage(new Uint8Array(b), 'x'))]));
  const want = generate(model, { inputIds: intTensor(ids, [1, ids.length]), media }, { maxNewTokens: 8, recordAttention: true });
  assert.deepEqual(tokens.map((t) => t.token), want.generated[0]);
  assert.equal(done.text, processor.decode(want.generated[0]!).trim());
  assert.deepEqual(header.layers, want.attention!.layers);
  header.attn_gates.forEach((g: number, i: number) => assert.ok(Math.abs(g - want.attention!.attnGates[i]!) < 1e-6));
  tokens.forEach((t, k) => {
    const w = want.attention!.generated[0]![k]!;
    t.attention.weights.forEach((row: number[], l: number) => row.forEach((v, m) => assert.ok(Math.abs(v - w.weights[l]![m]!) < 1e-5)));
    // image-causal masking: generated tokens attend to the query image only
    for (const row of t.attention.weights) assert.ok(Math.abs(row[2] - 1) < 1e-5 && row[0] === 0 && row[1] === 0);
  });
  assert.equal(promptEv.attention.length, ids.length);
  assert.equal(header.prompt_tokens.length, ids.length);
});

const HAVE_FFMPEG = findOnPath('ffmpeg') !== null && findOnPath('ffprobe') !== null;

test('API: a video as the query; corrupt and missing media are 4xx', { skip: HAVE_FFMPEG ? false : 'ffmpeg is not installed' }, async () => {
  const clip = join(tmp, 'clip.webm');
  const made = spawnSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=s=64x48:r=10:d=1', clip]);
  assert.equal(made.status, 0, String(made.stderr));
  const video = dataUrl(readFileSync(clip), 'video/webm');
  const r = await generateEvents({ prompt: PROMPT, media: [dataUrl(IMGS[0]!), dataUrl(IMGS[1]!), video], max_new_tokens: 3 });
  assert.equal(r.status, 200, r.raw);
  assert.deepEqual(r.events[0].frames, [1, 1, 8], 'the bundled model samples resampler.max_num_frames = 8 frames');
  assert.ok(r.events.some((e) => e.type === 'token'));
  const bad = await generateEvents({ prompt: PROMPT, media: [dataUrl(IMGS[0]!), dataUrl(IMGS[1]!), dataUrl(Buffer.from('not a video at all'.repeat(40)), 'video/mp4')] });
  assert.equal(bad.status, 400);
  assert.match(bad.error.error.message, /media\[2\]: video: is not a readable video/);
  const none = await generateEvents({ prompt: 'Output:', media: [] });
  assert.equal(none.status, 400);
  assert.match(none.error.error.message, /at least one image or video/);
  const count = await generateEvents({ prompt: PROMPT, media: [dataUrl(IMGS[0]!)] });
  assert.equal(count.status, 400);
  assert.match(count.error.error.message, /3 <image> marker\(s\) but the request has 1 image/);
});

test('the page in headless Chromium: two examples and a query, a streamed answer and the attention picture', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (scripts/setup.sh installs it)` }, async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const files = IMGS.map((b, i) => { const f = join(tmp, `img${i}.png`); writeFileSync(f, b); return f; });
  const profile = mkdtempSync(join(tmpdir(), 'flamingo-chromium-'));
  let browser: BrowserContext | null = null;
  try {
    // A fresh profile (--user-data-dir) per run: playwright passes it for a persistent context.
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url);
    assert.equal(await page.title(), 'Flamingo playground');
    await page.setInputFiles('#card-0 input[type=file]', files[0]!);
    await page.setInputFiles('#card-1 input[type=file]', files[1]!);
    await page.setInputFiles('#card-query input[type=file]', files[2]!);
    await page.waitForFunction(() => document.querySelectorAll('#cards .drop img').length === 3);
    assert.equal(await page.textContent('#prompt'), PROMPT);
    await page.screenshot({ path: join(ARTIFACTS, '1-prompt.png'), fullPage: true });
    await page.click('#run');
    // streamed: the first token shows before the run is over or at the latest with it
    await page.waitForSelector('#answer .tok', { timeout: 60_000 });
    await page.waitForSelector('body[data-done=true]', { timeout: 60_000 });
    const status = await page.textContent('#status');
    assert.match(status!, /^done: \d+ token/);
    const answer = (await page.textContent('#answer'))!.trim();
    assert.ok(answer.length > 0, 'an answer was shown');
    // The picture: a blue cell (weight 1) in the query row for the first token, white cells above it.
    // A string, not a function: tsx's transpiled helpers (__name) do not exist in the page.
    const px = await page.evaluate(`(() => {
      const cv = document.querySelector('#attention');
      const g = cv.getContext('2d');
      const at = (x, y) => Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3));
      return { w: cv.width, h: cv.height, example: at(110 + 5, 64 + 5), query: at(110 + 5, 64 + 2 * 46 + 5) };
    })()`) as { w: number; h: number; example: number[]; query: number[] };
    assert.deepEqual(px.query, [31, 94, 201], 'query row, first token: full attention');
    assert.deepEqual(px.example, [255, 255, 255], 'example rows: none (image-causal masking)');
    await page.screenshot({ path: join(ARTIFACTS, '2-answer.png'), fullPage: true });
    await page.locator('#attention').screenshot({ path: join(ARTIFACTS, '3-attention.png') });
    assert.deepEqual(errors, [], 'no script errors on the page');
  } finally {
    await browser?.close();
    rmSync(profile, { recursive: true, force: true });
  }
});
