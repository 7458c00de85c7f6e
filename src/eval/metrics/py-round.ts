/**
 * Python's built-in `round(x, ndigits)` for floats: the exact binary value of x is rounded to
 * ndigits decimals with ties to even, and the result is the double nearest to that decimal.
 * `Number.prototype.toFixed` is not usable: it rounds ties away from zero on the exact value.
 */

/** Exact decimal expansion of a finite double as (digits, scale): |x| = digits / 10^scale. */
function exactDecimal(x: number): { digits: bigint; scale: number } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const bits = view.getBigUint64(0);
  const expBits = Number((bits >> 52n) & 0x7ffn);
  const frac = bits & ((1n << 52n) - 1n);
  // value = mant · 2^e
  const mant = expBits === 0 ? frac : frac | (1n << 52n);
  const e = expBits === 0 ? -1074 : expBits - 1075;
  if (e >= 0) return { digits: mant << BigInt(e), scale: 0 };
  // mant / 2^k = mant · 5^k / 10^k
  const k = -e;
  return { digits: mant * 5n ** BigInt(k), scale: k };
}

export function pyRound(x: number, ndigits: number): number {
  if (!Number.isInteger(ndigits) || ndigits < 0) throw new RangeError(`pyRound: ndigits must be a non-negative integer, got ${ndigits}`);
  if (!Number.isFinite(x) || x === 0) return x;
  const { digits, scale } = exactDecimal(x);
  if (scale <= ndigits) return x; // already exact at this precision
  const div = 10n ** BigInt(scale - ndigits);
  let q = digits / div;
  const twiceRem = (digits % div) * 2n;
  if (twiceRem > div || (twiceRem === div && q % 2n === 1n)) q += 1n;
  // Number(string) is correctly rounded, so this is the double nearest to the decimal q / 10^ndigits.
  const s = q.toString().padStart(ndigits + 1, '0');
  const text = ndigits === 0 ? s : `${s.slice(0, s.length - ndigits)}.${s.slice(s.length - ndigits)}`;
  const r = Number(text);
  return x < 0 ? -r : r;
}
