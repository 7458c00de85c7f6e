/**
 * Applying BPE merges to one word: candidate merges sit in a min-heap keyed by (rank, position), so the
 * lowest-ranked pair is merged first, equal ranks left to right — the order Hugging Face's tokenizers use
 * (identical to GPT-2's "merge every occurrence of the best pair" for well-formed merge lists) — in
 * O(n log n), so very long pieces (base64, ASCII art) stay fast.
 */

/** Pair keys pack (left id, right id); ids stay below 2^21 (the vocabulary limit). */
export const PAIR_SHIFT = 2 ** 21;

/** Merge rank and merged id of each pair key (left · PAIR_SHIFT + right). */
export type MergeRanks = Map<number, [rank: number, merged: number]>;

/** The ids of the word whose first `n` symbol ids are in `id` (overwritten), after every applicable merge. */
export function mergeWord(id: Int32Array, n: number, ranks: MergeRanks): number[] {
  if (n < 2) return Array.from(id.subarray(0, n));
  const prev = new Int32Array(n);
  const next = new Int32Array(n);
  const alive = new Uint8Array(n).fill(1);
  for (let i = 0; i < n; i++) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  const heap = new NumberMinHeap();
  const consider = (pos: number): void => {
    const r = ranks.get(id[pos]! * PAIR_SHIFT + id[next[pos]!]!);
    if (r) heap.push(r[0] * POS_SHIFT + pos);
  };
  for (let i = 0; i + 1 < n; i++) consider(i);
  while (heap.size > 0) {
    const key = heap.pop();
    const pos = key % POS_SHIFT;
    const rank = (key - pos) / POS_SHIFT;
    const right = next[pos]!;
    if (!alive[pos] || right < 0) continue;
    // Stale entry unless the pair now at `pos` is still the one queued (ranks identify pairs).
    const r = ranks.get(id[pos]! * PAIR_SHIFT + id[right]!);
    if (!r || r[0] !== rank) continue;
    id[pos] = r[1];
    alive[right] = 0;
    next[pos] = next[right]!;
    if (next[pos]! >= 0) prev[next[pos]!] = pos;
    if (prev[pos]! >= 0) consider(prev[pos]!);
    if (next[pos]! >= 0) consider(pos);
  }
  const out: number[] = [];
  for (let i = 0; i >= 0; i = next[i]!) out.push(id[i]!);
  return out;
}

// Heap keys pack (rank, position); positions stay below 2^26 (64 MiB pieces) and ranks below 2^21.
const POS_SHIFT = 2 ** 26;

class NumberMinHeap {
  private h: number[] = [];
  get size(): number {
    return this.h.length;
  }
  push(v: number): void {
    const h = this.h;
    h.push(v);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]! <= v) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = v;
  }
  pop(): number {
    const h = this.h;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const c = l + 1 < h.length && h[l + 1]! < h[l]! ? l + 1 : l;
        if (h[c]! >= last) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}
