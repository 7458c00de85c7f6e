// Image preprocessing as open_clip does it for the released models, and PNG decoding in Pillow's
// modes. The public fixture cases (test/fixtures/shared/preprocess) are all run; the mode tests use
// small files made here with hand-computed expectations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import { pngChunk, pngFromRows } from './helpers/png-craft.ts';
import { convertToRgb, decodeImage, decodeImageRaw, resizeDecoded, type DecodedImage } from '../src/data/image.ts';
import { cropDecoded } from '../src/data/image-transforms.ts';
import { preprocessImage, preprocessToRgb } from '../src/data/image-tensor.ts';
import { runPreprocessCase } from '../src/eval/verify/preprocess.ts';
import { LEGACY_PREPROCESS, OPEN_CLIP_EVAL_PREPROCESS, validatePreprocess } from '../src/model/preprocess-config.ts';
import { validateFlamingoConfig } from '../src/model/config.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'shared', 'preprocess');
const manifest = JSON.parse(readFileSync(join(ROOT, 'manifest.json'), 'utf8')) as { cases: string[] };

for (const name of manifest.cases) {
  test(`preprocess fixture ${name}: decoded pixels and tensor within the case's tolerance`, () => {
    const dir = join(ROOT, name);
    const c = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as Record<string, unknown> & { format: string };
    const r = runPreprocessCase(dir, c);
    assert.ok(r.pass, JSON.stringify(r.outputs));
    // Decoding (PNG, and JPEG as libjpeg-turbo) and the transform are Pillow's bit for bit: only float32 rounding remains.
    assert.ok(r.maxAbsError! < 1e-6, `max abs ${r.maxAbsError}`);
    assert.equal(r.outputs[0]!.maxAbsError, 0, 'decoded pixels identical');
  });
}

test('PNG modes as Pillow opens them: 1-bit, 2-bit palette, 4-bit gray, 16-bit gray as I, LA16 high bytes, tRNS kept aside', () => {
  const bilevel = decodeImageRaw(pngFromRows(10, 1, 1, 0, [new Uint8Array([0b10110000, 0b01000000])]), 'b.png');
  assert.equal(bilevel.mode, '1');
  assert.deepEqual([...bilevel.data], [255, 0, 255, 255, 0, 0, 0, 0, 0, 255]);

  const plte = pngChunk('PLTE', new Uint8Array([10, 20, 30, 40, 50, 60, 70, 80, 90]));
  const trns = pngChunk('tRNS', new Uint8Array([0, 128]));
  const pal = decodeImageRaw(pngFromRows(5, 1, 2, 3, [new Uint8Array([0b00011011, 0b01000000])], [plte, trns]), 'p.png');
  assert.equal(pal.mode, 'P');
  assert.deepEqual([...pal.data], [0, 1, 2, 3, 1]);
  // Index 3 is beyond the 3-entry palette: Pillow's default ramp (3, 3, 3). tRNS is ignored by convert("RGB").
  assert.deepEqual([...convertToRgb(pal, 'pillow')], [10, 20, 30, 40, 50, 60, 70, 80, 90, 3, 3, 3, 40, 50, 60]);
  // The project's own convention composites onto white: alpha 0 -> white, 128 -> halfway.
  assert.deepEqual([...convertToRgb(pal, 'white')].slice(0, 6), [255, 255, 255, 147, 152, 157]);

  const g4 = decodeImageRaw(pngFromRows(3, 1, 4, 0, [new Uint8Array([0x0f, 0x70])]), 'g4.png');
  assert.deepEqual([g4.mode, ...g4.data], ['L', 0, 255, 119]); // 4-bit samples x 17

  const g16 = decodeImageRaw(pngFromRows(3, 1, 16, 0, [new Uint8Array([0x00, 0x07, 0x01, 0x00, 0xff, 0xff])]), 'g16.png');
  assert.equal(g16.mode, 'I');
  assert.deepEqual([...g16.data], [7, 256, 65535]);
  assert.deepEqual([...convertToRgb(g16, 'pillow')], [7, 7, 7, 255, 255, 255, 255, 255, 255]); // clipped, not scaled

  const la16 = decodeImageRaw(pngFromRows(1, 1, 16, 4, [new Uint8Array([0x12, 0xff, 0x80, 0x01])]), 'la.png');
  assert.deepEqual([la16.mode, ...la16.data], ['LA', 0x12, 0x80]); // high bytes, truncated

  const keyed = decodeImageRaw(pngFromRows(2, 1, 8, 2, [new Uint8Array([1, 2, 3, 4, 5, 6])], [pngChunk('tRNS', new Uint8Array([0, 1, 0, 2, 0, 3]))]), 'k.png');
  assert.deepEqual(keyed.transparentColor, [1, 2, 3]);
  assert.deepEqual([...convertToRgb(keyed, 'pillow')], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...convertToRgb(keyed, 'white')], [255, 255, 255, 4, 5, 6]);
});

test('Adam7 interlaced PNG decodes to the same pixels as the plain file', () => {
  const w = 11, h = 7;
  const rows = Array.from({ length: h }, (_, y) => new Uint8Array(w * 3).map((_, i) => (i * 29 + y * 71) % 256));
  const plain = decodeImageRaw(pngFromRows(w, h, 8, 2, rows), 'plain.png');
  // Build the interlaced stream by hand: pass by pass, each sub-image row with filter 0.
  const passes = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];
  const raw: number[] = [];
  for (const [x0, y0, dx, dy] of passes) {
    for (let y = y0!; y < h; y += dy!) {
      const xs: number[] = [];
      for (let x = x0!; x < w; x += dx!) xs.push(x);
      if (xs.length === 0) continue;
      raw.push(0);
      for (const x of xs) raw.push(...rows[y]!.subarray(3 * x, 3 * x + 3));
    }
  }
  const head = pngFromRows(w, h, 8, 2, rows);
  head[8 + 8 + 12] = 1; // interlace byte of IHDR (CRC is not checked by the decoder)
  const inter = Buffer.concat([head.subarray(0, 33), pngChunk('IDAT', deflateSync(new Uint8Array(raw))), pngChunk('IEND')]);
  assert.deepEqual(decodeImageRaw(inter, 'inter.png').data, plain.data);
});

test('resize in the file mode: palette nearest, RGBA premultiplied (no colour bleeding from transparent pixels)', () => {
  const pal: DecodedImage = { format: 'PNG', mode: 'P', width: 4, height: 1, data: new Uint8Array([0, 1, 2, 3]), palette: new Uint8Array(768) };
  // scale 4/6: positions 1/3, 1, 5/3, 7/3, 3, 11/3, but by repeated double addition (as Pillow) the fifth
  // is 2.9999999999999996, so it takes index 2, not 3.
  assert.deepEqual([...resizeDecoded(pal, 6, 1).data], [0, 1, 1, 2, 2, 3]);
  const rgba: DecodedImage = { format: 'PNG', mode: 'RGBA', width: 2, height: 1, data: new Uint8Array([255, 0, 0, 0, 0, 0, 255, 255]) };
  const out = resizeDecoded(rgba, 4, 1);
  for (let p = 0; p < 16; p += 4) assert.equal(out.data[p], 0, `the red of a fully transparent pixel must not bleed (pixel ${p / 4})`);
  // Straight (non-premultiplied) resizing would give red a positive value next to the opaque blue.
});

test('preprocess config: validated with named errors; legacy default equals the old CLIP transform', () => {
  assert.deepEqual(validatePreprocess({}), { ...LEGACY_PREPROCESS, mean: [...LEGACY_PREPROCESS.mean], std: [...LEGACY_PREPROCESS.std] });
  assert.throws(() => validatePreprocess({ order: 'rgb-first' }), /preprocess\.order must be one of 'as_opened', 'rgb_first'/);
  assert.throws(() => validatePreprocess({ std: [1, 0, 1] }), /preprocess\.std must be 3 positive finite numbers/);
  assert.throws(() => validatePreprocess({ sizee: 3 }), /preprocess\.sizee is not a known key/);
  const cfg = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'models', 'flamingo-fmnist', 'config.json'), 'utf8'));
  assert.equal(validateFlamingoConfig(cfg).preprocess, undefined, 'the bundled model keeps the legacy preprocessing');
  assert.deepEqual(validateFlamingoConfig({ ...cfg, preprocess: OPEN_CLIP_EVAL_PREPROCESS }).preprocess, OPEN_CLIP_EVAL_PREPROCESS);

  // A soft-alpha RGBA file: legacy (white, RGB first) and release (as opened, alpha dropped) differ.
  const img = decodeImage(readFileSync(join(ROOT, 'png_rgba_soft_alpha', 'input.png')), 'rgba.png');
  const legacy = preprocessToRgb(img, 32, LEGACY_PREPROCESS);
  const release = preprocessToRgb(img, 32, OPEN_CLIP_EVAL_PREPROCESS);
  assert.notDeepEqual(legacy.data, release.data);
  assert.equal(preprocessImage(img, 32).length, 3 * 32 * 32);
});

test('resizing only a region equals cropping the full resize, in every mode', () => {
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const modes: [DecodedImage['mode'], number][] = [['RGB', 3], ['L', 1], ['LA', 2], ['RGBA', 4], ['P', 1], ['I', 1], ['CMYK', 4]];
  for (const [mode, ch] of modes) {
    for (let trial = 0; trial < 4; trial++) {
      const w = 3 + rand(40), h = 3 + rand(40);
      const n = w * h * ch;
      const data = mode === 'I' ? Int32Array.from({ length: n }, () => rand(70000) - 1000) : Uint8Array.from({ length: n }, () => rand(256));
      const img: DecodedImage = { format: 'PNG', mode, width: w, height: h, data, ...(mode === 'P' ? { palette: new Uint8Array(768) } : {}) };
      const ow = 1 + rand(60), oh = 1 + rand(60);
      const region = { left: rand(ow), top: rand(oh), width: 0, height: 0 };
      region.width = 1 + rand(ow - region.left);
      region.height = 1 + rand(oh - region.top);
      const full = resizeDecoded(img, ow, oh, 'bicubic');
      const part = resizeDecoded(img, ow, oh, 'bicubic', region);
      assert.deepEqual(part.data, cropDecoded(full, region.left, region.top, region.width, region.height).data, `${mode} ${w}x${h} -> ${ow}x${oh} ${JSON.stringify(region)}`);
    }
  }
});
