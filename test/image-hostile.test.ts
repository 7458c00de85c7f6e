// Hostile image files (issue 19): each is refused with one clear error, quickly and with bounded
// memory. Files are crafted here; decoding runs in a child process whose peak RSS is read from
// its own resource usage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import { PNG_SIG, ihdr, jpegClaiming, pngChunk, pngFromRows, pngWithRaw } from './helpers/png-craft.ts';
import { ImageDecodeError, ImageTooLargeError, decodeImage, loadImage, readImageFile } from '../src/data/image.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const IMAGE_TS = join(ROOT, 'src', 'data', 'image.ts');
const IMAGE_TENSOR_TS = join(ROOT, 'src', 'data', 'image-tensor.ts');
const PRE_TS = join(ROOT, 'src', 'model', 'preprocess-config.ts');
const MB = 1024 * 1024;

interface ChildResult { status: number | null; error: string | null; maxRssMB: number; ok: boolean; stderr: string }

/** loadImage(path) in a fresh Node process; reports the error message and the process's peak RSS. */
function decodeInChild(path: string, limits: object = {}, preprocess = false): ChildResult {
  const code = `
    const { loadImage } = await import(${JSON.stringify(IMAGE_TS)});
    const { preprocessImage } = await import(${JSON.stringify(IMAGE_TENSOR_TS)});
    const { OPEN_CLIP_EVAL_PREPROCESS } = await import(${JSON.stringify(PRE_TS)});
    let error = null;
    try {
      const img = loadImage(${JSON.stringify(path)}, { limits: ${JSON.stringify(limits)} });
      if (${preprocess}) for (const order of ['as_opened', 'rgb_first']) preprocessImage(img, 224, { ...OPEN_CLIP_EVAL_PREPROCESS, order });
    } catch (e) { error = e.name + ': ' + e.message; }
    process.stdout.write(JSON.stringify({ error, maxRss: process.resourceUsage().maxRSS }));`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  const out = r.status === 0 ? JSON.parse(r.stdout) as { error: string | null; maxRss: number } : { error: null, maxRss: 0 };
  return { status: r.status, error: out.error, maxRssMB: out.maxRss / 1024, ok: r.status === 0, stderr: r.stderr };
}

/** Peak RSS of a child that only loads the image module: the baseline the cases are compared with. */
let baselineMB = 0;

const dir = mkdtempSync(join(tmpdir(), 'flamingo-hostile-img-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, bytes: Uint8Array): string => {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
};

test('baseline child peak RSS', () => {
  const ok = file('ok.png', pngFromRows(2, 1, 8, 0, [new Uint8Array([1, 2])]));
  const r = decodeInChild(ok);
  assert.ok(r.ok, r.stderr);
  assert.equal(r.error, null);
  baselineMB = r.maxRssMB;
});

const cases: { name: string; make: () => Uint8Array | string; error: RegExp }[] = [
  {
    name: '69-byte PNG claiming 20000x20000',
    make: () => {
      const png = pngWithRaw(20000, 20000, 8, 2, new Uint8Array([0, 1, 2, 3]));
      assert.equal(png.length, 69);
      return png;
    },
    error: /ImageTooLargeError: .*PNG header claims 20000x20000 = 400000000 pixels, more than the limit/,
  },
  {
    name: 'JPEG claiming 10000x9999',
    make: () => jpegClaiming(10000, 9999),
    error: /ImageTooLargeError: .*JPEG header claims 10000x9999/,
  },
  {
    name: '63x63 PNG with only its first row',
    make: () => pngWithRaw(63, 63, 8, 2, new Uint8Array(1 + 63 * 3).fill(7)),
    error: /ImageDecodeError: .*truncated: 190 of 11970 bytes/,
  },
  {
    name: 'PNG claiming 3000x3000 with 100 data bytes',
    make: () => pngWithRaw(3000, 3000, 8, 2, new Uint8Array(100)),
    error: /ImageDecodeError: .*truncated: 100 of 27003000 bytes/,
  },
  {
    name: 'PNG file cut in the middle of its data',
    make: () => {
      const full = pngFromRows(40, 40, 8, 2, Array.from({ length: 40 }, (_, y) => new Uint8Array(120).map((_, i) => (i * 7 + y * 13) % 256)));
      return full.subarray(0, Math.floor(full.length / 2));
    },
    error: /ImageDecodeError: .*chunk IDAT .*beyond the end of the file/,
  },
  {
    name: 'PNG whose zlib stream stops early (chunks intact)',
    make: () => {
      const raw = Buffer.alloc(40 * (1 + 120), 5);
      const stream = deflateSync(raw, { level: 0 }).subarray(0, 300);
      return Buffer.concat([PNG_SIG, ihdr(40, 40, 8, 2), pngChunk('IDAT', stream), pngChunk('IEND')]);
    },
    error: /ImageDecodeError: .*corrupt or truncated \(zlib/,
  },
  {
    name: 'deflate bomb: 2000x2000 gray whose data inflates to 64 MB',
    make: () => pngWithRaw(2000, 2000, 8, 0, new Uint8Array(64 * MB)),
    error: /ImageDecodeError: .*inflates to more than the 4002000 bytes/,
  },
  { name: '/dev/zero', make: () => '/dev/zero', error: /ImageDecodeError: .*\/dev\/zero: not a PNG or JPEG/ },
];

for (const c of cases) {
  test(`hostile image: ${c.name} -> one-line error, bounded memory`, () => {
    const made = c.make();
    const path = typeof made === 'string' ? made : file(c.name.replace(/\W+/g, '_'), made);
    const r = decodeInChild(path);
    assert.ok(r.ok, `child failed: ${r.stderr}`);
    assert.ok(r.error !== null, 'decoding must fail');
    assert.match(r.error!, c.error);
    assert.ok(!r.error!.includes('\n'), 'one line');
    // The image decoders must not allocate what the header claims: within 64 MB of the baseline.
    assert.ok(r.maxRssMB - baselineMB < 64, `peak RSS ${r.maxRssMB.toFixed(0)} MB vs baseline ${baselineMB.toFixed(0)} MB`);
  });
}

test('file size limit: files over maxBytes are refused from their size, pipes and devices by reading at most the limit', () => {
  const big = file('big.png', pngFromRows(64, 64, 8, 0, Array.from({ length: 64 }, () => new Uint8Array(64).map(() => Math.floor(Math.random() * 256)))));
  assert.throws(() => loadImage(big, { limits: { maxBytes: 1000 } }), (e: unknown) => e instanceof ImageTooLargeError && /more than the limit of 1000 \(maxBytes\)/.test(e.message));
  assert.equal(readImageFile(big).length > 1000, true);
  assert.throws(() => decodeImage(new Uint8Array(2000), { name: 'mem', limits: { maxBytes: 1000 } }), /mem: 2000 bytes, more than the limit/);
  assert.throws(() => loadImage(big, { limits: { maxPixels: 4095 } }), /64x64 = 4096 pixels, more than the limit of 4095/);
  assert.throws(() => loadImage(big, { limits: { maxPixels: -1 } }), /maxPixels must be a positive integer/);
  assert.throws(() => loadImage(dir), (e: unknown) => e instanceof ImageDecodeError && /is a directory/.test(e.message));
});

test('animated PNG announcing more frames than maxFrames is refused', () => {
  const actl = Buffer.alloc(8);
  actl.writeUInt32BE(5000, 0);
  const png = pngFromRows(1, 1, 8, 0, [new Uint8Array([3])], [pngChunk('acTL', actl)]);
  assert.throws(() => decodeImage(png, 'anim.png'), /anim\.png: animated PNG announces 5000 frames, more than the limit of 1000 \(maxFrames\)/);
  assert.equal(decodeImage(png, { name: 'anim.png', limits: { maxFrames: 5000 } }).data[0], 3);
});

test('truncated or doubled JPEG data is an error, never a partly filled image', () => {
  const jpg = readFileSync(join(ROOT, 'test', 'fixtures', 'shared', 'preprocess', 'jpeg_real_progressive_420', 'input.jpg'));
  for (const cut of [0.3, 0.6, 0.95, 1 - 2 / jpg.length]) {
    assert.throws(() => decodeImage(jpg.subarray(0, Math.floor(jpg.length * cut)), 'cut.jpg'), (e: unknown) => e instanceof ImageDecodeError && /cut\.jpg: JPEG is truncated/.test(e.message), `cut at ${cut}`);
  }
  // A second frame header (e.g. a larger one hidden after the first) is refused.
  const sof = jpg.indexOf(Buffer.from([0xff, 0xc2]));
  const len = jpg.readUInt16BE(sof + 2);
  const doubled = Buffer.concat([jpg.subarray(0, sof + 2 + len), jpg.subarray(sof, sof + 2 + len), jpg.subarray(sof + 2 + len)]);
  assert.throws(() => decodeImage(doubled, 'two.jpg'), /two\.jpg: more than one frame header/);
});

test('a 1 x 40000 image is preprocessed without materialising its 224 x 8960000 resize', () => {
  const rows = Array.from({ length: 40000 }, (_, y) => new Uint8Array([y % 251, (y * 7) % 256, 9]));
  const path = file('thin.png', pngFromRows(1, 40000, 8, 2, rows));
  const r = decodeInChild(path, {}, true);
  assert.ok(r.ok, r.stderr);
  assert.equal(r.error, null);
  assert.ok(r.maxRssMB - baselineMB < 64, `peak RSS ${r.maxRssMB.toFixed(0)} MB vs baseline ${baselineMB.toFixed(0)} MB`);
});

test('the server refuses an image exactly when the decoder would, for the same reason (header checks shared)', async () => {
  const { imageFromUrl } = await import('../src/serve/images.ts');
  const { resolveLimits } = await import('../src/serve/limits.ts');
  const { ServeError } = await import('../src/serve/errors.ts');
  const { readImageHeader } = await import('../src/data/image.ts');
  const limits = resolveLimits({ maxImagePixels: 64 * 64 });
  const decodeLimits = { maxBytes: limits.maxImageBytes, maxPixels: limits.maxImagePixels };
  const ok = pngFromRows(2, 2, 8, 0, [new Uint8Array(2), new Uint8Array(2)]);
  const cases: [string, Buffer][] = [
    ['valid gray PNG', ok],
    ['PNG with bit depth 3', Buffer.concat([PNG_SIG, ihdr(2, 2, 3, 0), pngChunk('IEND')])],
    ['PNG colour type 5', Buffer.concat([PNG_SIG, ihdr(2, 2, 8, 5), pngChunk('IEND')])],
    ['PNG whose first chunk is not IHDR', Buffer.concat([PNG_SIG, pngChunk('IEND')])],
    ['PNG truncated in IHDR', ok.subarray(0, 20)],
    ['PNG over the pixel limit', Buffer.concat([PNG_SIG, ihdr(65, 64, 8, 0), pngChunk('IEND')])],
    ['JPEG over the pixel limit', jpegClaiming(100, 100)],
    ['GIF', Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'latin1')],
  ];
  for (const [what, bytes] of cases) {
    let decoderError: Error | null = null;
    try { decodeImage(bytes, { name: 'x', limits: decodeLimits }); } catch (e) { decoderError = e as Error; }
    let headerError: Error | null = null;
    try { readImageHeader(bytes, { name: 'x', limits: decodeLimits }); } catch (e) { headerError = e as Error; }
    let serverError: InstanceType<typeof ServeError> | null = null;
    try { imageFromUrl(`data:image/png;base64,${bytes.toString('base64')}`, 'images[0]', limits); } catch (e) { serverError = e as InstanceType<typeof ServeError>; }
    if (headerError === null) {
      assert.equal(serverError, null, `${what}: the server accepts what the header check accepts`);
      continue;
    }
    // a header the decoder refuses is refused by the server, with the decoder's reason and a 4xx
    assert.ok(decoderError, `${what}: the decoder refuses it too`);
    assert.equal(headerError.message, decoderError.message, what);
    assert.ok(serverError instanceof ServeError, `${what}: refused by the server`);
    assert.equal(serverError.status, headerError instanceof ImageTooLargeError ? 413 : 400, what);
    assert.ok(serverError.message.includes(headerError.message.replace(/^cannot decode image x: /, '')), `${what}: ${serverError.message}`);
  }
});
