import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeImage, type RgbImage } from '../src/data/image.ts';
import { Rng } from '../src/engine/rng.ts';
import { RicesIndex, loadOrComputeRicesIndex, querySet, randomDemos, ricesCacheKey } from '../src/eval/selection.ts';
import { MediaEncoder } from '../src/eval/media.ts';
import type { CaptionItem, MediaRef } from '../src/eval/datasets/types.ts';
import { tinyModel, tinyTokenizer } from './eval-helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'flamingo-eval-sel-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const mem = (key: string, img: RgbImage): MediaRef => ({ key, files: [], load: () => [img] });
const item = (id: number, media: MediaRef): CaptionItem => ({ kind: 'captioning', id, media, captions: ['x'] });

function randomImage(rng: Rng, size = 32): RgbImage {
  const img = makeImage(size, size);
  for (let i = 0; i < img.data.length; i++) img.data[i] = rng.int(256);
  return img;
}

/** Same image with every byte moved by up to ±amp. */
function perturb(img: RgbImage, rng: Rng, amp: number): RgbImage {
  const out = makeImage(img.width, img.height);
  for (let i = 0; i < img.data.length; i++) out.data[i] = Math.max(0, Math.min(255, img.data[i]! + rng.int(2 * amp + 1) - amp));
  return out;
}

test('random selection: seeded per query, k distinct items, never the query itself', () => {
  const support = Array.from({ length: 20 }, (_, i) => item(i, mem(`m${i}`, makeImage(1, 1))));
  const query = item(100, support[5]!.media); // shares media with support item 5
  const a = randomDemos(support, 4, 7, query);
  assert.deepEqual(randomDemos(support, 4, 7, query), a, 'same seed, same query → same demos');
  assert.equal(new Set(a).size, 4);
  assert.ok(!a.includes(5), 'the query image is excluded');
  const draws = new Set<string>();
  for (let s = 0; s < 20; s++) {
    const d = randomDemos(support, 4, s, query);
    assert.ok(!d.includes(5));
    draws.add(d.join(','));
  }
  assert.ok(draws.size > 15, 'different seeds give different demos');
  const other = item(101, mem('zz', makeImage(1, 1)));
  assert.notDeepEqual(randomDemos(support, 4, 7, other), a, 'different queries draw independently');
  assert.throws(() => randomDemos(support.slice(3, 7), 4, 0, query), /only 3 usable/);
});

test('query set: a seeded subset of the support pool', () => {
  assert.deepEqual(querySet(5, 10, 0), [0, 1, 2, 3, 4]);
  const q = querySet(100, 10, 3);
  assert.equal(new Set(q).size, 10);
  assert.deepEqual(querySet(100, 10, 3), q);
  assert.notDeepEqual(querySet(100, 10, 4), q);
});

test('RicesIndex: top-k by cosine, most similar last, ties to the lower index, query media excluded', () => {
  const f = new Float32Array([1, 0, 0.6, 0.8, 0, 1, 0.8, 0.6]);
  const idx = new RicesIndex(f, 2, ['a', 'b', 'c', 'd']);
  assert.deepEqual(idx.find(new Float32Array([1, 0]), 3), [1, 3, 0]);
  assert.deepEqual(idx.find(new Float32Array([1, 0]), 2, 'a'), [1, 3]);
});

test('RICES with the vision encoder picks the truly nearest support images, nearest last', () => {
  const tok = tinyTokenizer();
  const model = tinyModel(tok, 3);
  const enc = new MediaEncoder(model);
  const rng = new Rng(11);
  const queryImg = randomImage(rng);
  // support: 6 unrelated images, a strongly perturbed copy, a lightly perturbed copy of the query.
  const support = Array.from({ length: 6 }, (_, i) => item(i, mem(`r${i}`, randomImage(rng))));
  support.splice(2, 0, item(50, mem('far-copy', perturb(queryImg, rng, 60))));
  support.splice(5, 0, item(51, mem('near-copy', perturb(queryImg, rng, 4))));
  const feats = enc.embed(support.map((s) => s.media), 3);
  const index = new RicesIndex(Float32Array.from(feats.flatMap((v) => [...v])), feats[0]!.length, support.map((s) => s.media.key));
  const [qf] = enc.embed([mem('query', queryImg)]);
  const picked = index.find(qf!, 2).map((i) => support[i]!.media.key);
  assert.deepEqual(picked, ['far-copy', 'near-copy']);
  // Brute force: the chosen ones are the two largest cosines, in ascending order.
  const sims = feats.map((v) => v.reduce((s, x, j) => s + x * qf![j]!, 0));
  const order = sims.map((s, i) => [s, i] as const).sort((a, b) => b[0] - a[0]);
  assert.deepEqual(index.find(qf!, 4), order.slice(0, 4).map((o) => o[1]).reverse());
  for (const v of feats) assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-5, 'features are L2-normalised');
});

test('RICES feature cache: written once, reused when model and support match, recomputed otherwise', () => {
  const tok = tinyTokenizer();
  const model = tinyModel(tok, 4);
  const rng = new Rng(5);
  const keys = ['a', 'b', 'c'];
  let computed = 0;
  const compute = () => { computed++; return keys.map(() => Float32Array.from({ length: 4 }, () => rng.normal())); };
  const key = ricesCacheKey(model, 'set', keys);
  const first = loadOrComputeRicesIndex(tmp, key, keys, compute);
  assert.equal(first.fromCache, false);
  assert.ok(statSync(first.file).size > 0);
  assert.match(first.file, /\.safetensors$/);
  const second = loadOrComputeRicesIndex(tmp, key, keys, compute);
  assert.equal(second.fromCache, true);
  assert.equal(computed, 1);
  assert.deepEqual([...second.index.features], [...first.index.features]);
  assert.notEqual(ricesCacheKey(tinyModel(tok, 5), 'set', keys), key, 'other weights → other key');
  assert.notEqual(ricesCacheKey(model, 'set', ['a', 'b']), key, 'other support → other key');
});
