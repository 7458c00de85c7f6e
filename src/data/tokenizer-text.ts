/**
 * The text side of Hugging Face's `tokenizers` pipeline, reproduced exactly: the NFC normaliser
 * with Unicode 9.0 data, the GPT-2 pre-tokenisation regex as Oniguruma reads it, and the cutting
 * out of added tokens (leftmost-longest, with their lstrip / rstrip / single_word flags).
 */
import { UNICODE9_ASSIGNED } from './unicode9-ranges.ts';

// ------------------------------------------------------------------------------------ NFC (Unicode 9.0)

/** Sorted [start, end] pairs of the code points assigned in Unicode 9.0. */
const ASSIGNED9: Int32Array = (() => {
  const parts = UNICODE9_ASSIGNED.split(' ').filter((p) => p.length > 0);
  const out = new Int32Array(parts.length * 2);
  let prev = 0;
  parts.forEach((p, i) => {
    const [gap, len] = p.split('.').map((x) => parseInt(x, 36)) as [number, number];
    const start = prev + gap;
    out[2 * i] = start;
    out[2 * i + 1] = start + len;
    prev = start + len;
  });
  return out;
})();

function assignedIn9(cp: number): boolean {
  let lo = 0;
  let hi = ASSIGNED9.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cp < ASSIGNED9[2 * mid]!) hi = mid - 1;
    else if (cp > ASSIGNED9[2 * mid + 1]!) lo = mid + 1;
    else return true;
  }
  return false;
}

/** Below U+0300 nothing decomposes or combines differently in NFC. */
const NEEDS_NFC = /[\u0300-\u{10ffff}]/u;

/**
 * NFC as Hugging Face's Rust normaliser computes it: with Unicode 9.0 tables. A code point assigned
 * later is, for those tables, a starter with no decomposition that composes with nothing, so it
 * splits the text into runs that are normalised independently with the current data (for code
 * points assigned by 9.0 normalisation is stable across versions).
 */
export function nfcUnicode9(text: string): string {
  if (!NEEDS_NFC.test(text)) return text;
  let out = '';
  let run = '';
  for (const ch of text) {
    if (assignedIn9(ch.codePointAt(0)!)) {
      run += ch;
    } else {
      out += run.normalize('NFC') + ch;
      run = '';
    }
  }
  return out + run.normalize('NFC');
}

// ------------------------------------------------------------------------------------ pre-tokenisation

/** Unicode White_Space: Oniguruma's `\s` and Rust's `char::is_whitespace` (JavaScript's `\s` differs: U+FEFF in, U+0085 out). */
const WS = '\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/** GPT-2's pattern with `\s` spelled out. */
const PRETOKENIZE = new RegExp(
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
  'gu',
);

/** Split text into pre-token pieces (plain strings, not yet byte-mapped). Pieces concatenate to `text`. */
export function preTokenize(text: string): string[] {
  return text.match(PRETOKENIZE) ?? [];
}

const IS_WS = new RegExp(`^[${WS}]$`, 'u');
const IS_WORD = /^[\p{Alphabetic}\p{N}_]$/u;

// ------------------------------------------------------------------------------------ added tokens

export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  /** Searched in the normalised text (true) or the raw text (false). */
  normalized: boolean;
  /** Swallow whitespace on the left / right into the token. */
  lstrip: boolean;
  rstrip: boolean;
  /** Only match as a whole word (not next to a letter, digit or `_`). */
  singleWord: boolean;
}

/** A piece of text, or an added token cut out of it. */
export type Split = { text: string; id?: undefined } | { text: string; id: number };

/** Leftmost-longest matcher over a fixed set of added tokens (what `aho-corasick`'s LeftmostLongest yields). */
export class AddedTokenMatcher {
  private readonly byFirst = new Map<string, AddedToken[]>();

  constructor(tokens: readonly AddedToken[]) {
    for (const t of tokens) {
      if (t.content.length === 0) continue;
      const first = String.fromCodePoint(t.content.codePointAt(0)!);
      const list = this.byFirst.get(first) ?? [];
      list.push(t);
      this.byFirst.set(first, list);
    }
    for (const list of this.byFirst.values()) list.sort((a, b) => b.content.length - a.content.length);
  }

  get empty(): boolean {
    return this.byFirst.size === 0;
  }

  /** Non-overlapping matches, scanning left to right, the longest at each start. */
  private *matches(text: string): Generator<{ start: number; end: number; token: AddedToken }> {
    let i = 0;
    while (i < text.length) {
      const cp = text.codePointAt(i)!;
      const first = String.fromCodePoint(cp);
      const list = this.byFirst.get(first);
      const hit = list?.find((t) => text.startsWith(t.content, i));
      if (hit) {
        yield { start: i, end: i + hit.content.length, token: hit };
        i += hit.content.length;
      } else {
        i += first.length;
      }
    }
  }

  /** Cut the added tokens out of `text` with Hugging Face's flag semantics. */
  split(text: string): Split[] {
    if (this.empty || text.length === 0) return text.length ? [{ text }] : [];
    const out: Split[] = [];
    let offset = 0;
    for (const m of this.matches(text)) {
      let { start, end } = m;
      const t = m.token;
      if (t.singleWord) {
        const before = start > 0 ? lastChar(text.slice(0, start)) : '';
        const after = end < text.length ? String.fromCodePoint(text.codePointAt(end)!) : '';
        if ((before && IS_WORD.test(before)) || (after && IS_WORD.test(after))) continue;
      }
      if (t.lstrip) {
        let s = start;
        while (s > 0) {
          const c = lastChar(text.slice(0, s));
          if (!IS_WS.test(c)) break;
          s -= c.length;
        }
        // Spaces an earlier match already consumed stay with it.
        start = Math.max(s, offset);
      }
      if (t.rstrip) {
        while (end < text.length) {
          const c = String.fromCodePoint(text.codePointAt(end)!);
          if (!IS_WS.test(c)) break;
          end += c.length;
        }
      }
      if (start < offset) continue; // overlaps what an rstrip swallowed
      if (offset < start) out.push({ text: text.slice(offset, start) });
      out.push({ text: text.slice(start, end), id: t.id });
      offset = end;
    }
    if (offset < text.length) out.push({ text: text.slice(offset) });
    return out;
  }
}

function lastChar(s: string): string {
  const cp = s.codePointAt(s.length - 1)!;
  // A low surrogate: take the pair.
  if (cp >= 0xdc00 && cp <= 0xdfff && s.length >= 2) return s.slice(-2);
  return s.slice(-1);
}
