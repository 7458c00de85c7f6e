/**
 * N-gram counting shared by BLEU and CIDEr-D. Tokens come from a whitespace split, so a single
 * space can never occur inside a token and is a collision-free separator for the map key.
 */

/** Python's `str.split()` (no argument): split on runs of Unicode whitespace, drop empty ends. */
export function splitWhitespace(s: string): string[] {
  return s.split(PY_WHITESPACE_RUN).filter((t) => t.length > 0);
}

// Python's str.isspace() set; it differs from JS \s (Python adds \x1c-\x1f and \x85, lacks \ufeff).
export const PY_WHITESPACE_CLASS = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_WHITESPACE_RUN = new RegExp(`[${PY_WHITESPACE_CLASS}]+`, 'u');

/**
 * Counts of all n-grams of order 1..maxN. Insertion order is order-major then position, which is
 * the iteration order pycocoevalcap's dict has; CIDEr sums in that order.
 */
export function ngramCounts(tokens: readonly string[], maxN: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let k = 1; k <= maxN; k++) {
    for (let i = 0; i + k <= tokens.length; i++) {
      const key = tokens.slice(i, i + k).join(' ');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return counts;
}

/** Order (1-based) of an n-gram key built by ngramCounts. */
export function ngramOrder(key: string): number {
  let n = 1;
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) === 32) n++;
  return n;
}
