import { test } from 'node:test';
import { sourceFromSpec } from '../src/data/datasets/spec.ts';
import assert from 'node:assert/strict';
import {
  COLOURS, COLOUR_NAMES, DEFAULT_SYNTHETIC_CONFIG, END_OF_CHUNK_TOKEN, IMAGE_TOKEN, POSITIONS, SHAPES, SyntheticDataError,
  ANSWER_LABELS, CAPTION_LABELS, createRandom, documentAt, documents, episodeToDocument, fastBindingEpisode, fastBindingEpisodes, fieldValue, imageTextPairs, imageTextPairAt, shapeVariantPairAt, QUESTION_LABELS,
  interleavedToPrompt, inventNames, longDescription, altText, qaPairs, captionInStyle, captionVariants, phrasedAnswer, CAPTION_TEMPLATES, queryPrompt, renderScene, resolveConfig, sampleScene,
  sampleVideo, shapeCategories, videoAt, type ColourName, type ImageCategory, type InterleavedDocument, type RgbImage, type Scene,
} from '../src/data/synthetic/index.ts';

// ---------- pixel helpers (independent of the renderer's internals) ----------

/** Object colour of a pixel, or null when it is not (almost exactly) one of the palette colours. */
function colourAt(img: RgbImage, x: number, y: number, tol = 30): ColourName | null {
  const i = (y * img.width + x) * 3;
  for (const name of COLOUR_NAMES) {
    const c = COLOURS[name];
    const d = Math.hypot(img.data[i]! - c[0], img.data[i + 1]! - c[1], img.data[i + 2]! - c[2]);
    if (d < tol) return name;
  }
  return null;
}

interface Blob { n: number; cx: number; cy: number }
/** Pixels of one colour inside a rectangle (pixel units, inclusive-exclusive): count and centroid. */
function blob(img: RgbImage, colour: ColourName, rect = { x0: 0, y0: 0, x1: img.width, y1: img.height }): Blob {
  let n = 0, sx = 0, sy = 0;
  for (let y = Math.max(0, Math.floor(rect.y0)); y < Math.min(img.height, Math.ceil(rect.y1)); y++) {
    for (let x = Math.max(0, Math.floor(rect.x0)); x < Math.min(img.width, Math.ceil(rect.x1)); x++) {
      if (colourAt(img, x, y) === colour) { n++; sx += x + 0.5; sy += y + 0.5; }
    }
  }
  return { n, cx: sx / n, cy: sy / n };
}

/**
 * Largest 8-connected region of one colour. Anti-aliased edges of *other* objects can blend into a palette colour
 * (black over a light page passes near grey), so centroids use the object's main region, not every matching pixel.
 */
function mainRegion(img: RgbImage, colour: ColourName): Blob {
  const { width: w, height: h } = img;
  const seen = new Uint8Array(w * h);
  let best: Blob = { n: 0, cx: NaN, cy: NaN };
  for (let start = 0; start < w * h; start++) {
    if (seen[start] || colourAt(img, start % w, Math.floor(start / w)) !== colour) continue;
    const stack = [start];
    seen[start] = 1;
    let n = 0, sx = 0, sy = 0;
    while (stack.length) {
      const p = stack.pop()!;
      const x = p % w, y = Math.floor(p / w);
      n++; sx += x + 0.5; sy += y + 0.5;
      for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
        const nx = x + dx, ny = y + dy, q = ny * w + nx;
        if (nx < 0 || ny < 0 || nx >= w || ny >= h || seen[q]) continue;
        if (colourAt(img, nx, ny) !== colour) continue;
        seen[q] = 1;
        stack.push(q);
      }
    }
    if (n > best.n) best = { n, cx: sx / n, cy: sy / n };
  }
  return best;
}

function cellRect(size: number, col: number, row: number) {
  return { x0: (col * size) / 3, y0: (row * size) / 3, x1: ((col + 1) * size) / 3, y1: ((row + 1) * size) / 3 };
}

function scenes(seed: number, n: number, world = {}): Scene[] {
  const rng = createRandom(seed);
  return Array.from({ length: n }, () => sampleScene(rng, { world }));
}

const textOf = (doc: InterleavedDocument) => interleavedToPrompt(doc).text;

// ---------- determinism ----------

test('same seed gives byte-identical documents, pairs and videos; different seeds differ', () => {
  const a = [...documents(11, { count: 12 })];
  const b = [...documents(11, { count: 12 })];
  const c = [...documents(12, { count: 12 })];
  for (let i = 0; i < a.length; i++) {
    const pa = interleavedToPrompt(a[i]!), pb = interleavedToPrompt(b[i]!);
    assert.equal(pa.text, pb.text);
    assert.deepEqual(a[i]!.scenes, b[i]!.scenes);
    assert.equal(pa.images.length, pb.images.length);
    pa.images.forEach((im, k) => assert.ok(Buffer.from(im.data).equals(Buffer.from(pb.images[k]!.data)), `doc ${i} image ${k}`));
  }
  assert.notDeepEqual(a.map(textOf), c.map(textOf));

  // Random access equals the stream, and resuming at `start` continues it.
  assert.equal(textOf(documentAt(11, 7)), textOf(a[7]!));
  assert.equal(textOf([...documents(11, { start: 5, count: 1 })][0]!), textOf(a[5]!));

  const p1 = [...imageTextPairs(3, { count: 5 })], p2 = [...imageTextPairs(3, { count: 5 })];
  assert.deepEqual(p1.map((p) => [p.caption, p.altText, p.description]), p2.map((p) => [p.caption, p.altText, p.description]));
  p1.forEach((p, i) => assert.ok(Buffer.from(p.image.data).equals(Buffer.from(p2[i]!.image.data))));

  const v1 = videoAt(9, 2), v2 = videoAt(9, 2);
  assert.equal(v1.description, v2.description);
  v1.frames.forEach((f, i) => assert.ok(Buffer.from(f.data).equals(Buffer.from(v2.frames[i]!.data))));
});

// ---------- rendering ----------

test('rendered pixels show each object colour in its cell, at its position, and nothing elsewhere', () => {
  const size = 32;
  for (const scene of scenes(1, 60)) {
    const img = renderScene(scene, size);
    assert.equal(img.data.length, size * size * 3);
    const occupied = new Map<string, ColourName>();
    for (const o of scene.objects) occupied.set(POSITIONS[o.position].join(','), o.colour);
    for (let col = 0; col < 3; col++) {
      for (let row = 0; row < 3; row++) {
        const expected = occupied.get(`${col},${row}`);
        const counts = new Map<ColourName, number>();
        const r = cellRect(size, col, row);
        // Only pixels lying wholly inside the cell: a pixel straddling the border may hold a neighbour's edge.
        for (let y = Math.ceil(r.y0); y < Math.floor(r.y1); y++) {
          for (let x = Math.ceil(r.x0); x < Math.floor(r.x1); x++) {
            const c = colourAt(img, x, y);
            if (c) counts.set(c, (counts.get(c) ?? 0) + 1);
          }
        }
        if (expected === undefined) {
          assert.equal(counts.size, 0, `empty cell ${col},${row} has object colours ${[...counts.keys()]}`);
        } else {
          const top = [...counts.entries()].sort((p, q) => q[1] - p[1])[0];
          assert.ok(top && top[0] === expected && top[1] >= 4, `cell ${col},${row}: expected ${expected}, got ${JSON.stringify([...counts])}`);
        }
      }
    }
    // Colours that occur on exactly one object: their centroid is on the named side and near the object centre.
    for (const o of scene.objects) {
      if (scene.objects.filter((p) => p.colour === o.colour).length !== 1) continue;
      const b = mainRegion(img, o.colour);
      const half = size / 2;
      if (o.position.includes('left')) assert.ok(b.cx < half, `${o.colour} ${o.position}: cx=${b.cx}`);
      if (o.position.includes('right')) assert.ok(b.cx > half, `${o.colour} ${o.position}: cx=${b.cx}`);
      if (o.position.includes('top')) assert.ok(b.cy < half, `${o.colour} ${o.position}: cy=${b.cy}`);
      if (o.position.includes('bottom')) assert.ok(b.cy > half, `${o.colour} ${o.position}: cy=${b.cy}`);
      const dist = Math.hypot(b.cx - o.x * size, b.cy - o.y * size);
      assert.ok(dist < 2.5, `${o.size} ${o.shape} centroid ${dist.toFixed(2)}px from centre`);
    }
  }
});

test('large objects cover more pixels than small ones, and size is configurable', () => {
  const rng = createRandom(5);
  for (const shape of SHAPES) {
    const small = sampleScene(rng, { count: 1, constraints: [{ shape, colour: 'red', size: 'small', position: 'center' }] });
    const large = sampleScene(rng, { count: 1, constraints: [{ shape, colour: 'red', size: 'large', position: 'center' }] });
    assert.ok(blob(renderScene(large, 64), 'red').n > 1.5 * blob(renderScene(small, 64), 'red').n, shape);
  }
  const img = renderScene(scenes(2, 1)[0]!, 64);
  assert.equal(img.width, 64);
  assert.equal(img.data.length, 64 * 64 * 3);
  assert.throws(() => renderScene(scenes(2, 1)[0]!, 2.5), SyntheticDataError);
});

test('scenes respect object counts and config', () => {
  const cfg = resolveConfig({ minObjects: 2, maxObjects: 3, shapes: ['star', 'ring'], colours: ['red', 'blue'] });
  const seen = new Set<number>();
  for (const s of scenes(8, 50, cfg)) {
    seen.add(s.objects.length);
    assert.ok(s.objects.length >= 2 && s.objects.length <= 3);
    assert.equal(new Set(s.objects.map((o) => o.position)).size, s.objects.length, 'distinct cells');
    for (const o of s.objects) assert.ok(['star', 'ring'].includes(o.shape) && ['red', 'blue'].includes(o.colour));
    assert.deepEqual(JSON.parse(JSON.stringify(s)), s, 'scene is plain JSON');
  }
  assert.deepEqual([...seen].sort(), [2, 3]);
  assert.equal(DEFAULT_SYNTHETIC_CONFIG.imageSize, 32);
  assert.throws(() => resolveConfig({ shapes: ['hexagon' as never] }), SyntheticDataError);
  assert.throws(() => resolveConfig({ maxObjects: 5, positions: ['left', 'right'] }), SyntheticDataError);
});

// ---------- text ----------

test('alt-text and long descriptions mention every object with the right counts', () => {
  const words: Record<string, number> = { a: 1, an: 1, two: 2, three: 3, four: 4 };
  for (const s of scenes(21, 80)) {
    const long = longDescription(s);
    // Each group reads "<count> <size> <colour> <shape>(s)"; summing the counts recovers the number of objects.
    const re = new RegExp(`\\b(a|an|two|three|four) (small|large) (${COLOUR_NAMES.join('|')}) (${SHAPES.join('|')})(?:e?s)?\\b`, 'g');
    let total = 0;
    for (const m of long.matchAll(re)) {
      const n = words[m[1]!]!;
      total += n;
      const matching = s.objects.filter((o) => o.size === m[2] && o.colour === m[3] && o.shape === m[4]);
      assert.equal(matching.length, n, `"${m[0]}" in "${long}"`);
    }
    assert.equal(total, s.objects.length, long);
    const alt = altText(s);
    for (const o of s.objects) assert.ok(alt.includes(`${o.colour} ${o.shape}`), alt);
    assert.ok(!/small|large|left|right|top|bottom/.test(alt), `alt-text should be short: ${alt}`);
  }
});

test('QA answers are consistent with the scene (checked by re-deriving them) and VQA-style', () => {
  const kinds = new Set<string>();
  const rng = createRandom(4);
  for (const s of scenes(31, 80)) {
    for (const { kind, question, answer } of qaPairs(rng, s)) {
      kinds.add(kind);
      assert.match(answer, /^[a-z0-9]+( [a-z0-9]+)?$/, `answer not VQA-style: "${answer}"`);
      assert.equal(question, question.toLowerCase());
      const objs = s.objects;
      let m: RegExpMatchArray | null;
      if ((m = question.match(/^how many objects are there\?$/))) assert.equal(answer, String(objs.length));
      else if ((m = question.match(/^how many (\w+) objects are there\?$/))) assert.equal(answer, String(objs.filter((o) => o.colour === m![1]).length));
      else if ((m = question.match(/^how many (\w+) are there\?$/))) {
        const shape = SHAPES.find((sh) => `${sh}s` === m![1] || `${sh}es` === m![1]);
        assert.ok(shape, question);
        assert.equal(answer, String(objs.filter((o) => o.shape === shape).length));
      }
      else if ((m = question.match(/^what colour is the background\?$/))) assert.equal(answer, s.background.colour);
      else if ((m = question.match(/^what colour is the (\w+)\?$/))) assert.ok(objs.every((o) => o.shape !== m![1] || o.colour === answer));
      else if ((m = question.match(/^what shape is the (\w+) object\?$/))) assert.ok(objs.every((o) => o.colour !== m![1] || o.shape === answer));
      else if ((m = question.match(/^is there an? (\w+) (\w+)\?$/))) {
        assert.equal(answer, objs.some((o) => o.colour === m![1] && o.shape === m![2]) ? 'yes' : 'no');
      } else if ((m = question.match(/^where is the (\w+) (\w+)\?$/))) {
        const hit = objs.filter((o) => o.colour === m![1] && o.shape === m![2]);
        assert.equal(hit.length, 1);
        assert.equal(answer, hit[0]!.position);
      } else if ((m = question.match(/^is the (\w+) (\w+) small or large\?$/))) {
        assert.equal(answer, objs.find((o) => o.colour === m![1] && o.shape === m![2])!.size);
      } else assert.fail(`unrecognised question "${question}"`);
    }
  }
  assert.deepEqual([...kinds].sort(), ['background', 'colour', 'count', 'exists', 'shape', 'size', 'where']);
});

test('"where is" answers agree with the rendered pixels', () => {
  const rng = createRandom(6);
  const size = 32;
  let checked = 0;
  for (const s of scenes(41, 40)) {
    const img = renderScene(s, size);
    for (const qa of qaPairs(rng, s).filter((q) => q.kind === 'where')) {
      const colour = qa.question.split(' ')[3] as ColourName;
      if (s.objects.filter((o) => o.colour === colour).length !== 1) continue;
      const b = mainRegion(img, colour);
      const [col, row] = POSITIONS[qa.answer as keyof typeof POSITIONS];
      assert.equal(Math.floor((b.cx / size) * 3), col, qa.question);
      assert.equal(Math.floor((b.cy / size) * 3), row, qa.question);
      checked++;
    }
  }
  assert.ok(checked > 20);
});

// ---------- prompts ----------

test('interleavedToPrompt: exact OpenFlamingo format, images in order, reserved markers rejected', () => {
  const img = (v: number): RgbImage => ({ width: 1, height: 1, data: new Uint8Array([v, v, v]) });
  const i1 = img(1), i2 = img(2);
  const p = interleavedToPrompt({ chunks: [{ type: 'image', image: i1, id: 'a' }, { type: 'text', text: 'A cat.' }, { type: 'image', image: i2, id: 'b' }, { type: 'text', text: 'A dog.' }] });
  assert.equal(p.text, '<image>A cat.<|endofchunk|><image>A dog.<|endofchunk|>');
  assert.deepEqual(p.imageIds, ['a', 'b']);
  assert.equal(p.images[0], i1);
  assert.equal(p.images[1], i2);
  assert.equal(interleavedToPrompt({ chunks: [{ type: 'text', text: 'Title.' }, { type: 'image', image: i1, id: 'a' }, { type: 'text', text: 'x' }] }, { closeLast: false }).text, 'Title.<image>x');
  assert.throws(() => interleavedToPrompt({ chunks: [{ type: 'text', text: 'bad <image>' }] }), SyntheticDataError);

  const chunkRe = /^(<image>[^<]+<\|endofchunk\|>)+$/;
  for (const doc of documents(2, { count: 40 })) {
    const { text, images, imageIds } = interleavedToPrompt(doc);
    const body = doc.chunks[0]!.type === 'text' ? text.slice((doc.chunks[0] as { text: string }).text.length) : text;
    assert.match(body, chunkRe, `${doc.kind}: ${text}`);
    const imageChunks = doc.chunks.filter((c) => c.type === 'image');
    assert.equal(text.split(IMAGE_TOKEN).length - 1, images.length);
    assert.equal(text.split(END_OF_CHUNK_TOKEN).length - 1, images.length);
    assert.ok(images.length >= 1 && images.length <= DEFAULT_SYNTHETIC_CONFIG.maxImagesPerDocument);
    assert.deepEqual(imageIds, imageChunks.map((c) => (c as { id: string }).id));
    if (doc.query) {
      const q = queryPrompt(doc);
      assert.ok(!q.text.endsWith(END_OF_CHUNK_TOKEN));
      assert.equal(q.text + doc.query.completion + END_OF_CHUNK_TOKEN, text);
      assert.equal(q.answer, doc.query.answer);
    }
  }
});

// ---------- in-context tasks ----------

test('invented names: consistent within a document, fresh across documents, never real vocabulary', () => {
  const docs = [...documents(77, { count: 24, kind: 'names' })];
  const nameSets: string[] = [];
  for (const doc of docs) {
    const bindings = doc.bindings!;
    const names = Object.keys(bindings);
    assert.ok(names.length >= 2);
    nameSets.push(names.sort().join(','));
    for (const n of names) assert.ok(!(SHAPES as readonly string[]).includes(n) && !(COLOUR_NAMES as string[]).includes(n), n);
    const usedInSupport = new Set<string>();
    for (let i = 0; i + 1 < doc.chunks.length; i += 2) {
      const im = doc.chunks[i]!, tx = doc.chunks[i + 1]!;
      assert.equal(im.type, 'image');
      assert.equal(tx.type, 'text');
      const words = (tx as { text: string }).text.toLowerCase().match(/[a-z]+/g)!;
      const said = names.filter((n) => words.includes(n));
      assert.equal(said.length, 1, (tx as { text: string }).text);
      const obj = doc.scenes[(im as { id: string }).id]!.objects[0]!;
      const cat = bindings[said[0]!]!;
      assert.ok(obj.shape === cat || obj.colour === cat, `${said[0]} bound to ${cat} but image shows ${obj.colour} ${obj.shape}`);
      if (i + 2 < doc.chunks.length) usedInSupport.add(said[0]!);
    }
    assert.ok(usedInSupport.has(doc.query!.answer), 'query name was introduced in the support');
    assert.ok(names.every((n) => usedInSupport.has(n)), 'every bound name appears in the support');
  }
  assert.equal(new Set(nameSets).size, nameSets.length, 'no two documents share a name set');
  const fresh = inventNames(createRandom(1), 50);
  assert.equal(new Set(fresh).size, 50);
});

test('output format is shown only by examples: one format per document, several across documents, answers match the scene', () => {
  const formats = new Set<string>();
  for (const doc of documents(13, { count: 30, kind: 'format' })) {
    formats.add(doc.format!);
    const texts = doc.chunks.filter((c) => c.type === 'text').map((c) => (c as { text: string }).text);
    // Replace every run of words/digits: what is left is the format's punctuation skeleton.
    const skeleton = (t: string) => t.replace(/[A-Za-z0-9]+( [A-Za-z0-9]+)*/g, 'X');
    assert.equal(new Set(texts.map(skeleton)).size, 1, texts.join(' / '));
    const images = doc.chunks.filter((c) => c.type === 'image');

    const answers = texts.map((t) => t.slice(t.indexOf(' ') + 1).toLowerCase());
    assert.equal(answers[answers.length - 1], doc.query!.answer.toLowerCase());
    if (['bracket', 'keyvalue', 'json', 'arrow'].includes(doc.format!)) {
      // Keyed formats: the same keys in every example, each value read back from that example's scene.
      const keysOf = (a: string) => [...a.matchAll(/"?(shape|colour|size|position|count)"?\s*(?::|=|->)/g)].map((k) => k[1]).join(',');
      assert.equal(new Set(answers.map(keysOf)).size, 1, answers.join(' / '));
      answers.forEach((a, k) => {
        const scene = doc.scenes[(images[k] as { id: string }).id]!;
        const pairs = [...a.matchAll(/"?(shape|colour|size|position|count)"?\s*(?::|=|->)\s*"?([a-z0-9]+(?: [a-z0-9]+)?)/g)];
        assert.ok(pairs.length >= 1, a);
        for (const [, key, value] of pairs) assert.equal(value, fieldValue(scene, key as 'shape'), `${key} in ${a}`);
      });
    } else {
      // Bare formats: every word of the answer is one of the scene's field values.
      answers.forEach((a, k) => {
        const scene = doc.scenes[(images[k] as { id: string }).id]!;
        const values = (['shape', 'colour', 'size', 'position', 'count'] as const).map((f) => fieldValue(scene, f)).join(' ').split(' ');
        for (const w of a.match(/[a-z0-9]+/g)!) assert.ok(values.includes(w), `${w} not a field value of ${JSON.stringify(scene.objects[0])}`);
      });
    }
  }
  assert.ok(formats.size >= 4, [...formats].join(','));
});

test('fast binding episodes over caller-supplied images', () => {
  const img = (v: number): RgbImage => ({ width: 2, height: 2, data: new Uint8Array(12).fill(v) });
  const categories: ImageCategory[] = Array.from({ length: 10 }, (_, c) => ({ id: `class${c}`, images: Array.from({ length: 6 }, (_, k) => img(c * 10 + k)) }));
  const rng = createRandom(99);
  for (let e = 0; e < 20; e++) {
    const ep = fastBindingEpisode(rng, categories, { ways: 3, shots: 2 });
    assert.equal(ep.support.length, 6);
    const perCat = new Map<string, number>();
    for (const s of ep.support) {
      perCat.set(s.categoryId, (perCat.get(s.categoryId) ?? 0) + 1);
      assert.equal(s.name, ep.names[s.categoryId]);
      assert.equal(s.image, categories.find((c) => c.id === s.categoryId)!.images[s.imageIndex]);
    }
    assert.deepEqual([...perCat.values()], [2, 2, 2]);
    assert.equal(new Set(Object.values(ep.names)).size, 3);
    assert.ok(perCat.has(ep.query.categoryId));
    assert.equal(ep.query.name, ep.names[ep.query.categoryId]);
    assert.ok(!ep.support.some((s) => s.image === ep.query.image), 'query image is not a support image');
    const doc = episodeToDocument(rng, ep);
    const q = queryPrompt(doc);
    assert.equal(q.images.length, 7);
    assert.equal(q.images[6], ep.query.image);
    assert.equal(q.answer, ep.query.name);
    assert.match(q.text, /^(<image>[^<]+<\|endofchunk\|>){6}<image>What is this\? It is called$/);
  }
  const a = [...fastBindingEpisodes(5, categories, { ways: 2, shots: 1, count: 3 })];
  const b = [...fastBindingEpisodes(5, categories, { ways: 2, shots: 1, count: 3 })];
  assert.deepEqual(a.map((e) => e.names), b.map((e) => e.names));
  assert.throws(() => fastBindingEpisode(rng, categories, { ways: 11, shots: 1 }), SyntheticDataError);
  // Built-in shape categories: one per shape, usable directly as episode input.
  const shapesCats = shapeCategories(rng, { perCategory: 3 });
  assert.deepEqual(shapesCats.map((c) => c.id), [...SHAPES]);
  const ep = fastBindingEpisode(rng, shapesCats, { ways: 5, shots: 2 });
  assert.equal(ep.support.length, 10);
  assert.throws(() => fastBindingEpisode(rng, categories, { ways: 2, shots: 6 }), SyntheticDataError);
});

// ---------- video ----------

test('video: pixels move, grow, shrink or change colour exactly as the description and QA say', () => {
  const rng = createRandom(17);
  const size = 32;
  const seen = new Set<string>();
  for (let v = 0; v < 40; v++) {
    const video = sampleVideo(rng, { frames: 6, size });
    assert.equal(video.frames.length, 6);
    const first = video.frames[0]!, last = video.frames[5]!;
    for (const m of video.motions) {
      seen.add(m.kind);
      // Restrict to the region the object sweeps, so a second object elsewhere never counts.
      const pad = Math.max(m.start.r, m.end.r) * size + 1;
      const rect = {
        x0: Math.min(m.start.x, m.end.x) * size - pad, x1: Math.max(m.start.x, m.end.x) * size + pad,
        y0: Math.min(m.start.y, m.end.y) * size - pad, y1: Math.max(m.start.y, m.end.y) * size + pad,
      };
      const a = blob(first, m.colour, rect);
      assert.ok(a.n > 3, `${m.description}: object visible in first frame`);
      assert.ok(video.description.includes(m.description));
      const answer = (q: string) => video.qa.find((p) => p.question === q)?.answer;
      if (m.kind === 'move') {
        const b = blob(last, m.colour, rect);
        const dx = b.cx - a.cx, dy = b.cy - a.cy;
        const dir = Math.abs(dx) > Math.abs(dy) ? (dx > 0 ? 'right' : 'left') : dy > 0 ? 'down' : 'up';
        assert.ok(Math.max(Math.abs(dx), Math.abs(dy)) > 3, `${m.description}: moved ${dx},${dy}`);
        assert.ok(m.description.endsWith(dir === 'left' || dir === 'right' ? `moves to the ${dir}` : `moves ${dir}`), `${m.description} vs pixels ${dir}`);
        assert.equal(answer(`which way does the ${m.shape} move?`), dir);
      } else if (m.kind === 'grow' || m.kind === 'shrink') {
        const b = blob(last, m.colour, rect);
        assert.equal(b.n > a.n ? 'grow' : 'shrink', m.kind, m.description);
        assert.ok(m.description.endsWith(m.kind === 'grow' ? 'grows' : 'shrinks'));
        assert.equal(answer(`does the ${m.shape} grow or shrink?`), m.kind);
      } else {
        const to = m.toColour!;
        assert.equal(blob(first, to, rect).n, 0);
        assert.ok(blob(last, to, rect).n > 3);
        assert.equal(blob(last, m.colour, rect).n, 0);
        assert.ok(m.description.endsWith(`turns ${to}`));
        assert.equal(answer(`what colour does the ${m.shape} turn?`), to);
      }
    }
  }
  assert.deepEqual([...seen].sort(), ['grow', 'move', 'recolour', 'shrink']);
});

test('qa and captions pages keep one label template each; templates vary across pages; eval templates never appear', () => {
  // longest label first, so 'Answer -' is not read as 'A'
  const byLength = (xs: readonly string[]) => [...xs].filter((x) => x !== '').sort((a, b) => b.length - a.length);
  const startLabel = (t: string, labels: readonly string[]) => byLength(labels).find((l) => t.startsWith(l)) ?? '';
  const qaTemplates = new Set<string>();
  const captionLabels = new Set<string>();
  for (let i = 0; i < 60; i++) {
    const qa = documentAt(3, i, { kind: 'qa' });
    const texts = qa.chunks.flatMap((c) => (c.type === 'text' ? [c.text] : []));
    const templates = texts.map((t) => {
      const q = startLabel(t, QUESTION_LABELS);
      const a = byLength(ANSWER_LABELS).find((l) => t.includes(`? ${l}`)) ?? '';
      return `${q}|${a}|${t.startsWith(`${q} `) ? 'loose' : 'tight'}`;
    });
    assert.ok(templates.every((x) => !x.startsWith('|') && !x.includes('||')), `labels found: ${texts.join(' / ')}`);
    assert.equal(new Set(templates).size, 1, `one template per page: ${texts.join(' / ')}`);
    qaTemplates.add(templates[0]!);
    const caps = documentAt(3, i, { kind: 'captions' }).chunks.flatMap((c) => (c.type === 'text' ? [c.text] : []));
    const labels = caps.map((t) => startLabel(t, CAPTION_LABELS));
    assert.equal(new Set(labels).size, 1, `one caption label per page: ${caps.join(' / ')}`);
    captionLabels.add(labels[0]!);
    for (const t of [...texts, ...caps]) assert.ok(!t.includes('Short answer:') && !t.startsWith('Output:'), t);
  }
  assert.ok(qaTemplates.size >= 10, `qa templates vary: ${[...qaTemplates].join(', ')}`);
  // qaQuestions "balanced": qa pages draw the kind of question first, so counting questions do not crowd out the rest
  const questions = (qaQuestions: 'any' | 'balanced') => Array.from({ length: 60 }, (_, i) => documentAt(3, i, { kind: 'qa', qaQuestions }).chunks.flatMap((c) => (c.type === 'text' ? [c.text] : []))).flat();
  const share = (qs: string[], re: RegExp) => qs.filter((q) => re.test(q)).length / qs.length;
  const [any, balanced] = [questions('any'), questions('balanced')];
  assert.ok(share(balanced, /how many/) < 0.25 && share(any, /how many/) > 0.3, `counting questions ${share(balanced, /how many/)} vs ${share(any, /how many/)}`);
  assert.ok(share(balanced, /colour is the background/) > 0.08, `background questions ${share(balanced, /colour is the background/)}`);
  assert.deepEqual(documentAt(3, 5, { kind: 'qa' }), documentAt(3, 5, { kind: 'qa', qaQuestions: 'any' }));
  assert.throws(() => documentAt(3, 5, { kind: 'qa', qaQuestions: 'kind' as 'any' }), /qaQuestions must be "any" or "balanced"/);
  // formatOutputLead false: format pages never lead with the evaluation's `Output:`; by default some do
  const leads = (formatOutputLead: boolean) => Array.from({ length: 40 }, (_, i) => documentAt(3, i, { kind: 'format', formatOutputLead }).chunks.flatMap((c) => (c.type === 'text' ? [c.text] : []))).flat();
  assert.ok(leads(false).every((t) => !t.startsWith('Output:')));
  assert.ok(leads(true).some((t) => t.startsWith('Output:')));
  assert.throws(() => documentAt(3, 5, { kind: 'format', formatOutputLead: 'no' as unknown as boolean }), /formatOutputLead must be true or false/);
  assert.ok(captionLabels.size >= 4 && captionLabels.has(''), `caption labels vary: ${[...captionLabels].join(', ')}`);
});

test('open labels: about half the pages invent a label (one per page, not a fixed template), the rest draw as with fixed labels', () => {
  let invented = 0;
  const inventedLabels = new Set<string>();
  for (let i = 0; i < 80; i++) {
    const caps = documentAt(9, i, { kind: 'captions', labels: 'open' }).chunks.flatMap((c) => (c.type === 'text' ? [c.text] : []));
    const heads = caps.map((t) => /^([^:]*):/.exec(t)?.[1] ?? '');
    assert.equal(new Set(heads).size, 1, `one label per page: ${caps.join(' / ')}`);
    const fixed = CAPTION_LABELS.includes(heads[0] === '' ? '' : `${heads[0]}:`) || !caps[0]!.includes(':');
    if (!fixed) { invented++; inventedLabels.add(heads[0]!); }
    const qa = documentAt(9, i, { kind: 'qa', labels: 'open' }).chunks.flatMap((c) => (c.type === 'text' ? [c.text] : []));
    const [q, a] = [/^(.*?)(?::| -)/.exec(qa[0]!)?.[1], /\? (.*?)(?::| -)/.exec(qa[0]!)?.[1]];
    assert.ok(q !== undefined && a !== undefined && q !== a, `question and answer labels differ: ${qa[0]}`);
    for (const t of [...caps, ...qa]) assert.ok(!t.includes('Short answer:') && !t.startsWith('Output:'), t);
  }
  assert.ok(invented > 20 && invented < 60, `about half the caption pages invent a label: ${invented}/80`);
  assert.ok(inventedLabels.size > 15, 'invented labels are fresh');
  // the option does not change fixed-label pages: the default stream is unchanged
  assert.deepEqual(documentAt(9, 3, { kind: 'qa' }), documentAt(9, 3, { kind: 'qa', labels: 'fixed' }));
  assert.throws(() => documentAt(9, 3, { kind: 'qa', labels: 'free' as 'open' }), /labels must be "fixed" or "open"/);
});

test('page conventions: a captions page keeps one caption template and number style; the default stream is unchanged', () => {
  const styles = new Set<string>();
  for (let i = 0; i < 60; i++) {
    const doc = documentAt(11, i, { kind: 'captions', conventions: 'page' });
    const caps = doc.chunks.flatMap((c) => (c.type === 'text' ? [c.text] : []));
    const scenes = doc.chunks.flatMap((c) => (c.type === 'image' ? [doc.scenes[c.id]!] : []));
    assert.equal(scenes.length, caps.length);
    // the page's style is the one (template, digits) that produces every caption on it
    const fits = CAPTION_TEMPLATES.flatMap((_, template) => [false, true].map((digits) => ({ template, digits })))
      .filter((st) => scenes.every((sc, k) => caps[k]!.endsWith(captionInStyle(sc, st))));
    assert.ok(fits.length >= 1, `one style fits the page: ${caps.join(' / ')}`);
    for (const f of fits) styles.add(`${f.template}:${f.digits}`);
  }
  assert.ok(styles.size >= 10, `styles vary across pages: ${[...styles].join(', ')}`);
  const scene: Scene = { ...sampleScene(createRandom(1)), objects: [] };
  const two = { ...scene, objects: [0, 1].map((k) => ({ shape: 'star' as const, colour: 'red' as const, size: 'small' as const, position: (k ? 'top' : 'left') as 'top', x: 0, y: 0 })) };
  assert.equal(captionInStyle(two, { template: 0, digits: false }), captionVariants(two)[0]);
  assert.match(captionInStyle(two, { template: 0, digits: true }), /^A picture of 2 red stars\.$/);
  assert.match(captionInStyle(two, { template: 5, digits: true }), /^2 red stars on a \w+ background\.$/, 'a capitalised count too');
  assert.throws(() => captionInStyle(two, { template: 99, digits: false }), /caption template 99/);
  assert.deepEqual(documentAt(11, 4, { kind: 'captions' }), documentAt(11, 4, { kind: 'captions', conventions: 'fixed' }));
  assert.deepEqual(documentAt(11, 4, { kind: 'qa' }), documentAt(11, 4, { kind: 'qa', conventions: 'fixed' }));
  assert.throws(() => documentAt(1, 0, { conventions: 'loose' as 'page' }), /conventions must be "fixed" or "page"/);
});

test('page conventions: a qa page answers each question kind one way (bare or phrased); both ways occur across pages', () => {
  const kindOf = (q: string): string => (/how many/.test(q) ? 'count' : /background/.test(q) ? 'background' : /what colour/.test(q) ? 'colour'
    : /what shape/.test(q) ? 'shape' : /small or large/.test(q) ? 'size' : /^is there/.test(q) ? 'exists' : /^where/.test(q) ? 'where' : '?');
  const isPhrased = (a: string): boolean => /^(it is|there is|there are|yes, there is|no, there is not)\b/.test(a);
  const seen: Record<string, Set<boolean>> = {};
  for (let i = 0; i < 120; i++) {
    const doc = documentAt(12, i, { kind: 'qa', conventions: 'page', labels: 'fixed' });
    const perKind = new Map<string, Set<boolean>>();
    for (const t of doc.chunks.flatMap((c) => (c.type === 'text' ? [c.text] : []))) {
      const m = /^(?:Question:|Q:|Query:|Ask:|Question -)\s?(.*\?) (?:Answer:|A:|Reply:|Brief answer:|Response:|One word:|Answer -)\s?(.*)$/.exec(t);
      assert.ok(m, `qa text parses: ${t}`);
      const kind = kindOf(m[1]!);
      assert.notEqual(kind, '?', m[1]);
      const set = perKind.get(kind) ?? new Set<boolean>();
      set.add(isPhrased(m[2]!));
      perKind.set(kind, set);
      (seen[kind] ??= new Set()).add(isPhrased(m[2]!));
    }
    for (const [k, set] of perKind) assert.equal(set.size, 1, `page ${i}: ${k} answered one way`);
  }
  for (const k of ['count', 'colour', 'shape', 'exists', 'size', 'background']) assert.deepEqual(seen[k], new Set([false, true]), k);
  // fixed conventions: always the bare VQA answer
  for (let i = 0; i < 20; i++) {
    const doc = documentAt(12, i, { kind: 'qa' });
    assert.ok(!isPhrased(doc.query!.answer), doc.query!.answer);
  }
  assert.equal(phrasedAnswer({ kind: 'count', question: 'how many objects are there?', answer: '1' }), 'there is 1');
  assert.equal(phrasedAnswer({ kind: 'count', question: 'how many stars are there?', answer: '0' }), 'there are 0');
  assert.equal(phrasedAnswer({ kind: 'shape', question: 'what shape is the red object?', answer: 'ring' }), 'it is a ring');
  assert.equal(phrasedAnswer({ kind: 'where', question: 'where is the red ring?', answer: 'center' }), 'it is in the center');
  assert.equal(phrasedAnswer({ kind: 'exists', question: 'is there a red ring?', answer: 'no' }), 'no, there is not');
});

test('shape variants: pairs of one group differ only in object shapes (hard negatives), member 0 is the plain pair', () => {
  for (let g = 0; g < 20; g++) {
    const base = shapeVariantPairAt(4, g, 0);
    assert.deepEqual(base, imageTextPairAt(4, g));
    for (let m = 1; m < 4; m++) {
      const v = shapeVariantPairAt(4, g, m);
      assert.deepEqual(shapeVariantPairAt(4, g, m), v, 'reproducible');
      const strip = (o: { shape: string }) => ({ ...o, shape: '' });
      assert.deepEqual(v.scene.objects.map(strip), base.scene.objects.map(strip), 'same colours, sizes, positions');
      assert.deepEqual(v.scene.background, base.scene.background);
      assert.ok(v.scene.objects.some((o, k) => o.shape !== base.scene.objects[k]!.shape), 'some shape differs');
      assert.notEqual(v.altText, base.altText);
      assert.notDeepEqual(v.image.data, base.image.data);
    }
  }
  assert.throws(() => sourceFromSpec('x', { type: 'synthetic-pairs', shape_variants: 0 }), /shape_variants must be an integer/);
});

test('synthetic-pairs text "qa": VQAv2-like pairs on the same images, question kinds balanced, answers in their domain', () => {
  const qa = sourceFromSpec('p', { type: 'synthetic-pairs', text: 'qa' }).open(5);
  const plain = sourceFromSpec('p', { type: 'synthetic-pairs' }).open(5);
  const kinds: Record<string, number> = {};
  const bgs = new Set<string>(DEFAULT_SYNTHETIC_CONFIG.backgrounds);
  for (let i = 0; i < 280; i++) {
    const d = qa.next();
    const p = plain.next();
    const img = (x: typeof d) => (x.chunks[0]!.kind === 'image' ? x.chunks[0]!.image() : null);
    assert.deepEqual(img(d), img(p), 'the same image as the plain pair');
    const t = d.chunks[1]!.kind === 'text' ? d.chunks[1]!.text : '';
    const m = /^Question: (.+\?) Answer: (.+)$/.exec(t);
    assert.ok(m, t);
    const [q, a] = [m[1]!, m[2]!];
    const kind = /how many/.test(q) ? 'count' : /background/.test(q) ? 'background' : /what colour/.test(q) ? 'colour'
      : /what shape/.test(q) ? 'shape' : /small or large/.test(q) ? 'size' : /^is there/.test(q) ? 'exists' : 'where';
    kinds[kind] = (kinds[kind] ?? 0) + 1;
    const domain: Record<string, (x: string) => boolean> = {
      count: (x) => /^\d$/.test(x), background: (x) => bgs.has(x), colour: (x) => (COLOUR_NAMES as readonly string[]).includes(x),
      shape: (x) => (SHAPES as readonly string[]).includes(x), size: (x) => x === 'small' || x === 'large',
      exists: (x) => x === 'yes' || x === 'no', where: (x) => x in POSITIONS,
    };
    assert.ok(domain[kind]!(a), `${q} -> ${a}`);
  }
  // drawn from qaPairs directly, counting questions would be most of them
  for (const k of ['count', 'background', 'exists', 'colour', 'shape', 'where', 'size']) assert.ok(kinds[k]! > 15 && kinds[k]! < 80, JSON.stringify(kinds));
  assert.throws(() => sourceFromSpec('x', { type: 'synthetic-pairs', text: 'answers' as 'qa' }), /text must be one of/);
});
