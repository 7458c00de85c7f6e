// The JPEG decoder against libjpeg-turbo itself: files encoded by cjpeg in many variants (chroma
// subsampling, progressive, restart intervals, quality, grayscale, RGB) must decode to exactly what
// djpeg (the library's default settings, as Pillow uses them) outputs. Needs cjpeg/djpeg
// (scripts/setup.sh installs libjpeg-turbo-progs); skipped with a message when they are missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeImage } from '../src/data/image.ts';
import { decodeJpegExact } from '../src/data/jpeg-decode.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const haveTools = spawnSync('djpeg', ['-version']).status === 0 && spawnSync('cjpeg', ['-version']).status === 0;

/** PNM bytes of the top-left w x h of an RGB image (gray: its red channel). */
function pnm(img: { width: number; data: Uint8Array }, w: number, h: number, gray: boolean): Buffer {
  const ch = gray ? 1 : 3;
  const out = Buffer.alloc(w * h * ch);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < ch; c++) out[(y * w + x) * ch + c] = img.data[(y * img.width + x) * 3 + c]!;
  return Buffer.concat([Buffer.from(`${gray ? 'P5' : 'P6'}\n${w} ${h}\n255\n`), out]);
}

/** Pixel bytes of a binary PNM with a plain three-line header (what djpeg writes). */
function pnmPixels(b: Buffer): Buffer {
  let nl = 0;
  let i = 0;
  while (nl < 3) if (b[i++] === 0x0a) nl++;
  return b.subarray(i);
}

test('JPEG decoding equals libjpeg-turbo (djpeg) byte for byte across encodings', { skip: haveTools ? false : 'cjpeg/djpeg not installed (apt-get install libjpeg-turbo-progs)' }, () => {
  const photo = decodeImage(readFileSync(join(HERE, 'fixtures', 'shared', 'preprocess', 'jpeg_real_baseline_444', 'input.jpg')), { alpha: 'drop' });
  const dir = mkdtempSync(join(tmpdir(), 'flamingo-jpeg-'));
  try {
    const variants: [string, string[], boolean][] = [
      ['4:4:4', ['-sample', '1x1'], false], ['4:2:2', ['-sample', '2x1'], false], ['4:4:0', ['-sample', '1x2'], false],
      ['4:2:0', ['-sample', '2x2'], false], ['4:1:1', ['-sample', '4x1'], false], ['progressive 4:2:0', ['-sample', '2x2', '-progressive'], false],
      ['restarts', ['-sample', '2x2', '-restart', '2B'], false], ['progressive restarts', ['-progressive', '-restart', '1'], false],
      ['quality 5', ['-quality', '5'], false], ['quality 100 optimized', ['-quality', '100', '-optimize'], false],
      ['RGB', ['-rgb'], false], ['gray', [], true], ['gray progressive', ['-progressive'], true],
    ];
    let checked = 0;
    for (const [w, h] of [[45, 31], [2, 3], [160, 97]]) {
      for (const [name, args, gray] of variants) {
        const src = join(dir, 'in.pnm');
        const jpg = join(dir, 'out.jpg');
        writeFileSync(src, pnm(photo, w, h, gray));
        execFileSync('cjpeg', [...args, '-outfile', jpg, src], { stdio: ['ignore', 'ignore', 'ignore'] });
        const want = pnmPixels(execFileSync('djpeg', [jpg]));
        const got = decodeJpegExact(readFileSync(jpg));
        assert.equal(got.data.length, want.length, `${name} ${w}x${h}`);
        assert.ok(Buffer.from(got.data).equals(want), `${name} ${w}x${h}: decoded pixels differ from djpeg`);
        checked++;
      }
    }
    assert.equal(checked, 39);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
