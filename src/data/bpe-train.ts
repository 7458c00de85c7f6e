/**
 * BPE merge learning over pre-counted words. Pure algorithm: words arrive already mapped into the
 * byte-level alphabet (one UTF-16 unit per initial symbol), so this module knows nothing about
 * UTF-8, regexes or special tokens (see tokenizer.ts for those).
 *
 * Incremental pair counting with a lazy max-heap: each merge only re-counts the words that contain
 * the merged pair, so training a few thousand merges on a few MB stays in seconds.
 */
import { FlamingoError } from '../errors.ts';
import { PAIR_SHIFT } from './bpe-merge.ts';

export interface BpeTrainInput {
  /** Word (string over the alphabet) → how many times it occurs in the corpus. */
  words: Map<string, number>;
  /** Initial symbols, in id order. Every char of every word must be one of them. */
  alphabet: string[];
  /** Stop once this many symbols (alphabet + merged tokens) exist. */
  targetSize: number;
  /** A pair occurring fewer times than this is never merged. */
  minFrequency: number;
}

export interface BpeTrainResult {
  /** Symbol strings in id order (alphabet first, then each newly created token). */
  tokens: string[];
  /** Learned merges in rank order. */
  merges: [string, string][];
}

export class BpeTrainError extends FlamingoError {
  constructor(message: string) {
    super(`bpe-train: ${message}`);
  }
}

// Pair (a, b) packed into one number, as the merge ranks are; symbol ids stay far below 2^21.
const pairKey = (a: number, b: number): number => a * PAIR_SHIFT + b;

/** Heap entry: [count, a, b]. Ordered by count desc, then a asc, then b asc (the fixed tie-break). */
type Entry = [number, number, number];

function better(x: Entry, y: Entry): boolean {
  if (x[0] !== y[0]) return x[0] > y[0];
  if (x[1] !== y[1]) return x[1] < y[1];
  return x[2] < y[2];
}

class PairHeap {
  private items: Entry[] = [];
  get size(): number {
    return this.items.length;
  }
  push(e: Entry): void {
    const h = this.items;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!better(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  pop(): Entry | undefined {
    const h = this.items;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && better(h[l]!, h[m]!)) m = l;
        if (r < h.length && better(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

/** Learn merges until `targetSize` symbols exist or no pair reaches `minFrequency`. Deterministic. */
export function trainBpe(input: BpeTrainInput): BpeTrainResult {
  const { alphabet, targetSize } = input;
  const minFrequency = Math.max(1, input.minFrequency);
  const tokens = alphabet.slice();
  const idOf = new Map<string, number>();
  tokens.forEach((t, i) => {
    if (idOf.has(t)) throw new BpeTrainError(`duplicate alphabet symbol ${JSON.stringify(t)}`);
    idOf.set(t, i);
  });

  // Words as symbol-id arrays; sorted so word indices (and hence everything after) are deterministic
  // whatever order the caller's Map was filled in.
  const wordStrings = [...input.words.keys()].sort();
  const syms: number[][] = [];
  const freq: number[] = [];
  for (const w of wordStrings) {
    const ids: number[] = [];
    for (const ch of w) {
      const id = idOf.get(ch);
      if (id === undefined) throw new BpeTrainError(`word ${JSON.stringify(w)} has symbol ${JSON.stringify(ch)} outside the alphabet`);
      ids.push(id);
    }
    syms.push(ids);
    freq.push(input.words.get(w)!);
  }

  const counts = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  const addPairs = (wi: number, sign: number, touched: Set<number> | null): void => {
    const s = syms[wi]!;
    const f = freq[wi]! * sign;
    for (let i = 0; i + 1 < s.length; i++) {
      const k = pairKey(s[i]!, s[i + 1]!);
      counts.set(k, (counts.get(k) ?? 0) + f);
      if (sign > 0) {
        let set = where.get(k);
        if (!set) where.set(k, (set = new Set()));
        set.add(wi);
        touched?.add(k);
      }
    }
  };
  for (let wi = 0; wi < syms.length; wi++) addPairs(wi, 1, null);

  const heap = new PairHeap();
  for (const [k, c] of counts) heap.push([c, Math.floor(k / PAIR_SHIFT), k % PAIR_SHIFT]);

  const merges: [string, string][] = [];
  while (tokens.length < targetSize && heap.size > 0) {
    const [c, a, b] = heap.pop()!;
    const k = pairKey(a, b);
    const current = counts.get(k) ?? 0;
    if (current !== c) {
      // Stale entry (the count dropped since it was pushed): re-queue with the real count.
      if (current > 0) heap.push([current, a, b]);
      continue;
    }
    if (c < minFrequency) break;

    const merged = tokens[a]! + tokens[b]!;
    // Two different merge paths can spell the same string; it keeps its first id.
    let m = idOf.get(merged);
    if (m === undefined) {
      m = tokens.length;
      tokens.push(merged);
      idOf.set(merged, m);
    }
    merges.push([tokens[a]!, tokens[b]!]);

    const touched = new Set<number>();
    const affected = [...(where.get(k) ?? [])].sort((x, y) => x - y);
    where.delete(k);
    for (const wi of affected) {
      const s = syms[wi]!;
      let has = false;
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) { has = true; break; }
      if (!has) continue; // stale membership
      addPairs(wi, -1, null);
      const out: number[] = [];
      for (let i = 0; i < s.length; ) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(m);
          i += 2;
        } else {
          out.push(s[i]!);
          i += 1;
        }
      }
      syms[wi] = out;
      addPairs(wi, 1, touched);
    }
    counts.delete(k);
    for (const t of touched) {
      const tc = counts.get(t) ?? 0;
      if (tc > 0) heap.push([tc, Math.floor(t / PAIR_SHIFT), t % PAIR_SHIFT]);
    }
  }
  return { tokens, merges };
}
