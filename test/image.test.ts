import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';
import { CLIP_MEAN, CLIP_STD, preprocessClip, toCHWFloat } from '../src/data/image-tensor.ts';
import { ImageDecodeError, decodeImage, encodePng, grayToRgb, loadImage, makeImage, type RgbImage } from '../src/data/image.ts';
import { centerCrop, flipHorizontal, randomHorizontalFlip, randomResizedCrop, resize, resizeBicubic, resizeBilinear } from '../src/data/image-transforms.ts';
import { listFrameFiles, loadVideoFrames, sampleFrames, VideoError } from '../src/data/video.ts';

const FIX = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'images');

/** The 16x16 gradient the fixture files were made from: R = 16x, G = 16y, B = 128. */
const gradient = (x: number, y: number): [number, number, number] => [16 * x, 16 * y, 128];

function px(img: RgbImage, x: number, y: number): [number, number, number] {
  const p = (y * img.width + x) * 3;
  return [img.data[p]!, img.data[p + 1]!, img.data[p + 2]!];
}

function meanAbsError(img: RgbImage, ref: (x: number, y: number) => [number, number, number]): number {
  let s = 0;
  for (let y = 0; y < img.height; y++) for (let x = 0; x < img.width; x++) {
    const a = px(img, x, y);
    const b = ref(x, y);
    for (let c = 0; c < 3; c++) s += Math.abs(a[c]! - b[c]!);
  }
  return s / (img.width * img.height * 3);
}

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

test('PNG written by pngjs decodes exactly; alpha composites on white or is dropped', () => {
  const png = new PNG({ width: 3, height: 2 });
  const pixels = [[10, 20, 30, 255], [200, 100, 50, 0], [0, 0, 255, 128], [1, 2, 3, 255], [4, 5, 6, 255], [7, 8, 9, 255]];
  pixels.forEach((p, i) => png.data.set(p, i * 4));
  const bytes = PNG.sync.write(png);
  const img = decodeImage(bytes, 'mem.png');
  assert.equal(img.width, 3);
  assert.equal(img.height, 2);
  assert.deepEqual(px(img, 0, 0), [10, 20, 30]);
  assert.deepEqual(px(img, 1, 0), [255, 255, 255]); // fully transparent → white
  assert.deepEqual(px(img, 2, 0), [127, 127, 255]); // (0*128 + 255*127)/255 = 127
  assert.deepEqual(px(img, 2, 1), [7, 8, 9]);
  const dropped = decodeImage(bytes, 'mem.png', { alpha: 'drop' });
  assert.deepEqual(px(dropped, 1, 0), [200, 100, 50]);
});

test('PNG fixtures: palette with tRNS, gray+alpha, 16-bit, interlaced', () => {
  const pal = loadImage(join(FIX, 'palette-trns.png'));
  assert.deepEqual([pal.width, pal.height], [4, 2]);
  const want = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0], [128, 128, 128], [255, 255, 0], [255, 255, 255]];
  want.forEach((w, i) => assert.deepEqual(px(pal, i % 4, Math.floor(i / 4)), w, `palette pixel ${i}`));
  const ga = loadImage(join(FIX, 'gray-alpha.png'));
  assert.deepEqual(px(ga, 0, 0), [0, 0, 0]);
  assert.deepEqual(px(ga, 1, 0), [227, 227, 227]); // (200*128 + 255*127)/255 ≈ 227.4
  assert.deepEqual(px(ga, 2, 0), [255, 255, 255]);
  for (const name of ['rgb16.png', 'interlaced.png']) {
    const img = loadImage(join(FIX, name));
    assert.deepEqual([img.width, img.height], [16, 16]);
    assert.equal(meanAbsError(img, gradient), 0, name);
  }
});

test('JPEG: jpeg-js baseline round trip, progressive and grayscale fixtures', () => {
  const w = 16, h = 16;
  const rgba = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rgba.set([...gradient(x, y), 255], (y * w + x) * 4);
  const bytes = jpeg.encode({ width: w, height: h, data: rgba }, 95).data;
  const img = decodeImage(bytes, 'mem.jpg');
  assert.deepEqual([img.width, img.height], [w, h]);
  assert.ok(meanAbsError(img, gradient) < 4, 'baseline JPEG close to source');
  const prog = loadImage(join(FIX, 'progressive.jpg'));
  assert.ok(meanAbsError(prog, gradient) < 4, 'progressive JPEG close to source');
  const gray = loadImage(join(FIX, 'gray.jpg'));
  // Made from a one-channel 16x16 source with v = 8x + 7y; gray is replicated to R, G and B.
  const luma = (x: number, y: number): [number, number, number] => [8 * x + 7 * y, 8 * x + 7 * y, 8 * x + 7 * y];
  assert.ok(meanAbsError(gray, luma) < 4);
  assert.deepEqual(px(gray, 5, 5)[0], px(gray, 5, 5)[1]);
});

test('corrupt and unsupported files raise ImageDecodeError naming the file', () => {
  const png = PNG.sync.write(Object.assign(new PNG({ width: 8, height: 8 }), {}));
  const truncated = png.subarray(0, png.length - 20);
  assert.throws(() => decodeImage(truncated, 'broken.png'), (e: unknown) => e instanceof ImageDecodeError && /broken\.png/.test(e.message));
  const badJpeg = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 1, 2, 3, 4, 5]);
  assert.throws(() => decodeImage(badJpeg, 'bad.jpg'), (e: unknown) => e instanceof ImageDecodeError && /bad\.jpg/.test(e.message));
  assert.throws(() => decodeImage(new TextEncoder().encode('GIF89a......'), 'a.gif'), /GIF is not supported/);
  assert.throws(() => decodeImage(new Uint8Array([1, 2, 3]), 'x.bin'), /unrecognised magic/);
  assert.throws(() => loadImage('/nonexistent/dir/pic.png'), /pic\.png.*ENOENT/);
});

test('encodePng round-trips through decodeImage', () => {
  const img = makeImage(5, 3);
  for (let i = 0; i < img.data.length; i++) img.data[i] = (i * 37) % 256;
  const back = decodeImage(encodePng(img), 'roundtrip.png');
  assert.deepEqual([back.width, back.height], [5, 3]);
  assert.deepEqual(back.data, img.data);
  assert.deepEqual(px(grayToRgb(new Uint8Array([9, 200]), 2, 1), 1, 0), [200, 200, 200]);
});

test('resize: hand-computed bilinear values (half-pixel centres, antialiased downscale)', () => {
  const row = (vals: number[]): RgbImage => makeImage(vals.length, 1, new Uint8Array(vals.flatMap((v) => [v, v, v])));
  // Upscale 2→4: centres at 0.25, 0.75, 1.25, 1.75 in input pixels → 0, 63.75, 191.25, 255.
  assert.deepEqual([...resize(row([0, 255]), 4, 1, 'bilinear').data].filter((_, i) => i % 3 === 0), [0, 64, 191, 255]);
  // Downscale 4→2: the triangle widens to support 2 → weights (.75,.75,.25) and (.25,.75,.75), normalised.
  assert.deepEqual([...resize(row([0, 100, 200, 255]), 2, 1, 'bilinear').data].filter((_, i) => i % 3 === 0), [71, 209]);
});

test('resize: bicubic keeps constants and reproduces a linear ramp away from the borders', () => {
  const flat = makeImage(7, 5, new Uint8Array(7 * 5 * 3).fill(77));
  const r = resize(flat, 13, 3, 'bicubic');
  assert.ok(r.data.every((v) => v === 77));
  const ramp = makeImage(16, 1, new Uint8Array(Array.from({ length: 16 }, (_, x) => [10 * x, 10 * x, 10 * x]).flat()));
  const up = resize(ramp, 32, 1, 'bicubic');
  for (let o = 4; o < 28; o++) {
    const expect = 10 * ((o + 0.5) / 2 - 0.5);
    assert.ok(Math.abs(up.data[o * 3]! - expect) <= 0.5 + 1e-9, `pixel ${o}: ${up.data[o * 3]} vs ${expect}`);
  }
});

test('resize matches Pillow byte for byte (reference outputs made with Pillow)', () => {
  const ref = JSON.parse(readFileSync(join(FIX, 'pillow-resize.json'), 'utf8')) as {
    cases: { width: number; height: number; filter: 'bicubic' | 'bilinear'; rgbBase64: string }[];
  };
  const w = 13, h = 9;
  const src = makeImage(w, h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) {
    src.data[(y * w + x) * 3 + c] = (31 * x + 17 * y + 71 * c + 5 * x * y) % 256;
  }
  for (const k of ref.cases) {
    const out = resize(src, k.width, k.height, k.filter);
    assert.deepEqual(Buffer.from(out.data).toString('base64'), k.rgbBase64, `${k.filter} ${k.width}x${k.height}`);
  }
});

test('shorter side resize and centre crop shapes and offsets', () => {
  const img = makeImage(300, 200);
  assert.deepEqual([resizeBicubic(img, 224).width, resizeBicubic(img, 224).height], [336, 224]);
  const tall = makeImage(100, 333);
  assert.deepEqual([resizeBilinear(tall, 50).width, resizeBilinear(tall, 50).height], [50, 166]); // 166.5 truncates
  // 5x5 with pixel value = index; crop 2 → offset round(1.5) = 2 (round half to even, as Python).
  const idx = makeImage(5, 5, new Uint8Array(Array.from({ length: 25 }, (_, i) => [i, 0, 0]).flat()));
  const c = centerCrop(idx, 2);
  assert.deepEqual([c.width, c.height], [2, 2]);
  assert.equal(px(c, 0, 0)[0], 2 * 5 + 2);
  const c3 = centerCrop(idx, 3); // offset exactly 1
  assert.equal(px(c3, 0, 0)[0], 6);
  const padded = centerCrop(makeImage(2, 2, new Uint8Array(12).fill(50)), 4); // larger than image → black border
  assert.deepEqual(px(padded, 0, 0), [0, 0, 0]);
  assert.deepEqual(px(padded, 1, 1), [50, 50, 50]);
});

test('toCHWFloat normalises per channel in CHW order; preprocessClip gives (3,size,size)', () => {
  const img = makeImage(2, 1, new Uint8Array([255, 0, 128, 0, 255, 64]));
  const t = toCHWFloat(img);
  assert.equal(t.length, 6);
  const norm = (v: number, c: number): number => (v / 255 - CLIP_MEAN[c]!) / CLIP_STD[c]!;
  const expect = [norm(255, 0), norm(0, 0), norm(0, 1), norm(255, 1), norm(128, 2), norm(64, 2)];
  expect.forEach((e, i) => assert.ok(Math.abs(t[i]! - e) < 1e-5, `element ${i}`));
  const u = toCHWFloat(img, { mean: [0, 0, 0], std: [1, 1, 1] });
  assert.ok(Math.abs(u[4]! - 128 / 255) < 1e-6);
  const clip = preprocessClip(makeImage(300, 200, new Uint8Array(300 * 200 * 3).fill(255)), 32);
  assert.equal(clip.length, 3 * 32 * 32);
  assert.ok(Math.abs(clip[0]! - norm(255, 0)) < 1e-5);
});

test('augmentation: seeded random resized crop is reproducible; flips mirror', () => {
  const img = loadImage(join(FIX, 'interlaced.png'));
  const a = randomResizedCrop(img, 8, seeded(5));
  const b = randomResizedCrop(img, 8, seeded(5));
  assert.deepEqual([a.width, a.height], [8, 8]);
  assert.deepEqual(a.data, b.data);
  const f = flipHorizontal(img);
  assert.deepEqual(px(f, 0, 3), px(img, 15, 3));
  assert.deepEqual(flipHorizontal(f).data, img.data);
  assert.equal(randomHorizontalFlip(img, () => 0.9), img);
  assert.deepEqual(randomHorizontalFlip(img, () => 0.1).data, f.data);
});

test('video: frame folders sort numerically; sampling by fps and maxFrames', () => {
  const frames = Array.from({ length: 30 }, (_, i) => i);
  assert.deepEqual(sampleFrames(frames, { fps: 10, sourceFps: 30 }), [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]);
  assert.deepEqual(sampleFrames(frames, { fps: 1, sourceFps: 30 }), [0]);
  assert.deepEqual(sampleFrames(frames, { maxFrames: 4 }), [0, 7, 15, 22]);
  assert.deepEqual(sampleFrames(frames, { fps: 10, sourceFps: 30, maxFrames: 5 }), [0, 6, 12, 18, 24]);
  assert.throws(() => sampleFrames(frames, { fps: 2 }), /sourceFps/);

  const dir = mkdtempSync(join(tmpdir(), 'flamingo-video-test-'));
  try {
    for (const i of [1, 2, 10]) writeFileSync(join(dir, `frame${i}.png`), encodePng(makeImage(2, 2, new Uint8Array(12).fill(i))));
    writeFileSync(join(dir, 'notes.txt'), 'not a frame');
    assert.deepEqual(listFrameFiles(dir).map((p) => p.slice(dir.length + 1)), ['frame1.png', 'frame2.png', 'frame10.png']);
    const loaded = loadVideoFrames(dir, { fps: 1, sourceFps: 2 });
    assert.deepEqual(loaded.map((f) => f.data[0]), [1, 10]);
    assert.throws(() => loadVideoFrames(join(dir, 'missing.mp4')), VideoError);
    // A video file without ffmpeg on PATH: a clear error naming the package.
    writeFileSync(join(dir, 'clip.mp4'), 'not really a video');
    const savedPath = process.env.PATH;
    process.env.PATH = dir;
    try {
      assert.throws(() => loadVideoFrames(join(dir, 'clip.mp4')), /needs ffmpeg on PATH \(apt-get install ffmpeg\)/);
    } finally {
      process.env.PATH = savedPath;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
