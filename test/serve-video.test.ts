/**
 * Videos through the server: `video_url` parts in /v1/chat/completions (openai client, also streaming)
 * and video data URLs in /v1/generate give the answer the model gives for the same frames; corrupt
 * videos and unsupported combinations are 4xx. Clips are made here with ffmpeg.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { startServer } from '../src/serve/app.ts';
import { loadPretrained } from '../src/pretrained/index.ts';
import { generate } from '../src/model/generate.ts';
import { encodeMediaItems } from '../src/model/media.ts';
import { decodeImage, encodePng, makeImage } from '../src/data/image.ts';
import { decodeVideo, findOnPath } from '../src/data/ffmpeg.ts';
import { intTensor } from '../src/engine/tensor.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- response JSON */
const DIR = fileURLToPath(new URL('../models/flamingo-fmnist', import.meta.url));
const skip = findOnPath('ffmpeg') && findOnPath('ffprobe') ? false : 'ffmpeg is not installed (scripts/setup.sh installs it)';
type Server = Awaited<ReturnType<typeof startServer>>;
let server: Server;
let client: OpenAI;
const tmp = mkdtempSync(join(tmpdir(), 'flamingo-serve-video-'));
const clip = join(tmp, 'clip.webm');
const IMG = encodePng(makeImage(28, 28, Uint8Array.from({ length: 28 * 28 * 3 }, (_, i) => (i * 29) % 256)));
const url = (b: Buffer, type: string) => `data:${type};base64,${b.toString('base64')}`;
const PROMPT = '<image>Output:A picture of a dress<|endofchunk|><image>Output:';
/** The chat messages below as the chat route writes them: an assistant answer follows its question after one space. */
const CHAT_PROMPT = '<image>Output: A picture of a dress<|endofchunk|><image>Output:';

before(async () => {
  if (skip) return;
  const r = spawnSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=s=48x40:r=10:d=1.5', clip]);
  assert.equal(r.status, 0, String(r.stderr));
  server = await startServer({ modelDir: DIR, port: 0 });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  await server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** The model's own greedy answer for an image and the clip (frames decoded as the server does). */
async function direct(maxNewTokens: number, prompt = PROMPT): Promise<number[]> {
  const { model, processor } = loadPretrained(DIR);
  const S = model.config.vision.image_size;
  const frames = await decodeVideo(clip, { frames: model.config.resampler.max_num_frames ?? 8, size: S });
  const items = [[processor.preprocessImage(decodeImage(new Uint8Array(IMG), 'x'))], frames.map((f) => processor.preprocessImage(f))];
  const ids = processor.encodeText(prompt);
  return generate(model, { inputIds: intTensor(ids, [1, ids.length]), media: encodeMediaItems(model, items) }, { maxNewTokens }).generated[0]!;
}

test('/v1/generate: a video data URL is one media item of the prompt', { skip }, async () => {
  const res = await fetch(`${server.url}/v1/generate`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: PROMPT, images: [url(IMG, 'image/png'), url(readFileSync(clip), 'video/webm')], max_new_tokens: 6 }),
  });
  const body: any = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.deepEqual(body.choices[0].token_ids, await direct(6));
  const beam = await fetch(`${server.url}/v1/generate`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: PROMPT, images: [url(IMG, 'image/png'), url(readFileSync(clip), 'video/webm')], num_beams: 3 }),
  });
  assert.equal(beam.status, 400);
  assert.match(((await beam.json()) as any).error.message, /not beam search/);
});

test('chat completions: video_url parts with the openai client, plain and streamed; bad videos are 400', { skip }, async () => {
  const video = url(readFileSync(clip), 'video/webm');
  const messages: any[] = [
    { role: 'user', content: [{ type: 'image_url', image_url: { url: url(IMG, 'image/png') } }, { type: 'text', text: 'Output:' }] },
    { role: 'assistant', content: 'A picture of a dress' },
    { role: 'user', content: [{ type: 'video_url', video_url: { url: video } }, { type: 'text', text: 'Output:' }] },
  ];
  const want = await direct(6, CHAT_PROMPT);
  const { processor } = loadPretrained(DIR);
  const plain = await client.chat.completions.create({ model: 'flamingo-fmnist', messages, max_tokens: 6 });
  assert.equal(plain.choices[0]!.message.content, processor.decode(want).replace(/^\s+/, ''));
  assert.equal(plain.usage!.completion_tokens, want.length);
  const stream = await client.chat.completions.create({ model: 'flamingo-fmnist', messages, max_tokens: 6, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(text, plain.choices[0]!.message.content);

  const bad = structuredClone(messages);
  bad[2].content[0].video_url.url = url(Buffer.from('garbage, not a clip'.repeat(30)), 'video/mp4');
  await assert.rejects(client.chat.completions.create({ model: 'flamingo-fmnist', messages: bad, max_tokens: 2 }),
    (e: any) => e.status === 400 && /messages\[2\]\.content\[0\]\.video_url\.url: video: is not a readable video/.test(e.message));
  const notVideo = structuredClone(messages);
  notVideo[2].content[0].video_url.url = url(IMG, 'image/png');
  await assert.rejects(client.chat.completions.create({ model: 'flamingo-fmnist', messages: notVideo, max_tokens: 2 }),
    (e: any) => e.status === 400 && /must be a video data URL/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: 'flamingo-fmnist', messages, max_tokens: 2, n: 2 }),
    (e: any) => e.status === 400 && /one answer/.test(e.message));
});
