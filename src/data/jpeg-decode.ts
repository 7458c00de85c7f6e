/**
 * A JPEG decoder that gives libjpeg-turbo's default output (what Pillow returns): baseline and
 * progressive Huffman coding, the accurate integer IDCT ("islow", 13-bit constants), "fancy"
 * triangle-filter upsampling of subsampled chroma (h2v1, h1v2, h2v2; other ratios replicate), and
 * table-driven rounded YCbCr->RGB. CMYK/YCCK files come out as Pillow holds them (Adobe polarity,
 * inverted). Semantics follow libjpeg-turbo's jdhuff/jdphuff/jidctint/jdsample/jdcolor.
 *
 * Stages: entropy decoding (jpeg-entropy.ts), then IDCT (jpeg-idct.ts), upsampling and colour
 * (jpeg-color.ts); this file reads the markers and runs them. The caller has already checked the header
 * against the limits; the decoder allocates only what the frame header implies and treats data that ends
 * before the image is complete as an error.
 */
import { JpegFormatError, type Component, type JpegPixels } from './jpeg-frame.ts';
import { BitReader, ZIGZAG, buildHuffman, decodeScan, type Huffman } from './jpeg-entropy.ts';
import { toPixels } from './jpeg-color.ts';

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
