/**
 * From decoded coefficients to pixels as libjpeg-turbo gives them: each block through the IDCT
 * (jpeg-idct.ts), "fancy" triangle-filter upsampling of subsampled chroma (jdsample.c; h2v1, h1v2, h2v2,
 * other ratios replicate) and table-driven rounded YCbCr -> RGB (jdcolor.c); CMYK / YCCK as Pillow holds them.
 */
import { JpegFormatError, type Component, type JpegPixels } from './jpeg-frame.ts';
import { idctIslow } from './jpeg-idct.ts';


/** Component samples at full resolution (width x height), upsampled as libjpeg-turbo does by default. */
function upsample(plane: Uint8Array, stride: number, c: Component, width: number, height: number, maxH: number, maxV: number): Uint8Array {
  const hs = maxH / c.h;
  const vs = maxV / c.v;
  const cw = c.w;
  const ch = c.h_;
  const out = new Uint8Array(width * height);
  const at = (x: number, y: number): number => plane[y * stride + x]!;
  if (hs === 1 && vs === 1) {
    for (let y = 0; y < height; y++) out.set(plane.subarray(y * stride, y * stride + width), y * width);
    return out;
  }
  const fancy = cw > 2;
  if (hs === 2 && vs === 1 && fancy) {
    for (let y = 0; y < height; y++) {
      const row = new Uint8Array(2 * cw);
      row[0] = at(0, y);
      row[1] = (at(0, y) * 3 + at(1, y) + 2) >> 2;
      for (let x = 1; x < cw - 1; x++) {
        const v = at(x, y) * 3;
        row[2 * x] = (v + at(x - 1, y) + 1) >> 2;
        row[2 * x + 1] = (v + at(x + 1, y) + 2) >> 2;
      }
      row[2 * cw - 2] = (at(cw - 1, y) * 3 + at(cw - 2, y) + 1) >> 2;
      row[2 * cw - 1] = at(cw - 1, y);
      out.set(row.subarray(0, width), y * width);
    }
    return out;
  }
  if (hs === 1 && vs === 2) {
    for (let y = 0; y < height; y++) {
      const iy = y >> 1;
      const far = y & 1 ? Math.min(iy + 1, ch - 1) : Math.max(iy - 1, 0);
      const bias = y & 1 ? 2 : 1;
      for (let x = 0; x < width; x++) out[y * width + x] = (at(x, iy) * 3 + at(x, far) + bias) >> 2;
    }
    return out;
  }
  if (hs === 2 && vs === 2 && fancy) {
    const row = new Uint8Array(2 * cw);
    for (let y = 0; y < height; y++) {
      const iy = y >> 1;
      const far = y & 1 ? Math.min(iy + 1, ch - 1) : Math.max(iy - 1, 0);
      const sum = (x: number): number => at(x, iy) * 3 + at(x, far);
      let last = sum(0);
      let cur = last;
      let next = sum(1);
      row[0] = (cur * 4 + 8) >> 4;
      row[1] = (cur * 3 + next + 7) >> 4;
      for (let x = 1; x < cw - 1; x++) {
        last = cur;
        cur = next;
        next = sum(x + 1);
        row[2 * x] = (cur * 3 + last + 8) >> 4;
        row[2 * x + 1] = (cur * 3 + next + 7) >> 4;
      }
      last = cur;
      cur = next;
      row[2 * cw - 2] = (cur * 3 + last + 8) >> 4;
      row[2 * cw - 1] = (cur * 4 + 7) >> 4;
      out.set(row.subarray(0, width), y * width);
    }
    return out;
  }
  // Other integral ratios (and images too narrow for the fancy filters): replication.
  for (let y = 0; y < height; y++) {
    const iy = Math.min(Math.floor(y / vs), ch - 1);
    for (let x = 0; x < width; x++) out[y * width + x] = at(Math.floor(x / hs), iy);
  }
  return out;
}

const FIX = (x: number): number => Math.floor(x * 65536 + 0.5);
const CR_R = new Int32Array(256), CB_B = new Int32Array(256), CR_G = new Int32Array(256), CB_G = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  CR_R[i] = (FIX(1.402) * x + 32768) >> 16;
  CB_B[i] = (FIX(1.772) * x + 32768) >> 16;
  CR_G[i] = -FIX(0.71414) * x;
  CB_G[i] = -FIX(0.34414) * x + 32768;
}
const clamp = (v: number): number => (v < 0 ? 0 : v > 255 ? 255 : v);

/** The pixels of a fully decoded frame (its components' coefficients are released as they are used). */
export function toPixels(comps: Component[], width: number, height: number, maxH: number, maxV: number, adobe: number | null, jfif: boolean): JpegPixels {
  const n = comps.length;
  if (n !== 1 && n !== 3 && n !== 4) throw new JpegFormatError(`${n} colour components are not supported`);
  const ws = new Int32Array(64);
  const planes = comps.map((c) => {
    const stride = c.bw * 8;
    const plane = new Uint8Array(stride * c.bh * 8);
    const q = c.quant ?? new Uint16Array(64);
    for (let by = 0; by < c.bh; by++) for (let bx = 0; bx < c.bw; bx++) idctIslow(c.coefs, (by * c.bw + bx) * 64, q, ws, plane, stride, bx * 8, by * 8);
    c.coefs = new Int16Array(0); // free as we go
    return upsample(plane, stride, c, width, height, maxH, maxV);
  });
  const px = width * height;
  if (n === 1) return { width, height, channels: 1, data: planes[0]! };
  const out = new Uint8Array(px * n);
  // libjpeg's colour space guess (default_decompress_parms): for 3 components JFIF means YCbCr, then
  // the Adobe transform flag (0 = RGB), then component ids 'R','G','B'; for 4 components an Adobe
  // transform other than 0 means YCCK, anything else CMYK.
  const ids = comps.map((c) => c.id).join(',');
  const transform = n === 3
    ? jfif ? true : adobe !== null ? adobe !== 0 : ids !== '82,71,66'
    : adobe !== null && adobe !== 0;
  const [p0, p1, p2] = planes as [Uint8Array, Uint8Array, Uint8Array];
  for (let i = 0; i < px; i++) {
    let a = p0[i]!, b = p1[i]!, c = p2[i]!;
    if (transform) {
      const y = a;
      a = clamp(y + CR_R[c]!);
      b = clamp(y + ((CB_G[b]! + CR_G[c]!) >> 16));
      c = clamp(y + CB_B[p1[i]!]!);
      if (n === 4) { a = 255 - a; b = 255 - b; c = 255 - c; } // YCCK -> CMYK
    }
    if (n === 3) {
      out[3 * i] = a; out[3 * i + 1] = b; out[3 * i + 2] = c;
    } else {
      // Pillow reads 4-component JPEGs with Adobe (inverted) polarity.
      out[4 * i] = 255 - a; out[4 * i + 1] = 255 - b; out[4 * i + 2] = 255 - c; out[4 * i + 3] = 255 - planes[3]![i]!;
    }
  }
  return { width, height, channels: n as 3 | 4, data: out };
}

