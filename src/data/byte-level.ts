/**
 * The byte-level alphabet of GPT-2's BPE: printable Latin-1 bytes stand for themselves, the other 68 bytes
 * are shifted to U+0100.. so that every token is a printable, whitespace-free string. Text goes to symbols
 * through its UTF-8 bytes, and tokens back to bytes for decoding.
 */
import { TokenizerError } from './tokenizer-error.ts';


function buildByteMaps(): { byteToChar: string[]; charToByte: Map<string, number> } {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const set = new Set(printable);
  const byteToChar: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    byteToChar[b] = String.fromCharCode(set.has(b) ? b : 256 + extra++);
  }
  const charToByte = new Map<string, number>();
  byteToChar.forEach((c, b) => charToByte.set(c, b));
  return { byteToChar, charToByte };
}

export const { byteToChar: BYTE_TO_CHAR, charToByte: CHAR_TO_BYTE } = buildByteMaps();
/** The 256 byte symbols in byte order. */
export const BYTE_ALPHABET: readonly string[] = BYTE_TO_CHAR;

const utf8Encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF (Rust's from_utf8_lossy does not strip it).
export const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });

/** UTF-8 bytes of `text` as byte-level symbols. */
export function toByteLevel(text: string): string {
  let out = '';
  for (const b of utf8Encoder.encode(text)) out += BYTE_TO_CHAR[b];
  return out;
}

/** Inverse of `toByteLevel` on the byte stream (invalid UTF-8 becomes U+FFFD). */
export function fromByteLevel(symbols: string): string {
  const bytes = new Uint8Array(symbols.length);
  let n = 0;
  for (const ch of symbols) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b === undefined) throw new TokenizerError(`character ${JSON.stringify(ch)} is not a byte-level symbol`);
    bytes[n++] = b;
  }
  return utf8Decoder.decode(bytes.subarray(0, n));
}

/** A token's bytes for the ByteLevel decoder: its byte symbols, or its own UTF-8 if any character is not one. */
export function pushTokenBytes(tok: string, out: number[]): void {
  const start = out.length;
  for (const ch of tok) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b === undefined) {
      out.length = start;
      for (const u of utf8Encoder.encode(tok)) out.push(u);
      return;
    }
    out.push(b);
  }
}
