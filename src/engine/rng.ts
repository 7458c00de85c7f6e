/**
 * Seeded random numbers for everything stochastic (init, dropout, data order, sampling).
 * No global state: every consumer receives an `Rng`.
 *
 * Generator: xoshiro128** (32-bit words, Math.imul arithmetic: fast in V8, period 2^128 − 1).
 * Each Rng carries a 128-bit *key* derived from its seed by a murmur3-style hash; the generator
 * state starts from the key. `fork(stream)` hashes (key, stream) into a new key, so a fork depends
 * only on the parent's seed lineage and the stream id: it neither reads nor advances the parent's
 * position, and the same fork is reproduced however much the parent has been used.
 */
import { FlamingoError } from '../errors.ts';

/** Invalid argument or state passed to an Rng method. */
export class RngError extends FlamingoError {
  constructor(method: string, message: string) {
    super(`rng ${method}: ${message}`);
  }
}

/** JSON-serialisable generator state (for resumable training). */
export interface RngState {
  /** Lineage key (4 × uint32): determines forks. */
  key: number[];
  /** xoshiro128** state (4 × uint32): determines the next outputs. */
  s: number[];
  /** Cached second Box–Muller normal, or null. */
  spare: number | null;
}

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;
const TWO_PI = 2 * Math.PI;

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** murmur3 32-bit finaliser: full avalanche of one word. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash a word sequence into 4 words (four murmur3 lanes with distinct seeds). */
function hashWords(words: readonly number[]): [number, number, number, number] {
  const out: [number, number, number, number] = [0, 0, 0, 0];
  for (let lane = 0; lane < 4; lane++) {
    let h = fmix32(0x9e3779b9 + lane * 0x632be5ab);
    for (let i = 0; i < words.length; i++) {
      let w = Math.imul(words[i]! ^ (lane * 0x27d4eb2f), 0xcc9e2d51);
      w = Math.imul(rotl(w, 15), 0x1b873593);
      h ^= w;
      h = (Math.imul(rotl(h, 13), 5) + 0xe6546b64) | 0;
    }
    out[lane] = fmix32(h ^ words.length);
  }
  return out;
}

/** The two 32-bit words of a number's float64 bit pattern (−0 normalised to 0). */
function numberWords(x: number): [number, number] {
  const words = new Uint32Array(new Float64Array([x === 0 ? 0 : x]).buffer);
  return [words[0]!, words[1]!];
}

const TAG_SEED = 0x5eed5eed;
const TAG_FORK_NUMBER = 0xf0e1a001;
const TAG_FORK_STRING = 0xf0e1a002;

function isWordArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.length === 4 && v.every((w) => Number.isInteger(w) && w >= 0 && w < TWO_POW_32);
}

export class Rng {
  private key: [number, number, number, number];
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private spare: number | null = null;

  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RngError('constructor', `seed must be a finite number, got ${seed}`);
    this.key = hashWords([TAG_SEED, ...numberWords(seed)]);
    this.resetFromKey();
  }

  /** Rebuild an Rng from `state()` output. */
  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }

  private resetFromKey(): void {
    const [a, b, c, d] = this.key;
    this.s0 = a;
    this.s1 = b;
    this.s2 = c;
    this.s3 = d;
    // xoshiro's only forbidden state.
    if ((a | b | c | d) === 0) this.s0 = 1;
    this.spare = null;
  }

  /** Next raw 32-bit output (unsigned). */
  nextU32(): number {
    const s1 = this.s1;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= s1;
    this.s1 = s1 ^ this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result >>> 0;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextU32() >>> 5;
    const lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / TWO_POW_53;
  }

  /** Standard normal (Box–Muller; the second value of each pair is cached). */
  normal(): number {
    const spare = this.spare;
    if (spare !== null) {
      this.spare = null;
      return spare;
    }
    const u1 = 1 - this.uniform(); // (0, 1]: log is finite
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    const th = TWO_PI * u2;
    this.spare = r * Math.sin(th);
    return r * Math.cos(th);
  }

  /** Unbiased uniform integer in [0, n), n a positive integer ≤ 2^53. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_53) {
      throw new RngError('int', `n must be an integer in [1, 2^53], got ${n}`);
    }
    if (n <= TWO_POW_32) {
      // Rejection sampling removes modulo bias.
      const limit = TWO_POW_32 - (TWO_POW_32 % n);
      let r = this.nextU32();
      while (r >= limit) r = this.nextU32();
      return r % n;
    }
    const limit = TWO_POW_53 - (TWO_POW_53 % n);
    let r = this.uniform() * TWO_POW_53;
    while (r >= limit) r = this.uniform() * TWO_POW_53;
    return r % n;
  }

  /** out[i] = mean + std · N(0, 1). Returns out. */
  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
    return out;
  }

  /** out[i] uniform in [lo, hi). Returns out. */
  fillUniform(out: Float32Array, lo = 0, hi = 1): Float32Array {
    const span = hi - lo;
    for (let i = 0; i < out.length; i++) out[i] = lo + span * this.uniform();
    return out;
  }

  /** Keep-mask for dropout: 1 (keep) with probability 1 − p, else 0. */
  dropoutMask(n: number, p: number): Uint8Array {
    if (!Number.isInteger(n) || n < 0) throw new RngError('dropoutMask', `n must be a non-negative integer, got ${n}`);
    if (!(p >= 0 && p <= 1)) throw new RngError('dropoutMask', `p must be in [0, 1], got ${p}`);
    const mask = new Uint8Array(n);
    const threshold = p * TWO_POW_32;
    for (let i = 0; i < n; i++) mask[i] = this.nextU32() >= threshold ? 1 : 0;
    return mask;
  }

  /** In-place Fisher–Yates shuffle; returns arr. */
  shuffle<T>(arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = arr[i]!;
      arr[i] = arr[j]!;
      arr[j] = t;
    }
    return arr;
  }

  /** Independent generator derived from this one's key and a stream id; does not advance this one. */
  fork(stream: number | string): Rng {
    const words: number[] = [...this.key];
    if (typeof stream === 'number') {
      if (!Number.isFinite(stream)) throw new RngError('fork', `stream must be finite, got ${stream}`);
      words.push(TAG_FORK_NUMBER, ...numberWords(stream));
    } else {
      words.push(TAG_FORK_STRING, stream.length);
      for (let i = 0; i < stream.length; i++) words.push(stream.charCodeAt(i));
    }
    const child = new Rng(0);
    child.key = hashWords(words);
    child.resetFromKey();
    return child;
  }

  /** Snapshot (JSON-serialisable). */
  state(): RngState {
    return {
      key: [...this.key],
      s: [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0],
      spare: this.spare,
    };
  }

  /** Restore a snapshot: the sequence continues exactly where `state()` was taken. */
  setState(state: RngState): void {
    if (typeof state !== 'object' || state === null) throw new RngError('setState', 'state must be an object');
    if (!isWordArray(state.key)) throw new RngError('setState', 'state.key must be 4 uint32 words');
    if (!isWordArray(state.s)) throw new RngError('setState', 'state.s must be 4 uint32 words');
    if ((state.s[0]! | state.s[1]! | state.s[2]! | state.s[3]!) === 0) {
      throw new RngError('setState', 'state.s must not be all zero');
    }
    if (state.spare !== null && !Number.isFinite(state.spare)) {
      throw new RngError('setState', 'state.spare must be a finite number or null');
    }
    this.key = [state.key[0]!, state.key[1]!, state.key[2]!, state.key[3]!];
    this.s0 = state.s[0]! | 0;
    this.s1 = state.s[1]! | 0;
    this.s2 = state.s[2]! | 0;
    this.s3 = state.s[3]! | 0;
    this.spare = state.spare;
  }
}
