import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fashionBinding, fashionPairs, textBinding, BINDING_WORDS } from '../src/data/datasets/binding.ts';
import { sourceFromSpec, type SourceSpec } from '../src/data/datasets/spec.ts';
import { fashionMnistAvailable, fashionMnistByClass } from '../src/data/fashion-mnist.ts';
import type { RawDoc } from '../src/data/datasets/types.ts';
import { COLOURS } from '../src/data/synthetic/vocab.ts';
import { RARE_WORDS } from '../src/data/synthetic/inventories.ts';
import { answersName, answerSpan } from '../src/eval/fast-binding.ts';

const texts = (d: RawDoc): string[] => d.chunks.filter((c) => c.kind === 'text').map((c) => (c as { text: string }).text);

test('text binding: every repeated word keeps the name bound to it earlier in the document', () => {
  const s = textBinding({ name: 'tb' }).open(3);
  for (let i = 0; i < 50; i++) {
    const [text] = texts(s.next());
    const bound = new Map<string, string>();
    const sentences = text!.match(/This is a (\w+) (\w+)\./g)!;
    assert.ok(sentences.length >= 3);
    let repeats = 0;
    for (const m of sentences) {
      const [, word, name] = /This is a (\w+) (\w+)\./.exec(m)!;
      assert.ok(BINDING_WORDS.includes(word!));
      if (bound.has(word!)) { assert.equal(bound.get(word!), name); repeats++; } else bound.set(word!, name!);
    }
    assert.ok(repeats >= 1, 'each document asks for at least one binding');
    assert.equal(new Set(bound.values()).size, bound.size, 'names are distinct within a document');
  }
});

test('sources are deterministic by seed and resumable by cursor', () => {
  const a = textBinding({ name: 'tb' }).open(5);
  const b = textBinding({ name: 'tb' }).open(5);
  const c = textBinding({ name: 'tb' }).open(6);
  const da = [a.next(), a.next(), a.next()].map((d) => texts(d)[0]);
  assert.deepEqual([b.next(), b.next(), b.next()].map((d) => texts(d)[0]), da);
  assert.notDeepEqual(texts(c.next())[0], da[0]);
  const resumed = textBinding({ name: 'tb' }).open(5, { epoch: 0, offset: 2 });
  assert.equal(texts(resumed.next())[0], da[2]);
});

test('fashion binding episodes: "This is a", the image, then its name; the query name was bound in the support', (t) => {
  if (!fashionMnistAvailable()) { t.skip('dataset-fashion-mnist not installed'); return; }
  const s = fashionBinding({ name: 'fb', classes: [0, 1, 2, 3, 4], ways: [5, 5], shots: [1, 1] }).open(1);
  for (let i = 0; i < 10; i++) {
    const d = s.next();
    assert.equal(d.chunks.length, 18, '5 supports + query, each text, image, text');
    d.chunks.forEach((c, k) => assert.equal(c.kind, k % 3 === 1 ? 'image' : 'text'));
    const names = texts(d).filter((_, k) => k % 2 === 1).map((x) => /^ (\w+)\.$/.exec(x)![1]!);
    assert.equal(new Set(names.slice(0, 5)).size, 5);
    assert.ok(names.slice(0, 5).includes(names[5]!));
    const img = (d.chunks[1] as { image: () => { width: number; data: Uint8Array } }).image();
    assert.equal(img.width, 28);
    assert.ok(img.data.some((v) => v > 0));
  }
  assert.throws(() => fashionBinding({ name: 'bad', classes: [0, 1], ways: [3, 3] }), /3-way episodes need 3 classes/);
  assert.throws(() => sourceFromSpec('x', { type: 'fashion-pairs', classes: [12] }), /class indices 0\.\.9/);
});

test('instance episodes: each name is one photo, every occurrence a different view of it; views are reproducible', (t) => {
  if (!fashionMnistAvailable()) { t.skip('dataset-fashion-mnist not installed'); return; }
  type Img = { width: number; height: number; data: Uint8Array };
  const spec: SourceSpec = { type: 'fashion-binding', classes: [0], concepts: 'instances', ways: [3, 3], shots: [2, 2] };
  const a = sourceFromSpec('fi', spec).open(1);
  const b = sourceFromSpec('fi', spec).open(1);
  const diff = (x: Img, y: Img): number => x.data.reduce((s, v, i) => s + Math.abs(v - y.data[i]!), 0) / x.data.length;
  const hist = (x: Img): number[] => {
    const h = new Array<number>(8).fill(0);
    for (let i = 0; i < x.data.length; i += 3) h[x.data[i]! >> 5]! += 3 / x.data.length;
    return h;
  };
  for (let e = 0; e < 4; e++) {
    const d = a.next();
    const again = b.next();
    const names = texts(d).filter((_, k) => k % 2 === 1).map((x) => /^ (\w+)\.$/.exec(x)![1]!);
    const imgs = d.chunks.filter((c) => c.kind === 'image').map((c) => (c as { image: () => Img }).image());
    assert.equal(imgs.length, 3 * 2 + 1);
    imgs.forEach((x) => assert.equal(x.width, 28));
    assert.equal(new Set(names).size, 3, 'three ways (all from one class: ways are photos, not classes)');
    // crops and flips keep a photo's intensity histogram roughly: views of one photo are nearer each other
    let sameD = 0, sameN = 0, otherD = 0, otherN = 0;
    for (let i = 0; i < imgs.length; i++) for (let j = i + 1; j < imgs.length; j++) {
      const h = hist(imgs[i]!).reduce((s, v, k) => s + Math.abs(v - hist(imgs[j]!)[k]!), 0);
      if (names[i] === names[j]) { sameD += h; sameN++; } else { otherD += h; otherN++; }
    }
    assert.ok(sameD / sameN < otherD / otherN, `episode ${e}: views of one photo ${sameD / sameN} vs other photos ${otherD / otherN}`);
    assert.ok(imgs.some((x, i) => i > 0 && names[i] === names[0] && diff(x, imgs[0]!) > 0), 'views are augmented, not copies');
    const imgs2 = again.chunks.filter((c) => c.kind === 'image').map((c) => (c as { image: () => Img }).image());
    imgs.forEach((x, i) => assert.deepEqual(x.data, imgs2[i]!.data, 'same seed, same views'));
  }
  assert.throws(() => sourceFromSpec('x', { ...spec, concepts: 'pixels' } as never), /concepts must be "classes" or "instances"/);
});

test('instance episodes with same_class: all ways of an episode are photos of one class', (t) => {
  if (!fashionMnistAvailable()) { t.skip('dataset-fashion-mnist not installed'); return; }
  type Img = { data: Uint8Array };
  // trousers (1) and sneakers (7) differ in layout: a view is told apart by its nearest class-mean image
  const means = fashionMnistByClass([1, 7], 40).map((c) => {
    const m = new Float32Array(c.images[0]!.data.length);
    for (const im of c.images) im.data.forEach((v, i) => (m[i]! += v / c.images.length));
    return m;
  });
  const classOf = (x: Img): number => {
    const d = means.map((m) => x.data.reduce((s, v, i) => s + (v - m[i]!) ** 2, 0));
    return d[0]! < d[1]! ? 1 : 7;
  };
  const mixedShare = (sameClass: number): number => {
    const s = sourceFromSpec('fs', { type: 'fashion-binding', classes: [1, 7], concepts: 'instances', same_class: sameClass, ways: [4, 4], shots: [1, 1] }).open(5);
    let mixed = 0;
    for (let e = 0; e < 20; e++) {
      const imgs = s.next().chunks.filter((c) => c.kind === 'image').map((c) => (c as { image: () => Img }).image());
      if (new Set(imgs.map(classOf)).size > 1) mixed++;
    }
    return mixed / 20;
  };
  assert.ok(mixedShare(0) >= 0.5, 'without it, four photos of two classes are mostly mixed');
  assert.ok(mixedShare(1) <= 0.1, 'with same_class 1 an episode keeps to one class');
  assert.throws(() => sourceFromSpec('x', { type: 'fashion-binding', same_class: 0.5 }), /same_class applies to instance episodes/);
  assert.throws(() => sourceFromSpec('x', { type: 'fashion-binding', concepts: 'instances', same_class: 2 }), /same_class must be a probability/);
});

test('fashion pairs carry the class name in the caption', (t) => {
  if (!fashionMnistAvailable()) { t.skip('dataset-fashion-mnist not installed'); return; }
  const s = fashionPairs({ name: 'fp', classes: [7] }).open(0);
  for (let i = 0; i < 5; i++) assert.match(texts(s.next())[0]!, /sneaker/);
});

test('training episodes and the evaluation prompt have the same text layout', async (t) => {
  if (!fashionMnistAvailable()) { t.skip('dataset-fashion-mnist not installed'); return; }
  const { docToText } = await import('../src/data/datasets/sample.ts');
  const { bindingPrompt } = await import('../src/eval/fast-binding.ts');
  const { BpeTokenizer } = await import('../src/data/tokenizer.ts');
  const tok = BpeTokenizer.train(['This is a dax.'], { vocabSize: 300 });
  const doc = fashionBinding({ name: 'fb', classes: [0, 1, 2], ways: [3, 3], shots: [1, 1] }).open(2).next();
  const names = texts(doc).filter((x) => x !== 'This is a').map((x) => x.trim().replace(/\.$/, ''));
  const { text, media } = docToText(tok, doc);
  assert.equal(media.length, 4);
  // the training text is the evaluation prompt followed by the answer and the final <|endofchunk|>
  assert.equal(text, `${bindingPrompt(names.slice(0, 3))} ${names[3]}.<|endofchunk|>`);
});

test('text binding with the extended vocabulary draws distinct key words from it', async () => {
  const { BINDING_WORDS_EXTENDED } = await import('../src/data/datasets/binding.ts');
  assert.equal(new Set(BINDING_WORDS_EXTENDED).size, BINDING_WORDS_EXTENDED.length, 'no duplicate key words');
  const s = textBinding({ name: 'tbx', words: 'extended' }).open(4);
  const used = new Set<string>();
  for (let i = 0; i < 200; i++) for (const m of texts(s.next())[0]!.matchAll(/This is a (\w+) \w+\./g)) used.add(m[1]!);
  assert.ok([...used].every((w) => BINDING_WORDS_EXTENDED.includes(w)));
  assert.ok([...used].some((w) => !BINDING_WORDS.includes(w)), 'words beyond the basic list appear');
});

test('vector-key text binding: the fashion episodes\' text, one vector per <image>, a key\'s occurrences nearer each other than other keys', () => {
  const s = textBinding({ name: 'vb', keys: 'vectors', vector_noise: 0.3 }).open(2);
  let nearer = 0, pairs = 0;
  for (let i = 0; i < 30; i++) {
    const d = s.next();
    const [text] = texts(d);
    // "This is a<image> dax." first, then "This is a<|endofchunk|><image> wug." as docToText writes image episodes
    assert.match(text!, /^This is a<image> \w+\.( This is a<\|endofchunk\|><image> \w+\.)+$/);
    const names = [...text!.matchAll(/<image> (\w+)\./g)].map((m) => m[1]!);
    const vs = d.keyVectors!(48);
    assert.equal(vs.length, names.length);
    assert.deepEqual(d.keyVectors!(48), vs, 'deterministic');
    for (const v of vs) assert.ok(Math.abs(Math.hypot(...v) - 2) < 1e-4, 'default norm 2');
    const cos = (a: Float32Array, b: Float32Array) => a.reduce((acc, x, j) => acc + x * b[j]!, 0) / 4;
    // for every repeated key: its earlier occurrence is the most similar among all earlier occurrences of other keys
    for (let j = 0; j < names.length; j++) {
      const same = names.findIndex((n, k) => k < j && n === names[j]);
      if (same < 0) continue;
      pairs++;
      const others = names.map((n, k) => (k < j && n !== names[j] ? cos(vs[k]!, vs[j]!) : -Infinity));
      if (cos(vs[same]!, vs[j]!) > Math.max(...others)) nearer++;
    }
  }
  assert.ok(pairs > 20 && nearer / pairs > 0.9, `${nearer}/${pairs} repeated keys nearest to their own earlier occurrence`);
  assert.throws(() => textBinding({ name: 'vb', keys: 'pixels' as never }), /keys must be "words" or "vectors"/);
  assert.throws(() => sourceFromSpec('vb', { type: 'text-binding', keys: 'vectors', vector_norm: -1 }), /vector_norm must be > 0/);
});

test('vector-key text binding: a vector_norm range gives each episode one norm from it, spread over the range', () => {
  const s = textBinding({ name: 'vn', keys: 'vectors', vector_norm: [0.5, 2.5] }).open(4);
  const norms: number[] = [];
  for (let i = 0; i < 40; i++) {
    const vs = s.next().keyVectors!(32).map((v) => Math.hypot(...v));
    for (const n of vs) assert.ok(Math.abs(n - vs[0]!) < 1e-4, 'one norm per episode');
    norms.push(vs[0]!);
  }
  assert.ok(norms.every((n) => n >= 0.5 - 1e-4 && n <= 2.5 + 1e-4), 'within the range');
  assert.ok(Math.min(...norms) < 1 && Math.max(...norms) > 2, `spread over the range: ${Math.min(...norms)}..${Math.max(...norms)}`);
  for (const bad of [[2, 1], [0, 1], [1], 'big'] as unknown[]) {
    assert.throws(() => sourceFromSpec('vn', { type: 'text-binding', keys: 'vectors', vector_norm: bad as never }), /vector_norm must be > 0 \(or a range/);
  }
});

test('scene binding episodes: every occurrence of a name shows the same colour, the ways differ, renders are reproducible', () => {
  type Img = { width: number; height: number; data: Uint8Array };
  const palette = Object.entries(COLOURS);
  // fully covered object pixels carry the exact palette colour; one object per scene, so the most frequent wins
  const colourOf = (img: Img): string => {
    const counts = new Map<string, number>();
    for (let p = 0; p < img.width * img.height; p++) {
      const [r, g, b] = [img.data[3 * p]!, img.data[3 * p + 1]!, img.data[3 * p + 2]!];
      const hit = palette.find(([, c]) => c[0] === r && c[1] === g && c[2] === b);
      if (hit) counts.set(hit[0], (counts.get(hit[0]) ?? 0) + 1);
    }
    return [...counts].sort((a, b) => b[1] - a[1])[0]![0];
  };
  const src = sourceFromSpec('sb', { type: 'scene-binding', ways: [3, 4], shots: [2, 3] });
  const s = src.open(4);
  let sameShapeDifferentLook = 0;
  for (let i = 0; i < 8; i++) {
    const d = s.next();
    const imgs = d.chunks.filter((c) => c.kind === 'image').map((c) => (c as { image: () => Img }).image());
    const names = texts(d).filter((_, k) => k % 2 === 1).map((x) => /^ (\w+)\.$/.exec(x)![1]!);
    assert.equal(imgs.length, names.length);
    assert.ok(names.slice(0, -1).includes(names.at(-1)!), 'the query name was bound in the support');
    const byName = new Map<string, Img[]>();
    names.forEach((n, k) => byName.set(n, [...(byName.get(n) ?? []), imgs[k]!]));
    assert.ok(byName.size >= 3 && byName.size <= 4);
    for (const group of byName.values()) {
      assert.equal(new Set(group.map(colourOf)).size, 1, 'one concept, one colour');
      assert.ok(group.every((im) => im.width === 32 && im.height === 32));
      if (group.length > 1 && Buffer.compare(Buffer.from(group[0]!.data), Buffer.from(group[1]!.data)) !== 0) sameShapeDifferentLook++;
    }
  }
  assert.ok(sameShapeDifferentLook > 0, 'occurrences are different renderings, not copies');
  const again = sourceFromSpec('sb', { type: 'scene-binding', ways: [3, 4], shots: [2, 3] }).open(4).next();
  const first = src.open(4).next();
  const img = (d: RawDoc): Uint8Array => (d.chunks.find((c) => c.kind === 'image') as { image: () => Img }).image().data;
  assert.deepEqual(img(again), img(first));
  assert.throws(() => sourceFromSpec('x', { type: 'scene-binding', ways: [2, 500] }), /500-way episodes need 500 concepts/);
});

test('fast-binding answers: the whole bound name (several words, capitals, digits), not a longer word', () => {
  assert.ok(answersName(' ploub.', 'ploub'));
  assert.ok(answersName('ploub This is', 'ploub'));
  assert.ok(answersName(' Zorp7 blicket.<|endofchunk|>', 'Zorp7 blicket'));
  assert.ok(!answersName(' ploubx.', 'ploub'));
  assert.ok(!answersName(' Zorp7 blick', 'Zorp7 blicket'));
  assert.ok(!answersName(' zorp7.', 'Zorp7'));
  assert.ok(!answersName(' Zorp71.', 'Zorp7'));
  assert.ok(!answersName('', 'dax'));
  assert.equal(answerSpan(' wug zib. This is a'), 'wug zib');
  assert.equal(answerSpan(' wug<|endofchunk|>This'), 'wug');
});

test('binding episodes with another inventory: same layout, names from that inventory', (t) => {
  if (!fashionMnistAvailable()) return t.skip('Fashion-MNIST not installed');
  const doc = fashionBinding({ name: 'fb', classes: [0, 1, 2], ways: [3, 3], shots: [1, 1], names: 'rare' }).open(2).next();
  const names = texts(doc).filter((x) => x !== 'This is a').map((x) => x.trim().replace(/\.$/, ''));
  assert.equal(names.length, 4);
  for (const n of names) assert.ok(RARE_WORDS.includes(n), n);
  assert.throws(() => fashionBinding({ name: 'fb', names: 'nope' as never }), /fb.*names must be one of/);
});

test('bindingEpisode: one seed gives the same classes, images and order with every inventory (names differ)', async () => {
  const { bindingEpisode } = await import('../src/eval/fast-binding.ts');
  const { Rng } = await import('../src/engine/rng.ts');
  const img = (v: number) => ({ width: 1, height: 1, data: new Uint8Array([v, v, v]) });
  const classes = Array.from({ length: 7 }, (_, c) => ({ id: `c${c}`, images: Array.from({ length: 6 }, (_, i) => img(c * 10 + i)) }));
  const a = new Rng(11), b = new Rng(11);
  for (let e = 0; e < 20; e++) {
    const ga = bindingEpisode(a, classes, 5, 2, 'generator');
    const gb = bindingEpisode(b, classes, 5, 2, 'letters');
    assert.deepEqual(gb.images, ga.images, `episode ${e}: same images`);
    assert.equal(gb.queryClass, ga.queryClass);
    assert.deepEqual(Object.keys(gb.names), Object.keys(ga.names));
    // the prompts differ only where the names are: mapping one episode's names onto the other's gives it
    let mapped = gb.prompt;
    for (const [cls, name] of Object.entries(gb.names)) mapped = mapped.split(` ${name}.`).join(` ${ga.names[cls]}.`);
    assert.equal(mapped, ga.prompt, `episode ${e}`);
    assert.ok(Object.values(gb.names).every((n) => /^[a-z]{3,8}$/.test(n)), 'letters names');
    assert.notDeepEqual(Object.values(gb.names), Object.values(ga.names));
  }
  // the episodes still differ from one another
  const c = new Rng(12);
  assert.notDeepEqual(bindingEpisode(c, classes, 5, 2).images, bindingEpisode(new Rng(11), classes, 5, 2).images);
});
