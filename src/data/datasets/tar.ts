/**
 * Minimal tar (ustar / POSIX pax / GNU long-name) reader and writer for WebDataset shards. Only regular
 * files are returned; directories, links and devices are skipped. Member data are views into the buffer.
 */
import { DatasetError } from './types.ts';

export interface TarEntry {
  name: string;
  data: Uint8Array;
}

const BLOCK = 512;
const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8');

function cstr(b: Uint8Array, off: number, len: number, dec: TextDecoder = utf8): string {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return dec.decode(b.subarray(off, end));
}

function octal(b: Uint8Array, off: number, len: number, file: string, field: string): number {
  // GNU base-256 for big numbers: high bit of the first byte set
  if (b[off]! & 0x80) {
    let v = b[off]! & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i]!;
    return v;
  }
  const s = cstr(b, off, len, latin1).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new DatasetError(file, `tar header field ${field} is not octal: ${JSON.stringify(s)}`);
  return parseInt(s, 8);
}

/** Parse pax "len key=value\n" records. */
function paxRecords(data: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  const text = utf8.decode(data);
  let i = 0;
  while (i < text.length) {
    const sp = text.indexOf(' ', i);
    if (sp < 0) break;
    const len = parseInt(text.slice(i, sp), 10);
    if (!(len > 0)) break;
    const rec = text.slice(sp + 1, i + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    i += len;
  }
  return out;
}

/** All regular-file members, in archive order. `file` names the archive in errors. */
export function readTar(buf: Uint8Array, file = '<tar>'): TarEntry[] {
  const out: TarEntry[] = [];
  let off = 0;
  let longName: string | null = null;
  let pax: Map<string, string> | null = null;
  while (off + BLOCK <= buf.length) {
    const h = buf.subarray(off, off + BLOCK);
    if (h.every((x) => x === 0)) break; // end-of-archive marker
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
    const stored = octal(h, 148, 8, file, 'chksum');
    if (stored !== sum) throw new DatasetError(file, `tar header at byte ${off} has a bad checksum (${stored} != ${sum}); not a tar file or corrupt`);
    const size = octal(h, 124, 12, file, 'size');
    const type = String.fromCharCode(h[156]!);
    const dataStart = off + BLOCK;
    if (dataStart + size > buf.length) throw new DatasetError(file, `tar member at byte ${off} claims ${size} bytes but the file ends at ${buf.length}`);
    const data = buf.subarray(dataStart, dataStart + size);
    off = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'L') { longName = cstr(data, 0, data.length); continue; }
    if (type === 'x') { pax = paxRecords(data); continue; }
    if (type === 'g' || type === 'K') continue; // global pax header, GNU long link name
    let name = cstr(h, 0, 100);
    const magic = cstr(h, 257, 6, latin1);
    if (magic.startsWith('ustar')) {
      const prefix = cstr(h, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    if (longName !== null) name = longName;
    if (pax?.has('path')) name = pax.get('path')!;
    longName = null;
    pax = null;
    if (type === '0' || type === '\0' || type === '7') out.push({ name, data });
  }
  return out;
}

function putStr(h: Uint8Array, off: number, len: number, s: string): void {
  const b = new TextEncoder().encode(s);
  if (b.length > len) throw new DatasetError('tar', `field too long: ${JSON.stringify(s)}`);
  h.set(b, off);
}

function putOctal(h: Uint8Array, off: number, len: number, v: number): void {
  putStr(h, off, len, v.toString(8).padStart(len - 1, '0'));
}

/** A ustar archive of regular files (names ≤ 100 bytes; mtime 0 so output is byte-reproducible). */
export function writeTar(entries: TarEntry[]): Uint8Array {
  const size = entries.reduce((s, e) => s + BLOCK + Math.ceil(e.data.length / BLOCK) * BLOCK, 2 * BLOCK);
  const out = new Uint8Array(size);
  let off = 0;
  for (const e of entries) {
    const h = out.subarray(off, off + BLOCK);
    putStr(h, 0, 100, e.name);
    putOctal(h, 100, 8, 0o644);
    putOctal(h, 108, 8, 0);
    putOctal(h, 116, 8, 0);
    putOctal(h, 124, 12, e.data.length);
    putOctal(h, 136, 12, 0);
    h[156] = '0'.charCodeAt(0);
    putStr(h, 257, 6, 'ustar');
    putStr(h, 263, 2, '00');
    h.fill(32, 148, 156);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += h[i]!;
    putStr(h, 148, 7, sum.toString(8).padStart(6, '0') + '\0');
    out.set(e.data, off + BLOCK);
    off += BLOCK + Math.ceil(e.data.length / BLOCK) * BLOCK;
  }
  return out;
}

/**
 * WebDataset grouping: the key is the member path up to the first '.' of its base name, the rest is the
 * extension (`a/b/0001.json` and `a/b/0001.png` form group `a/b/0001`). Groups keep archive order.
 */
export function groupByKey(entries: TarEntry[]): { key: string; members: Map<string, Uint8Array> }[] {
  const groups = new Map<string, Map<string, Uint8Array>>();
  for (const e of entries) {
    const slash = e.name.lastIndexOf('/');
    const dot = e.name.indexOf('.', slash + 1);
    if (dot < 0) continue;
    const key = e.name.slice(0, dot);
    const ext = e.name.slice(dot + 1);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = new Map()));
    g.set(ext, e.data);
  }
  return [...groups].map(([key, members]) => ({ key, members }));
}
