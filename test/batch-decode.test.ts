import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { loadPretrained } from '../src/pretrained/index.ts';
import { generate } from '../src/model/generate.ts';
import { BatchDecoder, type DecodeRow } from '../src/model/batch-decode.ts';
import { makeImage } from '../src/data/image.ts';
import { intTensor } from '../src/engine/tensor.ts';
import { Tensor } from '../src/engine/tensor.ts';

const DIR = fileURLToPath(new URL('../models/flamingo-fmnist', import.meta.url));
const { model, processor } = loadPretrained(DIR);
const S = model.config.vision.image_size;

function image(seed: number) {
  const data = new Uint8Array(S * S * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + seed * 97) % 251;
  return makeImage(S, S, data);
}

function row(text: string, nImages: number, extra: Partial<DecodeRow> = {}): DecodeRow {
  const ids = processor.encodeText(text);
  return { ids, pixels: Array.from({ length: nImages }, (_, i) => processor.preprocessImage(image(i + text.length))), maxNewTokens: 8, ...extra };
}

function runAll(dec: BatchDecoder, n: number): number[][] {
  const out: number[][] = Array.from({ length: n }, () => []);
  while (!dec.done) for (const t of dec.step()) out[t.row]!.push(t.token);
  return out;
}

function single(r: DecodeRow): number[] {
  const S2 = 3 * S * S;
  const visionX = r.pixels.length ? new Tensor(Float32Array.from(r.pixels.flatMap((p) => Array.from(p))), [1, r.pixels.length, 1, 3, S, S]) : null;
  assert.equal(visionX?.size ?? 0, r.pixels.length * S2);
  return generate(model, { inputIds: intTensor(r.ids, [1, r.ids.length]), visionX }, { maxNewTokens: r.maxNewTokens, strategy: 'greedy', stopAtEoc: r.stopAtEoc ?? true }).generated[0]!;
}

test('one greedy row gives the tokens generate() gives', () => {
  const r = row('<image>Output: a dress.<|endofchunk|><image>Output:', 2);
  assert.deepEqual(runAll(new BatchDecoder(model, [r]), 1)[0], single(r));
});

test('rows batched together each give their own single-row output (no mixing of caches)', () => {
  const rows = [
    row('<image>Output: a dress.<|endofchunk|><image>Output:', 2),
    row('<image>Output:', 1, { maxNewTokens: 3 }),
    row('<image>This is a dax.<|endofchunk|><image>This is a blicket.<|endofchunk|><image>This is a', 3),
  ];
  const batched = runAll(new BatchDecoder(model, rows), rows.length);
  rows.forEach((r, i) => assert.deepEqual(batched[i], single(r), `row ${i}`));
  assert.equal(batched[1]!.length <= 3, true);
  const text = [row('hello there', 0, { maxNewTokens: 5 }), row('a much longer text prompt than that', 0, { maxNewTokens: 7 })];
  const batchedText = runAll(new BatchDecoder(model, text), text.length);
  text.forEach((r, i) => assert.deepEqual(batchedText[i], single(r), `text row ${i}`));
});

test('a sampled row depends only on its seed, not on its batch', () => {
  const r = row('<image>Output:', 1, { sample: true, temperature: 1.5, seed: 7, maxNewTokens: 6, stopAtEoc: false });
  const alone = runAll(new BatchDecoder(model, [r]), 1)[0];
  const other = row('<image>A photo of', 1, { sample: true, temperature: 1, seed: 1 });
  const together = runAll(new BatchDecoder(model, [other, r]), 2)[1];
  assert.deepEqual(together, alone);
  assert.equal(alone!.length, 6);
});

test('a cancelled row stops and leaves the others unchanged', () => {
  const rows = [row('<image>Output:', 1, { maxNewTokens: 6, stopAtEoc: false }), row('<image>A photo of', 1, { maxNewTokens: 6, stopAtEoc: false })];
  const dec = new BatchDecoder(model, rows);
  const out: number[][] = [[], []];
  let steps = 0;
  while (!dec.done) {
    for (const t of dec.step()) out[t.row]!.push(t.token);
    if (++steps === 2) dec.cancel(0);
  }
  assert.equal(out[0]!.length, 2);
  assert.deepEqual(out[1], single(rows[1]!));
});

test('bad rows are refused before any compute', () => {
  assert.throws(() => new BatchDecoder(model, [row('<image>x', 0)]), /1 <image> marker\(s\) but 0 image/);
  assert.throws(() => new BatchDecoder(model, [row('x', 0, { maxNewTokens: 0 })]), /maxNewTokens/);
  assert.throws(() => new BatchDecoder(model, [row('x', 0, { maxNewTokens: 600 })]), /exceeds the model's 512 positions/);
  assert.throws(() => new BatchDecoder(model, []), /at least one row/);
  assert.throws(() => new BatchDecoder(model, [row('<image>x', 1), row('x', 0)]), /mixes prompts with and without images/);
});

test('rows that join a running batch give their single-row outputs, and the running rows keep theirs', () => {
  const a = row('<image>Output: a dress.<|endofchunk|><image>Output:', 2, { maxNewTokens: 8, stopAtEoc: false });
  const b = row('<image>This is a', 1, { maxNewTokens: 5, stopAtEoc: false }); // shorter prompt: padded on the left
  const c = row('<image>This is a dax.<|endofchunk|><image>This is a blicket.<|endofchunk|><image>This is a', 3, { maxNewTokens: 6, stopAtEoc: false }); // longer: the batch is padded
  const dec = new BatchDecoder(model, [a]);
  const out: number[][] = [[], [], []];
  for (const t of dec.step()) out[t.row]!.push(t.token);
  for (const t of dec.step()) out[t.row]!.push(t.token);
  const joined = dec.join([b, c]);
  assert.ok(joined);
  assert.deepEqual(joined.map((t) => t.row), [1, 2]);
  for (const t of joined) out[t.row]!.push(t.token);
  while (!dec.done) for (const t of dec.step()) out[t.row]!.push(t.token);
  assert.deepEqual(out[0], single(a));
  assert.deepEqual(out[1], single(b));
  assert.deepEqual(out[2], single(c));
  // a text-only row cannot join a batch with images; nor rows that would not fit the positions
  const dec2 = new BatchDecoder(model, [a]);
  dec2.step();
  assert.equal(dec2.join([row('hello', 0)]), null);
  const dec3 = new BatchDecoder(model, [{ ...a, maxNewTokens: 60 }]);
  dec3.step();
  const long = row('<image>' + 'word '.repeat(600), 1, { maxNewTokens: 7 });
  long.ids = long.ids.slice(0, 500);
  assert.equal(dec3.join([long]), null, 'a 500-token prompt cannot join rows that may still need 59 positions');
  assert.ok(dec3.join([{ ...long, ids: long.ids.slice(0, 400) }]));
});
