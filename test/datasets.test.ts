import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { BpeTokenizer } from '../src/data/tokenizer.ts';
import { FlamingoProcessor } from '../src/data/processor.ts';
import { encodePng, makeImage, type RgbImage } from '../src/data/image.ts';
import {
  buildSample, collateSamples, fileSource, readTar, writeTar, groupByKey, syntheticDocuments, syntheticPairs, syntheticVideos,
  textListSource, truncateTokens, subSeed, IGNORE_INDEX, DatasetError, type DocSource, type RawDoc, type Sample, type SampleOptions,
} from '../src/data/datasets/index.ts';

const tok = BpeTokenizer.train(
  ['a red circle on the left', 'two blue squares', 'hello world, this is a page about shapes', 'caption text here'],
  { vocabSize: 300 },
);
const IMG = tok.imageTokenId;
const EOC = tok.eocTokenId;
const S = 8;
const opts = (o: Partial<SampleOptions> = {}): SampleOptions => ({ maxImages: 5, maxTokens: 256, imageSize: S, ...o });

/** A solid image whose red channel encodes `v`, so tests can tell which image went where. */
function solid(v: number, size = S): RgbImage {
  const img = makeImage(size, size);
  for (let i = 0; i < size * size; i++) img.data[3 * i] = v;
  return img;
}
const lazy = (v: number) => () => solid(v);
/** Red-channel byte of a preprocessed (CLIP-normalised) image. */
const redOf = (px: Float32Array) => Math.round((px[0]! * 0.26862954 + 0.48145466) * 255) + 0;

function take(src: DocSource, seed: number, n: number): RawDoc[] {
  const s = src.open(seed);
  return Array.from({ length: n }, () => s.next());
}

function fingerprint(samples: Sample[]): string {
  return samples.map((s) => `${s.tokens.join(',')}|${s.media.map((m) => m.map((f) => f.reduce((a, x) => a + x, 0).toFixed(3)).join('/')).join(';')}`).join('\n');
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'flamingo-ds-'));
}

test('synthetic sources: same seed gives the same batches, another seed different ones', () => {
  for (const src of [syntheticDocuments(), syntheticPairs(), syntheticVideos({ frames: 3, size: 16 })]) {
    const build = (seed: number) => fingerprint(take(src, seed, 4).map((d) => buildSample(tok, d, opts({ videoFrames: 3 }))));
    assert.equal(build(7), build(7), src.name);
    assert.notEqual(build(7), build(8), src.name);
  }
});

test('streams resume from a cursor exactly where they stopped', () => {
  const src = syntheticPairs();
  const a = src.open(3);
  const first = Array.from({ length: 5 }, () => a.next().key);
  const cur = a.cursor;
  const rest = Array.from({ length: 3 }, () => a.next().key);
  const b = src.open(3, cur);
  assert.deepEqual(Array.from({ length: 3 }, () => b.next().key), rest);
  assert.notDeepEqual(first.slice(0, 3), rest);

  const list = textListSource('t', ['a', 'b', 'c', 'd', 'e']);
  const s = list.open(1);
  const seq = Array.from({ length: 12 }, () => (s.next().chunks[0] as { text: string }).text);
  // every epoch is a permutation of the list
  assert.deepEqual([...seq.slice(0, 5)].sort(), ['a', 'b', 'c', 'd', 'e']);
  assert.deepEqual([...seq.slice(5, 10)].sort(), ['a', 'b', 'c', 'd', 'e']);
  assert.deepEqual(s.cursor, { epoch: 2, offset: 2 });
  const r = list.open(1, { epoch: 1, offset: 3 });
  assert.deepEqual(Array.from({ length: 4 }, () => (r.next().chunks[0] as { text: string }).text), seq.slice(8, 12));
});

test('interleaved: <image> per image, <|endofchunk|> after the text following each image', () => {
  const doc: RawDoc = {
    key: 'd',
    chunks: [
      { kind: 'text', text: 'hello world' },
      { kind: 'image', image: lazy(10) },
      { kind: 'text', text: 'a red circle' },
      { kind: 'image', image: lazy(20) },
      { kind: 'text', text: 'two blue squares' },
    ],
  };
  const s = buildSample(tok, doc, opts());
  assert.equal(tok.decode(s.tokens), 'hello world<image>a red circle<|endofchunk|><image>two blue squares<|endofchunk|>');
  assert.deepEqual(s.media.map((m) => redOf(m[0]!)), [10, 20]);
});

test('interleaved: images beyond the limit are dropped with their marker, text kept', () => {
  const doc: RawDoc = {
    key: 'd',
    chunks: [1, 2, 3, 4].flatMap((i) => [{ kind: 'image' as const, image: lazy(i * 10) }, { kind: 'text' as const, text: `caption ${i}` }]),
  };
  let loaded = 0;
  const counted: RawDoc = { key: 'd', chunks: doc.chunks.map((c) => (c.kind === 'image' ? { kind: 'image', image: () => (loaded++, c.image()) } : c)) };
  const s = buildSample(tok, counted, opts({ maxImages: 2 }));
  assert.equal(s.tokens.filter((t) => t === IMG).length, 2);
  assert.equal(tok.decode(s.tokens), '<image>caption 1<|endofchunk|><image>caption 2 caption 3 caption 4<|endofchunk|>');
  assert.deepEqual(s.media.map((m) => redOf(m[0]!)), [10, 20]);
  assert.equal(loaded, 2, 'dropped images are never decoded');
});

test('interleaved: truncation at L tokens; an <image> whose text is cut off is dropped with its pixels', () => {
  const doc: RawDoc = {
    key: 'd',
    chunks: [
      { kind: 'image', image: lazy(10) },
      { kind: 'text', text: 'hello world' },
      { kind: 'image', image: lazy(20) },
      { kind: 'text', text: 'two blue squares' },
    ],
  };
  const full = buildSample(tok, doc, opts());
  const secondImage = full.tokens.lastIndexOf(IMG);
  // cut right after the second marker: the marker has no text left
  const cut = buildSample(tok, doc, opts({ maxTokens: secondImage + 1 }));
  assert.equal(cut.tokens.length, secondImage, 'trailing marker removed');
  assert.deepEqual(cut.tokens, full.tokens.slice(0, secondImage));
  assert.equal(cut.tokens[cut.tokens.length - 1], EOC);
  assert.deepEqual(cut.media.map((m) => redOf(m[0]!)), [10]);
  // one text token after it: the image stays
  const kept = buildSample(tok, doc, opts({ maxTokens: secondImage + 2 }));
  assert.equal(kept.tokens.length, secondImage + 2);
  assert.equal(kept.media.length, 2);
  // pure helper
  assert.deepEqual(truncateTokens([IMG, 5, 6, EOC, IMG, 7], IMG, 5), [IMG, 5, 6, EOC]);
  assert.deepEqual(truncateTokens([5, IMG, IMG], IMG, 10), [5]);
});

test('labels: pad and <image> positions are -100, targets are labels shifted by one', () => {
  const processor = new FlamingoProcessor(tok, { imageSize: S });
  const samples = [
    buildSample(tok, { key: 'a', chunks: [{ kind: 'image', image: lazy(1) }, { kind: 'text', text: 'a red circle on the left' }] }, opts()),
    buildSample(tok, { key: 'b', chunks: [{ kind: 'image', image: lazy(2) }, { kind: 'text', text: 'hi' }] }, opts()),
  ];
  const b = collateSamples(processor, samples);
  const [B, L] = b.inputIds.shape as [number, number];
  assert.equal(B, 2);
  const ids = b.inputIds.i32;
  const mask = b.attentionMask.i32;
  const labels = b.labels.i32;
  const targets = b.targets.i32;
  let pads = 0;
  for (let i = 0; i < B * L; i++) {
    if (!mask[i]) {
      pads++;
      assert.equal(ids[i], tok.padTokenId);
      assert.equal(labels[i], IGNORE_INDEX);
    } else if (ids[i] === IMG) assert.equal(labels[i], IGNORE_INDEX);
    else assert.equal(labels[i], ids[i]);
  }
  assert.ok(pads > 0, 'second row is right-padded');
  assert.equal(mask[L], 1, 'right padding: real tokens first');
  for (let r = 0; r < B; r++) {
    for (let t = 0; t < L - 1; t++) assert.equal(targets[r * L + t], labels[r * L + t + 1]);
    assert.equal(targets[r * L + L - 1], IGNORE_INDEX);
  }
  assert.equal(b.numTokens, samples[0]!.tokens.length + samples[1]!.tokens.length);
  assert.deepEqual(b.visionX!.shape, [2, 1, 1, 3, S, S]);
});

test('video items: F frames per media, visionX (B, T, F, 3, S, S)', () => {
  const processor = new FlamingoProcessor(tok, { imageSize: S });
  const src = syntheticVideos({ frames: 6, size: 16 });
  const docs = take(src, 1, 2);
  const samples = docs.map((d) => buildSample(tok, d, opts({ videoFrames: 3 })));
  for (const s of samples) {
    assert.equal(s.media.length, 1);
    assert.equal(s.media[0]!.length, 3);
  }
  const b = collateSamples(processor, samples);
  assert.deepEqual(b.visionX!.shape, [2, 1, 3, 3, S, S]);
  // frame f of item 0 of row 1 lands at its slot
  const per = 3 * S * S;
  assert.deepEqual(Array.from(b.visionX!.f32.subarray((1 * 3 + 2) * per, (1 * 3 + 3) * per)), Array.from(samples[1]!.media[0]![2]!));
});

test('video QA pairs: the same videos as the descriptions, one of each video\'s questions with its answer', async () => {
  const { videoAt } = await import('../src/data/synthetic/index.ts');
  const qa = syntheticVideos({ name: 'vq', frames: 4, size: 16, text: 'qa' }).open(3);
  for (let i = 0; i < 12; i++) {
    const d = qa.next();
    const v = videoAt(subSeed(3, 'generator', 'vq'), i, { frames: 4, size: 16 });
    assert.equal(d.chunks[0]!.kind, 'video');
    const text = (d.chunks[1] as { text: string }).text;
    const m = /^Question: (.+\?) Answer: (.+)$/.exec(text);
    assert.ok(m, text);
    assert.ok(v.qa.some((q) => q.question === m[1] && q.answer === m[2]), `${text} is one of the video's own questions`);
  }
  assert.throws(() => syntheticVideos({ name: 'vq', text: 'story' as never }), /vq: text must be "description" or "qa"/);
});

test('QA pairs with varied labels (images and videos): the same question and answer after labels from the documents\' lists', async () => {
  const { QUESTION_LABELS, ANSWER_LABELS } = await import('../src/data/synthetic/index.ts');
  const makers = {
    videos: (labels?: 'varied') => syntheticVideos({ name: 'vq', frames: 4, size: 16, text: 'qa', labels }),
    pairs: (labels?: 'varied') => syntheticPairs({ name: 'vq', text: 'qa', labels }),
  };
  for (const [kind, make] of Object.entries(makers)) {
    const fixed = make().open(5);
    const varied = make('varied').open(5);
    const seenLabels = new Set<string>();
    let tight = 0;
    for (let i = 0; i < 40; i++) {
      const [, q, a] = /^Question: (.+\?) Answer: (.+)$/.exec((fixed.next().chunks[1] as { text: string }).text)!;
      const text = (varied.next().chunks[1] as { text: string }).text;
      const ql = QUESTION_LABELS.find((l) => text.startsWith(l));
      assert.ok(ql, `${kind}: ${text} starts with a question label`);
      const rest = text.slice(ql.length);
      const sep = rest.startsWith(' ') ? ' ' : '';
      if (sep === '') tight++;
      const al = ANSWER_LABELS.find((l) => rest === `${sep}${q} ${l}${sep}${a}`);
      assert.ok(al, `${kind}: ${text} asks ${q} and answers ${a} after an answer label`);
      seenLabels.add(`${ql}|${al}`);
    }
    assert.ok(seenLabels.size >= 10, `${kind}: labels vary (${seenLabels.size} pairs of labels)`);
    assert.ok(tight > 5 && tight < 35, `${kind}: both separators occur (${tight} tight of 40)`);
  }
  assert.throws(() => syntheticVideos({ name: 'vq', labels: 'varied' }), /vq: labels only applies to text: "qa"/);
  assert.throws(() => syntheticPairs({ name: 'vq', text: 'alt', labels: 'varied' }), /vq: labels only applies to text: "qa"/);
  assert.throws(() => syntheticVideos({ name: 'vq', text: 'qa', labels: 'odd' as never }), /vq: labels must be "fixed" or "varied"/);
});

test('tar: reads what writeTar writes and what GNU tar writes; rejects corrupt headers', () => {
  const enc = new TextEncoder();
  const entries = [
    { name: '000001.json', data: enc.encode('{"text":"one"}') },
    { name: '000001.png', data: new Uint8Array(encodePng(solid(5))) },
    { name: 'sub/000002.json', data: enc.encode('{"text":"two"}') },
    { name: 'sub/000002.png', data: new Uint8Array(700).fill(7) },
  ];
  const buf = writeTar(entries);
  const back = readTar(buf);
  assert.deepEqual(back.map((e) => e.name), entries.map((e) => e.name));
  back.forEach((e, i) => assert.deepEqual(Array.from(e.data), Array.from(entries[i]!.data)));
  const groups = groupByKey(back);
  assert.deepEqual(groups.map((g) => [g.key, [...g.members.keys()]]), [['000001', ['json', 'png']], ['sub/000002', ['json', 'png']]]);

  const bad = buf.slice();
  bad[10] ^= 0xff;
  assert.throws(() => readTar(bad, 'bad.tar'), (e: unknown) => e instanceof DatasetError && /checksum/.test((e as Error).message));

  const dir = tmp();
  try {
    const long = 'x'.repeat(120);
    mkdirSync(join(dir, 'src', long), { recursive: true });
    writeFileSync(join(dir, 'src', 'k1.json'), '{"text":"gnu"}');
    writeFileSync(join(dir, 'src', long, 'k2.txt'), 'deep');
    const r = spawnSync('tar', ['-cf', join(dir, 'gnu.tar'), '-C', join(dir, 'src'), '.'], { encoding: 'utf8' });
    if (r.status !== 0) return; // no usable tar binary: the writer round trip above still ran
    const got = readTar(new Uint8Array(readFileSync(join(dir, 'gnu.tar'))), 'gnu.tar');
    const names = got.map((e) => e.name.replace(/^\.\//, '')).sort();
    assert.deepEqual(names, [`${long}/k2.txt`, 'k1.json'].sort());
    assert.equal(new TextDecoder().decode(got.find((e) => e.name.endsWith('k2.txt'))!.data), 'deep');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A folder of N pair records split into shards: JSONL shards, tar shards, and one plain folder. */
function writeDatasets(dir: string, n: number, shards: number): { jsonl: string; tars: string; folder: string } {
  const jsonl = join(dir, 'jsonl');
  const tars = join(dir, 'tars');
  const folder = join(dir, 'folder');
  for (const d of [jsonl, tars, folder, join(jsonl, 'img')]) mkdirSync(d, { recursive: true });
  const enc = new TextEncoder();
  for (let s = 0; s < shards; s++) {
    const lines: string[] = [];
    const members: { name: string; data: Uint8Array }[] = [];
    for (let i = s; i < n; i += shards) {
      const png = new Uint8Array(encodePng(solid(i)));
      writeFileSync(join(jsonl, 'img', `${i}.png`), png);
      lines.push(JSON.stringify({ image: `img/${i}.png`, text: `item ${i}` }));
      const key = String(i).padStart(6, '0');
      members.push({ name: `${key}.json`, data: enc.encode(JSON.stringify({ text: `item ${i}` })) }, { name: `${key}.png`, data: png });
      writeFileSync(join(folder, `${key}.json`), JSON.stringify({ text: `item ${i}` }));
      writeFileSync(join(folder, `${key}.png`), png);
    }
    writeFileSync(join(jsonl, `shard-${String(s).padStart(6, '0')}.jsonl`), lines.join('\n') + '\n');
    writeFileSync(join(tars, `shard-${String(s).padStart(6, '0')}.tar`), writeTar(members));
  }
  return { jsonl, tars, folder };
}

const itemOf = (d: RawDoc) => Number((d.chunks[1] as { text: string }).text.split(' ')[1]);

test('file datasets: JSONL shards, tar shards and plain folders give the same records; order is a function of (seed, epoch)', () => {
  const dir = tmp();
  try {
    const n = 12;
    const paths = writeDatasets(dir, n, 3);
    for (const path of [paths.jsonl, paths.tars, paths.folder]) {
      const src = fileSource({ format: 'pairs', path });
      const s = src.open(5);
      const epoch0 = Array.from({ length: n }, () => s.next());
      const epoch1 = Array.from({ length: n }, () => itemOf(s.next()));
      const items0 = epoch0.map(itemOf);
      assert.deepEqual([...items0].sort((a, b) => a - b), [...Array(n).keys()], path);
      assert.deepEqual([...epoch1].sort((a, b) => a - b), [...Array(n).keys()], path);
      assert.notDeepEqual(items0, epoch1, `${path}: epochs are reshuffled`);
      // images come from the right record
      for (const d of epoch0.slice(0, 3)) {
        const smp = buildSample(tok, d, opts());
        assert.equal(redOf(smp.media[0]![0]!), itemOf(d), path);
      }
      const again = src.open(5);
      assert.deepEqual(Array.from({ length: n }, () => itemOf(again.next())), items0, `${path}: same seed, same order`);
      const other = src.open(6);
      assert.notDeepEqual(Array.from({ length: n }, () => itemOf(other.next())), items0, `${path}: other seed, other order`);
      const resumed = src.open(5, { epoch: 1, offset: 4 });
      assert.deepEqual(Array.from({ length: 3 }, () => itemOf(resumed.next())), epoch1.slice(4, 7), `${path}: resume mid-epoch`);
    }
    // workers split the shards of each epoch without overlap
    const w0 = fileSource({ format: 'pairs', path: paths.tars, worker: 0, numWorkers: 2 }).open(1);
    const w1 = fileSource({ format: 'pairs', path: paths.tars, worker: 1, numWorkers: 2 }).open(1);
    const a = new Set<number>();
    const b = new Set<number>();
    // shards hold 4 records each; worker 0 gets 2 shards and worker 1 one shard in epoch 0
    for (let i = 0; i < 4; i++) { a.add(itemOf(w0.next())); b.add(itemOf(w1.next())); }
    assert.equal([...a].filter((x) => b.has(x)).length, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file formats: chunks, MMC4, video frames and errors that name the record', () => {
  const dir = tmp();
  try {
    for (let i = 0; i < 4; i++) writeFileSync(join(dir, `${i}.png`), encodePng(solid(40 + i)));
    mkdirSync(join(dir, 'clip'));
    for (let i = 0; i < 5; i++) writeFileSync(join(dir, 'clip', `f${i}.png`), encodePng(solid(i)));
    writeFileSync(join(dir, 'inter.jsonl'), [
      JSON.stringify({ chunks: [{ text: 'hello world' }, { image: '0.png' }, { text: 'a red circle' }, { image: '1.png' }, { text: 'two blue squares' }] }),
      JSON.stringify({ text_list: ['hello world', 'a red circle', 'two blue squares'], image_info: [{ image_name: '2.png', matched_text_index: 1 }, { image_name: '3.png', matched_text_index: 2 }] }),
    ].join('\n'));
    const s = fileSource({ format: 'interleaved', path: join(dir, 'inter.jsonl'), shuffle: false }).open(0);
    const a = buildSample(tok, s.next(), opts());
    assert.equal(tok.decode(a.tokens), 'hello world<image>a red circle<|endofchunk|><image>two blue squares<|endofchunk|>');
    assert.deepEqual(a.media.map((m) => redOf(m[0]!)), [40, 41]);
    const b = buildSample(tok, s.next(), opts());
    assert.equal(tok.decode(b.tokens), 'hello world<image>a red circle<|endofchunk|><image>two blue squares<|endofchunk|>');
    assert.deepEqual(b.media.map((m) => redOf(m[0]!)), [42, 43]);

    writeFileSync(join(dir, 'video.jsonl'), [
      JSON.stringify({ frames_dir: 'clip', text: 'a moving thing' }),
      JSON.stringify({ frames: ['clip/f0.png', 'clip/f4.png'], text: 'two frames' }),
    ].join('\n'));
    const v = fileSource({ format: 'video', path: join(dir, 'video.jsonl'), shuffle: false }).open(0);
    const v1 = buildSample(tok, v.next(), opts({ videoFrames: 3 }));
    assert.equal(v1.tokens.filter((t) => t === IMG).length, 1);
    assert.deepEqual(v1.media[0]!.map(redOf), [0, 1, 3]);
    const v2 = buildSample(tok, v.next(), opts({ videoFrames: 3 }));
    assert.deepEqual(v2.media[0]!.map(redOf), [0, 4, 4], 'short clips repeat their last frame');

    writeFileSync(join(dir, 'bad.jsonl'), '{"text": "fine"}\n{"image": 3}\n');
    const bad = fileSource({ format: 'pairs', path: join(dir, 'bad.jsonl'), shuffle: false }).open(0);
    assert.throws(() => bad.next(), (e: unknown) => e instanceof DatasetError && /bad\.jsonl:1/.test((e as Error).message));
    // a bad record is fatal: the stream does not silently skip it
    assert.throws(() => bad.next(), (e: unknown) => e instanceof DatasetError && /bad\.jsonl:1/.test((e as Error).message));
    const second = fileSource({ format: 'pairs', path: join(dir, 'bad.jsonl'), shuffle: false }).open(0, { epoch: 0, offset: 1 });
    assert.throws(() => second.next(), (e: unknown) => e instanceof DatasetError && /bad\.jsonl:2.*"text"/.test((e as Error).message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('video QA pages (per_document): 1–n videos, each with one of its own questions, one template per page', async () => {
  const { videoAt, QUESTION_LABELS } = await import('../src/data/synthetic/index.ts');
  const src = syntheticVideos({ name: 'vp', frames: 3, size: 16, text: 'qa', labels: 'varied', per_document: 3 }).open(2);
  const counts = new Set<number>();
  for (let i = 0; i < 16; i++) {
    const d = src.next();
    const m = d.chunks.length / 2;
    assert.ok(Number.isInteger(m) && m >= 1 && m <= 3, `${m} videos`);
    counts.add(m);
    const labels = new Set<string>();
    for (let j = 0; j < m; j++) {
      assert.equal(d.chunks[2 * j]!.kind, 'video');
      const text = (d.chunks[2 * j + 1] as { text: string }).text;
      const v = videoAt(subSeed(2, 'generator', 'vp'), i * 3 + j, { frames: 3, size: 16 });
      const q = v.qa.find((x) => text.includes(x.question) && text.endsWith(x.answer));
      assert.ok(q, `${text}: a question of video ${i * 3 + j}`);
      labels.add(text.replace(q.question, '').slice(0, -q.answer.length));
      assert.ok(QUESTION_LABELS.some((l) => text.startsWith(l)));
    }
    assert.equal(labels.size, 1, `one template per page: ${[...labels].join(' | ')}`);
  }
  assert.deepEqual([...counts].sort(), [1, 2, 3]);
  assert.throws(() => syntheticVideos({ name: 'vp', per_document: 2 }), /vp: per_document only applies to text: "qa"/);
  assert.throws(() => syntheticVideos({ name: 'vp', text: 'qa', per_document: 0 }), /vp: per_document must be an integer in \[1, 16\]/);
});
