/**
 * JPEG entropy decoding (libjpeg-turbo's jdhuff / jdphuff): Huffman tables, the bit reader with its marker
 * handling, and one scan's coefficients, baseline or progressive (DC / AC first passes and refinements).
 */
import { JpegFormatError, type Component } from './jpeg-frame.ts';

export const ZIGZAG = new Int32Array([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
  28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61,
  54, 47, 55, 62, 63,
]);

export interface Huffman {
  /** (length << 16 | code) -> symbol, looked up bit by bit. */
  maxcode: Int32Array;
  valptr: Int32Array;
  mincode: Int32Array;
  values: Uint8Array;
}

export function buildHuffman(counts: Uint8Array, values: Uint8Array): Huffman {
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

export class BitReader {
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

interface ScanParams { ss: number; se: number; ah: number; al: number }

export function decodeScan(
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
