/**
 * A JPEG decoder that gives libjpeg-turbo's default output (what Pillow returns): baseline and
 * progressive Huffman coding, the accurate integer IDCT ("islow", 13-bit constants), "fancy"
 * triangle-filter upsampling of subsampled chroma (h2v1, h1v2, h2v2; other ratios replicate), and
 * table-driven rounded YCbCr->RGB. CMYK/YCCK files come out as Pillow holds them (Adobe polarity,
 * inverted). Semantics follow libjpeg-turbo's jdhuff/jdphuff/jidctint/jdsample/jdcolor.
 *
 * The caller has already checked the header against the limits; this module allocates only what
 * the frame header implies and treats data that ends before the image is complete as an error.
 */
import { FlamingoError } from '../errors.ts';

/** Malformed JPEG data; jpeg.ts reports it as an ImageDecodeError naming the file. */
export class JpegFormatError extends FlamingoError {}

const ZIGZAG = new Int32Array([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
  28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61,
  54, 47, 55, 62, 63,
]);

interface Huffman {
  /** (length << 16 | code) -> symbol, looked up bit by bit. */
  maxcode: Int32Array;
  valptr: Int32Array;
  mincode: Int32Array;
  values: Uint8Array;
}

function buildHuffman(counts: Uint8Array, values: Uint8Array): Huffman {
  const maxcode = new Int32Array(18).fill(-1);
  const valptr = new Int32Array(17);
  const mincode = new Int32Array(17);
  let code = 0;
  let k = 0;
  for (let l = 1; l <= 16; l++) {
    valptr[l] = k;
    mincode[l] = code;
    code += counts[l - 1]!;
    k += counts[l - 1]!;
    maxcode[l] = counts[l - 1] ? code - 1 : -1;
    code <<= 1;
  }
  maxcode[17] = 0x7fffffff;
  return { maxcode, valptr, mincode, values };
}

interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  /** Blocks per line / column covering the component's MCU-padded area. */
  bw: number;
  bh: number;
  /** Sample width / height of the component (libjpeg's downsampled_width / height). */
  w: number;
  h_: number;
  coefs: Int16Array;
  quant: Uint16Array | null;
  dcPred: number;
  dcTable: number;
  acTable: number;
}

class BitReader {
  pos: number;
  private bits = 0;
  private nbits = 0;
  /** A marker was reached: libjpeg feeds zero bits from here on. */
  hitMarker = false;

  constructor(private readonly data: Uint8Array, start: number) {
    this.pos = start;
  }

  private fill(): void {
    while (this.nbits <= 24) {
      let byte = 0;
      if (!this.hitMarker) {
        if (this.pos >= this.data.length) throw new JpegFormatError('JPEG is truncated inside its scan data');
        byte = this.data[this.pos]!;
        if (byte === 0xff) {
          const next = this.data[this.pos + 1];
          if (next === 0x00) {
            this.pos += 2;
          } else {
            this.hitMarker = true;
            byte = 0;
          }
        } else {
          this.pos++;
        }
      }
      this.bits = ((this.bits << 8) | byte) >>> 0;
      this.nbits += 8;
    }
  }

  bit(): number {
    if (this.nbits === 0) this.fill();
    this.nbits--;
    return (this.bits >>> this.nbits) & 1;
  }

  get(n: number): number {
    if (n === 0) return 0;
    if (this.nbits < n) this.fill();
    this.nbits -= n;
    return (this.bits >>> this.nbits) & ((1 << n) - 1);
  }

  decode(t: Huffman): number {
    let code = this.bit();
    let l = 1;
    while (code > t.maxcode[l]!) {
      code = (code << 1) | this.bit();
      l++;
      if (l > 16) throw new JpegFormatError('corrupt JPEG data: bad Huffman code');
    }
    return t.values[t.valptr[l]! + code - t.mincode[l]!]!;
  }

  /** Drop buffered bits and step over an RSTn marker (restart interval boundary). */
  restart(): void {
    this.bits = 0;
    this.nbits = 0;
    this.hitMarker = false;
    while (this.pos + 1 < this.data.length && !(this.data[this.pos] === 0xff && this.data[this.pos + 1]! >= 0xd0 && this.data[this.pos + 1]! <= 0xd7)) this.pos++;
    if (this.pos + 1 >= this.data.length) throw new JpegFormatError('JPEG is truncated (missing restart marker)');
    this.pos += 2;
  }

  /** Position of the next marker after the scan. */
  end(): number {
    let p = this.pos;
    while (p + 1 < this.data.length && !(this.data[p] === 0xff && this.data[p + 1] !== 0x00 && !(this.data[p + 1]! >= 0xd0 && this.data[p + 1]! <= 0xd7))) p++;
    return p;
  }
}

const extend = (v: number, s: number): number => (s === 0 ? 0 : v < 1 << (s - 1) ? v - (1 << s) + 1 : v);

export interface JpegPixels {
  width: number;
  height: number;
  /** 1 (gray), 3 (RGB) or 4 (CMYK as Pillow holds it). */
  channels: 1 | 3 | 4;
  data: Uint8Array;
}

/** Decode a whole JPEG file; a frame header over `maxPixels` (or a second one) is refused before allocating. */
export function decodeJpegExact(data: Uint8Array, maxPixels = Infinity): JpegPixels {
  const qt: (Uint16Array | null)[] = [null, null, null, null];
  const dc: (Huffman | null)[] = [null, null, null, null];
  const ac: (Huffman | null)[] = [null, null, null, null];
  let comps: Component[] = [];
  let width = 0;
  let height = 0;
  let maxH = 1;
  let maxV = 1;
  let mcusX = 0;
  let mcusY = 0;
  let progressive = false;
  let restartInterval = 0;
  let adobe: number | null = null;
  let jfif = false;
  let eobrun = 0;
  let sawEOI = false;
  let pos = 2;
  const u16 = (p: number): number => (data[p]! << 8) | data[p + 1]!;

  while (pos < data.length) {
    if (data[pos] !== 0xff) { pos++; continue; }
    const marker = data[pos + 1]!;
    if (marker === 0xff) { pos++; continue; }
    pos += 2;
    if (marker === 0xd9) { sawEOI = true; break; }
    if (marker >= 0xd0 && marker <= 0xd7) continue;
    if (pos + 2 > data.length) throw new JpegFormatError('JPEG is truncated (marker segment)');
    const len = u16(pos);
    const seg = data.subarray(pos + 2, pos + len);
    if (seg.length !== len - 2) throw new JpegFormatError('JPEG is truncated (marker segment)');
    switch (marker) {
      case 0xdb: { // DQT
        let p = 0;
        while (p < seg.length) {
          const pq = seg[p]! >> 4;
          const tq = seg[p]! & 15;
          p++;
          if (tq > 3) throw new JpegFormatError('bad quantisation table id');
          const t = new Uint16Array(64);
          for (let i = 0; i < 64; i++) {
            t[ZIGZAG[i]!] = pq ? (seg[p + 2 * i]! << 8) | seg[p + 2 * i + 1]! : seg[p + i]!;
          }
          p += pq ? 128 : 64;
          qt[tq] = t;
        }
        break;
      }
      case 0xc4: { // DHT
        let p = 0;
        while (p < seg.length) {
          const tc = seg[p]! >> 4;
          const th = seg[p]! & 15;
          const counts = seg.subarray(p + 1, p + 17);
          let total = 0;
          for (const c of counts) total += c;
          if (th > 3 || total > 256 || p + 17 + total > seg.length) throw new JpegFormatError('bad Huffman table');
          const table = buildHuffman(counts, seg.slice(p + 17, p + 17 + total));
          (tc === 0 ? dc : ac)[th] = table;
          p += 17 + total;
        }
        break;
      }
      case 0xc0: case 0xc1: case 0xc2: { // SOF
        if (comps.length > 0) throw new JpegFormatError('more than one frame header');
        progressive = marker === 0xc2;
        height = u16(pos + 3);
        width = u16(pos + 5);
        if (seg[0] !== 8) throw new JpegFormatError(`${seg[0]}-bit samples are not supported (8-bit only)`);
        if (width === 0 || height === 0) throw new JpegFormatError(`frame size ${width}x${height} is not supported`);
        if (width * height > maxPixels) throw new JpegFormatError(`frame header claims ${width}x${height}, more than the pixel limit ${maxPixels}`);
        const n = seg[5]!;
        comps = [];
        for (let i = 0; i < n; i++) {
          const b = 6 + 3 * i;
          const h = seg[b + 1]! >> 4;
          const v = seg[b + 1]! & 15;
          if (h < 1 || h > 4 || v < 1 || v > 4) throw new JpegFormatError('bad sampling factors');
          comps.push({ id: seg[b]!, h, v, tq: seg[b + 2]! & 3, bw: 0, bh: 0, w: 0, h_: 0, coefs: new Int16Array(0), quant: null, dcPred: 0, dcTable: 0, acTable: 0 });
        }
        maxH = Math.max(...comps.map((c) => c.h));
        maxV = Math.max(...comps.map((c) => c.v));
        mcusX = Math.ceil(width / (8 * maxH));
        mcusY = Math.ceil(height / (8 * maxV));
        for (const c of comps) {
          c.bw = mcusX * c.h;
          c.bh = mcusY * c.v;
          c.w = Math.ceil((width * c.h) / maxH);
          c.h_ = Math.ceil((height * c.v) / maxV);
          c.coefs = new Int16Array(c.bw * c.bh * 64);
        }
        break;
      }
      case 0xdd: restartInterval = u16(pos + 2); break;
      case 0xe0: if (seg.length >= 5 && String.fromCharCode(...seg.subarray(0, 4)) === 'JFIF') jfif = true; break;
      case 0xee: if (seg.length >= 12 && String.fromCharCode(...seg.subarray(0, 5)) === 'Adobe') adobe = seg[11]!; break;
      case 0xda: { // SOS
        if (comps.length === 0) throw new JpegFormatError('scan before frame header');
        const ns = seg[0]!;
        const scomps: Component[] = [];
        for (let i = 0; i < ns; i++) {
          const c = comps.find((x) => x.id === seg[1 + 2 * i]);
          if (!c) throw new JpegFormatError('scan names an unknown component');
          c.dcTable = seg[2 + 2 * i]! >> 4;
          c.acTable = seg[2 + 2 * i]! & 15;
          // libjpeg latches a component's quantisation table when the component first appears.
          if (!c.quant) {
            const q = qt[c.tq];
            if (!q) throw new JpegFormatError('missing quantisation table');
            c.quant = q.slice();
          }
          scomps.push(c);
        }
        const ss = seg[1 + 2 * ns]!;
        const se = seg[2 + 2 * ns]!;
        const ah = seg[3 + 2 * ns]! >> 4;
        const al = seg[3 + 2 * ns]! & 15;
        const reader = new BitReader(data, pos + len);
        eobrun = 0;
        decodeScan(reader, scomps, { ss, se, ah, al }, progressive, restartInterval, mcusX, mcusY, dc, ac, () => eobrun, (v) => { eobrun = v; });
        pos = reader.end();
        continue;
      }
      default:
        if ((marker >= 0xc3 && marker <= 0xcf) && marker !== 0xc8 && marker !== 0xcc) throw new JpegFormatError(`unsupported JPEG process (SOF${marker - 0xc0})`);
    }
    pos += len;
  }
  if (!sawEOI) throw new JpegFormatError('JPEG is truncated (no end-of-image marker)');
  if (comps.length === 0) throw new JpegFormatError('no frame header');
  return toPixels(comps, width, height, maxH, maxV, adobe, jfif);
}

interface ScanParams { ss: number; se: number; ah: number; al: number }

function decodeScan(
  r: BitReader, scomps: Component[], p: ScanParams, progressive: boolean, restartInterval: number,
  mcusX: number, mcusY: number, dc: (Huffman | null)[], ac: (Huffman | null)[],
  getEob: () => number, setEob: (v: number) => void,
): void {
  for (const c of scomps) c.dcPred = 0;
  const table = (t: (Huffman | null)[], i: number): Huffman => {
    const h = t[i];
    if (!h) throw new JpegFormatError('missing Huffman table');
    return h;
  };
  const decodeBlock = (c: Component, off: number): void => {
    const co = c.coefs;
    if (!progressive) {
      const s = r.decode(table(dc, c.dcTable));
      c.dcPred += extend(r.get(s), s);
      co[off] = c.dcPred;
      const act = table(ac, c.acTable);
      for (let k = 1; k < 64;) {
        const rs = r.decode(act);
        const rr = rs >> 4;
        const ss = rs & 15;
        if (ss) {
          k += rr;
          if (k > 63) break;
          co[off + ZIGZAG[k]!] = extend(r.get(ss), ss);
          k++;
        } else {
          if (rr !== 15) break;
          k += 16;
        }
      }
      return;
    }
    if (p.ss === 0) {
      // DC scans (progressive): first pass or one refinement bit.
      if (p.ah === 0) {
        const s = r.decode(table(dc, c.dcTable));
        c.dcPred += extend(r.get(s), s);
        co[off] = c.dcPred * (1 << p.al);
      } else if (r.bit()) {
        co[off] |= 1 << p.al;
      }
      return;
    }
    const act = table(ac, c.acTable);
    if (p.ah === 0) {
      let eob = getEob();
      if (eob > 0) { setEob(eob - 1); return; }
      for (let k = p.ss; k <= p.se;) {
        const rs = r.decode(act);
        const rr = rs >> 4;
        const ss = rs & 15;
        if (ss) {
          k += rr;
          if (k > 63) break;
          co[off + ZIGZAG[k]!] = extend(r.get(ss), ss) * (1 << p.al);
          k++;
        } else if (rr === 15) {
          k += 16;
        } else {
          eob = (1 << rr) - 1 + r.get(rr);
          setEob(eob);
          break;
        }
      }
      return;
    }
    // AC refinement (libjpeg's decode_mcu_AC_refine).
    const p1 = 1 << p.al;
    const m1 = -1 << p.al;
    let k = p.ss;
    let eob = getEob();
    if (eob === 0) {
      for (; k <= p.se; k++) {
        const rs = r.decode(act);
        let rr = rs >> 4;
        const ss = rs & 15;
        let val = 0;
        if (ss) {
          if (ss !== 1) throw new JpegFormatError('corrupt JPEG data: bad progressive refinement');
          val = r.bit() ? p1 : m1;
        } else if (rr !== 15) {
          eob = 1 << rr;
          if (rr) eob += r.get(rr);
          break;
        }
        do {
          const z = off + ZIGZAG[k]!;
          const t = co[z]!;
          if (t !== 0) {
            if (r.bit() && (t & p1) === 0) co[z] = t >= 0 ? t + p1 : t + m1;
          } else {
            if (--rr < 0) break;
          }
          k++;
        } while (k <= p.se);
        if (val && k <= 63) co[off + ZIGZAG[k]!] = val;
      }
    }
    if (eob > 0) {
      for (; k <= p.se; k++) {
        const z = off + ZIGZAG[k]!;
        const t = co[z]!;
        if (t !== 0 && r.bit() && (t & p1) === 0) co[z] = t >= 0 ? t + p1 : t + m1;
      }
      eob--;
    }
    setEob(eob);
  };

  let mcu = 0;
  const restartCheck = (): void => {
    if (restartInterval && mcu > 0 && mcu % restartInterval === 0) {
      r.restart();
      for (const c of scomps) c.dcPred = 0;
      setEob(0);
    }
  };
  if (scomps.length === 1) {
    // Non-interleaved: the component's own block grid, not padded to whole MCUs.
    const c = scomps[0]!;
    const bw = Math.ceil(c.w / 8);
    const bh = Math.ceil(c.h_ / 8);
    for (let by = 0; by < bh; by++) {
      for (let bx = 0; bx < bw; bx++) {
        restartCheck();
        decodeBlock(c, (by * c.bw + bx) * 64);
        mcu++;
      }
    }
    return;
  }
  for (let my = 0; my < mcusY; my++) {
    for (let mx = 0; mx < mcusX; mx++) {
      restartCheck();
      for (const c of scomps) {
        for (let v = 0; v < c.v; v++) {
          for (let h = 0; h < c.h; h++) decodeBlock(c, ((my * c.v + v) * c.bw + mx * c.h + h) * 64);
        }
      }
      mcu++;
    }
  }
}

// --------------------------------------------------------------------------------------- IDCT

const CONST_BITS = 13;
const PASS1_BITS = 2;
const F_0_298 = 2446, F_0_390 = 3196, F_0_541 = 4433, F_0_765 = 6270, F_0_899 = 7373, F_1_175 = 9633;
const F_1_501 = 12299, F_1_847 = 15137, F_1_961 = 16069, F_2_053 = 16819, F_2_562 = 20995, F_3_072 = 25172;

/** Arithmetic right shift with rounding (libjpeg's DESCALE), exact for |x| < 2^53. */
const descale = (x: number, n: number): number => Math.floor((x + 2 ** (n - 1)) / 2 ** n);

/** libjpeg's post-IDCT range limit: x + 128 clamped to [0, 255], wrapping like its 10-bit table for wild values. */
function rangeLimit(x: number): number {
  const m = x & 1023;
  return m < 128 ? m + 128 : m < 512 ? 255 : m < 896 ? 0 : m - 896;
}

/** jpeg_idct_islow on one block; writes 8x8 samples into `out` at (ox, oy) with row stride `stride`. */
function idctIslow(co: Int16Array, off: number, q: Uint16Array, ws: Int32Array, out: Uint8Array, stride: number, ox: number, oy: number): void {
  for (let c = 0; c < 8; c++) {
    const i = off + c;
    if (co[i + 8] === 0 && co[i + 16] === 0 && co[i + 24] === 0 && co[i + 32] === 0 && co[i + 40] === 0 && co[i + 48] === 0 && co[i + 56] === 0) {
      const dcval = co[i]! * q[c]! * (1 << PASS1_BITS);
      for (let r = 0; r < 8; r++) ws[r * 8 + c] = dcval;
      continue;
    }
    let z2 = co[i + 16]! * q[c + 16]!;
    let z3 = co[i + 48]! * q[c + 48]!;
    let z1 = (z2 + z3) * F_0_541;
    let tmp2 = z1 + z3 * -F_1_847;
    let tmp3 = z1 + z2 * F_0_765;
    z2 = co[i]! * q[c]!;
    z3 = co[i + 32]! * q[c + 32]!;
    let tmp0 = (z2 + z3) * 8192;
    let tmp1 = (z2 - z3) * 8192;
    const tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
    tmp0 = co[i + 56]! * q[c + 56]!;
    tmp1 = co[i + 40]! * q[c + 40]!;
    tmp2 = co[i + 24]! * q[c + 24]!;
    tmp3 = co[i + 8]! * q[c + 8]!;
    z1 = tmp0 + tmp3;
    z2 = tmp1 + tmp2;
    z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * F_1_175;
    tmp0 *= F_0_298; tmp1 *= F_2_053; tmp2 *= F_3_072; tmp3 *= F_1_501;
    z1 *= -F_0_899; z2 *= -F_2_562; z3 *= -F_1_961; z4 *= -F_0_390;
    z3 += z5; z4 += z5;
    tmp0 += z1 + z3; tmp1 += z2 + z4; tmp2 += z2 + z3; tmp3 += z1 + z4;
    const n = CONST_BITS - PASS1_BITS;
    ws[c] = descale(tmp10 + tmp3, n); ws[56 + c] = descale(tmp10 - tmp3, n);
    ws[8 + c] = descale(tmp11 + tmp2, n); ws[48 + c] = descale(tmp11 - tmp2, n);
    ws[16 + c] = descale(tmp12 + tmp1, n); ws[40 + c] = descale(tmp12 - tmp1, n);
    ws[24 + c] = descale(tmp13 + tmp0, n); ws[32 + c] = descale(tmp13 - tmp0, n);
  }
  const n2 = CONST_BITS + PASS1_BITS + 3;
  for (let r = 0; r < 8; r++) {
    const w = r * 8;
    const o = (oy + r) * stride + ox;
    let z2 = ws[w + 2]!;
    let z3 = ws[w + 6]!;
    let z1 = (z2 + z3) * F_0_541;
    let tmp2 = z1 + z3 * -F_1_847;
    let tmp3 = z1 + z2 * F_0_765;
    let tmp0 = (ws[w]! + ws[w + 4]!) * 8192;
    let tmp1 = (ws[w]! - ws[w + 4]!) * 8192;
    const tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
    tmp0 = ws[w + 7]!; tmp1 = ws[w + 5]!; tmp2 = ws[w + 3]!; tmp3 = ws[w + 1]!;
    z1 = tmp0 + tmp3; z2 = tmp1 + tmp2; z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * F_1_175;
    tmp0 *= F_0_298; tmp1 *= F_2_053; tmp2 *= F_3_072; tmp3 *= F_1_501;
    z1 *= -F_0_899; z2 *= -F_2_562; z3 *= -F_1_961; z4 *= -F_0_390;
    z3 += z5; z4 += z5;
    tmp0 += z1 + z3; tmp1 += z2 + z4; tmp2 += z2 + z3; tmp3 += z1 + z4;
    out[o] = rangeLimit(descale(tmp10 + tmp3, n2)); out[o + 7] = rangeLimit(descale(tmp10 - tmp3, n2));
    out[o + 1] = rangeLimit(descale(tmp11 + tmp2, n2)); out[o + 6] = rangeLimit(descale(tmp11 - tmp2, n2));
    out[o + 2] = rangeLimit(descale(tmp12 + tmp1, n2)); out[o + 5] = rangeLimit(descale(tmp12 - tmp1, n2));
    out[o + 3] = rangeLimit(descale(tmp13 + tmp0, n2)); out[o + 4] = rangeLimit(descale(tmp13 - tmp0, n2));
  }
}

// --------------------------------------------------------------------------------------- upsampling, colour

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

function toPixels(comps: Component[], width: number, height: number, maxH: number, maxV: number, adobe: number | null, jfif: boolean): JpegPixels {
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
