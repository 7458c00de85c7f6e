/**
 * Byte-level BPE tokenizer (GPT-2 family) that reads and writes Hugging Face `tokenizer.json` files
 * and encodes / decodes exactly as Hugging Face's Rust `tokenizers` library does.
 *
 * Encoding: cut out the added tokens that are not normalised (raw text) → NFC-normalise each
 * remaining piece (Unicode 9.0 data, like the Rust crate) → cut out the normalised added tokens →
 * pre-tokenise with the GPT-2 regex (Unicode White_Space as `\s`) → map each piece's UTF-8 bytes to
 * printable stand-in characters → apply merges in rank order.
 * Decoding: ids in neither vocabulary are dropped, special tokens optionally skipped, every token
 * turned back into bytes (tokens outside the byte alphabet contribute their own UTF-8), and the
 * byte stream decoded as UTF-8 with U+FFFD for each maximal invalid sequence.
 *
 * Why not @huggingface/tokenizers (0.2.0): it pre-tokenises with JavaScript's `\s`, normalises
 * with current Unicode data and throws on an empty decode, so it differs from the Rust library on
 * some texts (see test/fixtures/shared/tokenizers/README.md).
 *
 * Round trip: `decode(encode(s)) === s` for well-formed text without a normaliser. Lone UTF-16
 * surrogates cannot be expressed in UTF-8, so they come back as U+FFFD.
 */
import { trainBpe } from './bpe-train.ts';
import { FlamingoError } from '../errors.ts';
import { AddedTokenMatcher, nfcUnicode9, preTokenize, type AddedToken } from './tokenizer-text.ts';

export { preTokenize, nfcUnicode9 } from './tokenizer-text.ts';
export type { AddedToken } from './tokenizer-text.ts';

export class TokenizerError extends FlamingoError {
  constructor(message: string) {
    super(`tokenizer: ${message}`);
  }
}

/** Role → literal token text. The defaults are the ones the Flamingo data pipeline uses. */
export interface SpecialTokenNames {
  image: string;
  eoc: string;
  pad: string;
  eos: string;
}

export const DEFAULT_SPECIAL_TOKENS: SpecialTokenNames = {
  image: '<image>',
  eoc: '<|endofchunk|>',
  pad: '<pad>',
  eos: '<|endoftext|>',
};

export interface TrainOptions {
  /** Target vocabulary size, special tokens and the 256 byte symbols included (smaller if pairs run out). */
  vocabSize: number;
  /**
   * Role names (defaults above) and extra special tokens; all get the lowest ids, roles first. A plain
   * array means "the default roles plus these".
   */
  specialTokens?: (Partial<SpecialTokenNames> & { extra?: string[] }) | string[];
  /** Pairs seen fewer times are not merged (default 2). */
  minFrequency?: number;
}

export interface EncodeOptions {
  /** Append the eos token (default false). */
  addSpecial?: boolean;
  /** Recognise special/added token text literally (default true); false encodes it as plain bytes. */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens from the output (default false). */
  skipSpecial?: boolean;
  /**
   * transformers' `clean_up_tokenization_spaces` (default false, as the `tokenizers` library):
   * " ." → ".", " ?" → "?", " !" → "!", " ," → ",", " ' " → "'", " n't" → "n't", " 'm", " 's", " 've", " 're".
   */
  cleanUpSpaces?: boolean;
}

/** Text normaliser of a tokenizer.json (only what byte-level BPE files use). */
export type NormalizerKind = 'none' | 'nfc';

// ---------------------------------------------------------------------------------------------
// Byte-level alphabet (GPT-2): printable Latin-1 bytes stand for themselves, the other 68 bytes
// are shifted to U+0100.. so that every token is a printable, whitespace-free string.

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

const { byteToChar: BYTE_TO_CHAR, charToByte: CHAR_TO_BYTE } = buildByteMaps();
/** The 256 byte symbols in byte order. */
export const BYTE_ALPHABET: readonly string[] = BYTE_TO_CHAR;

const utf8Encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF (Rust's from_utf8_lossy does not strip it).
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });

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

// ---------------------------------------------------------------------------------------------

const PAIR_SHIFT = 2 ** 21;
const MAX_VOCAB = PAIR_SHIFT;
const CACHE_LIMIT = 50_000;

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const CLEAN_UP: [string, string][] = [
  [' .', '.'], [' ?', '?'], [' !', '!'], [' ,', ','], [" ' ", "'"], [" n't", "n't"], [" 'm", "'m"], [" 's", "'s"], [" 've", "'ve"], [" 're", "'re"],
];

export class BpeTokenizer {
  private readonly vocab = new Map<string, number>();
  private readonly idToTok: string[] = [];
  /** (left id, right id) packed → [rank, merged id]. */
  private readonly ranks = new Map<number, [number, number]>();
  private readonly merges: [string, string][] = [];
  private readonly byteIds: number[];
  private readonly added: AddedToken[] = [];
  private readonly addedByContent = new Map<string, AddedToken>();
  private readonly addedById = new Map<number, AddedToken>();
  /** Matchers for [raw, normalised] added tokens, with and without the special ones; rebuilt when tokens are added. */
  private matchers: { raw: AddedTokenMatcher; norm: AddedTokenMatcher; rawPlain: AddedTokenMatcher; normPlain: AddedTokenMatcher } | null = null;
  private readonly cache = new Map<string, number[]>();
  private readonly names: SpecialTokenNames;
  private readonly addPrefixSpace: boolean;
  private readonly ignoreMerges: boolean;
  readonly normalizer: NormalizerKind;

  private constructor(
    vocab: Map<string, number>,
    merges: [string, string][],
    added: AddedToken[],
    names: SpecialTokenNames,
    opts: { addPrefixSpace?: boolean; ignoreMerges?: boolean; normalizer?: NormalizerKind } = {},
  ) {
    this.names = names;
    this.addPrefixSpace = opts.addPrefixSpace ?? false;
    this.ignoreMerges = opts.ignoreMerges ?? false;
    this.normalizer = opts.normalizer ?? 'none';
    for (const [tok, id] of vocab) {
      if (!Number.isInteger(id) || id < 0 || id >= MAX_VOCAB) throw new TokenizerError(`vocab entry ${JSON.stringify(tok)} has invalid id ${id}`);
      if (this.idToTok[id] !== undefined) throw new TokenizerError(`vocab id ${id} used by both ${JSON.stringify(this.idToTok[id])} and ${JSON.stringify(tok)}`);
      this.vocab.set(tok, id);
      this.idToTok[id] = tok;
    }
    this.byteIds = BYTE_TO_CHAR.map((c, b) => {
      const id = vocab.get(c);
      // Bytes that never occur in UTF-8 (0xC0, 0xC1, 0xF5..0xFF) may be absent, as in GPT-NeoX's vocab.
      if (id === undefined && !(b === 0xc0 || b === 0xc1 || b >= 0xf5)) {
        throw new TokenizerError(`vocab lacks the byte-level symbol for byte 0x${b.toString(16)} (${JSON.stringify(c)}); not a byte-level BPE vocab`);
      }
      return id ?? -1;
    });
    merges.forEach(([a, b], rank) => {
      const ia = vocab.get(a);
      const ib = vocab.get(b);
      const im = vocab.get(a + b);
      if (ia === undefined || ib === undefined || im === undefined) {
        throw new TokenizerError(`merge #${rank} "${a} ${b}" refers to a token missing from the vocab`);
      }
      const key = ia * PAIR_SHIFT + ib;
      // A duplicated merge keeps its first (best) rank, as in the reference implementation.
      if (!this.ranks.has(key)) this.ranks.set(key, [rank, im]);
      this.merges.push([a, b]);
    });
    for (const t of added) this.registerAdded(t);
  }

  // ------------------------------------------------------------------------------ construction

  /** Learn a byte-level BPE vocabulary from documents. Deterministic for a given corpus and options. */
  static train(corpus: Iterable<string>, options: TrainOptions): BpeTokenizer {
    const spec = Array.isArray(options.specialTokens) ? { extra: options.specialTokens } : (options.specialTokens ?? {});
    const { extra = [], ...roles } = spec;
    const names: SpecialTokenNames = { ...DEFAULT_SPECIAL_TOKENS, ...stripUndefined(roles) };
    const specials = uniq([names.image, names.eoc, names.pad, names.eos, ...extra]);
    const base = specials.length + 256;
    if (!Number.isInteger(options.vocabSize) || options.vocabSize < base) {
      throw new TokenizerError(`vocabSize ${options.vocabSize} is below the minimum ${base} (${specials.length} special tokens + 256 bytes)`);
    }
    if (options.vocabSize > MAX_VOCAB) throw new TokenizerError(`vocabSize ${options.vocabSize} exceeds ${MAX_VOCAB}`);

    const splitter = new RegExp(specials.map(escapeRegex).sort((x, y) => y.length - x.length).join('|'), 'g');
    // Count raw pieces first and byte-map each distinct piece once (far fewer conversions).
    const pieces = new Map<string, number>();
    for (const doc of corpus) {
      // Special tokens never take part in merges: train on the text between them.
      for (const chunk of doc.split(splitter)) {
        for (const piece of preTokenize(chunk)) pieces.set(piece, (pieces.get(piece) ?? 0) + 1);
      }
    }
    const words = new Map<string, number>();
    for (const [piece, count] of pieces) {
      const w = toByteLevel(piece);
      words.set(w, (words.get(w) ?? 0) + count);
    }
    const { tokens, merges } = trainBpe({
      words,
      alphabet: [...BYTE_TO_CHAR],
      targetSize: options.vocabSize - specials.length,
      minFrequency: options.minFrequency ?? 2,
    });
    const vocab = new Map<string, number>();
    specials.forEach((s, i) => vocab.set(s, i));
    tokens.forEach((t, i) => {
      if (vocab.has(t)) {
        throw new TokenizerError(`special token ${JSON.stringify(t)} was also learned as an ordinary token; pick special tokens with punctuation, e.g. <${t}>`);
      }
      vocab.set(t, specials.length + i);
    });
    const added = specials.map((content, id) => specialToken(id, content));
    return new BpeTokenizer(vocab, merges, added, names);
  }

  /**
   * Load a Hugging Face `tokenizer.json` (BPE model with a ByteLevel pre-tokenizer). Role names for
   * image/eoc/pad/eos default to DEFAULT_SPECIAL_TOKENS; the accessors throw if a role's token is absent
   * (add it with `addSpecialTokens`).
   */
  static fromHuggingFace(json: string | object, options: { specialTokens?: Partial<SpecialTokenNames> } = {}): BpeTokenizer {
    let doc: unknown;
    try {
      doc = typeof json === 'string' ? JSON.parse(json) : json;
    } catch (e) {
      throw new TokenizerError(`tokenizer.json is not valid JSON: ${(e as Error).message}`);
    }
    if (!isRecord(doc)) throw new TokenizerError('tokenizer.json: top level is not an object');
    const model = doc.model;
    if (!isRecord(model)) throw new TokenizerError('tokenizer.json: missing "model" object');
    if (model.type !== undefined && model.type !== 'BPE') throw new TokenizerError(`tokenizer.json: model.type ${JSON.stringify(model.type)} is not supported (only "BPE")`);
    if (!isRecord(model.vocab)) throw new TokenizerError('tokenizer.json: model.vocab must be an object of token → id');
    if (!Array.isArray(model.merges)) throw new TokenizerError('tokenizer.json: model.merges must be an array');
    for (const key of ['continuing_subword_prefix', 'end_of_word_suffix', 'dropout', 'byte_fallback'] as const) {
      if (model[key]) throw new TokenizerError(`tokenizer.json: model.${key} is not supported for byte-level BPE`);
    }
    const normalizer = readNormalizer(doc.normalizer);
    const preTok = findByteLevel(doc.pre_tokenizer, 'pre_tokenizer');
    findByteLevel(doc.decoder, 'decoder');

    const vocab = new Map<string, number>();
    for (const [tok, id] of Object.entries(model.vocab)) {
      if (typeof id !== 'number') throw new TokenizerError(`tokenizer.json: vocab entry ${JSON.stringify(tok)} has non-numeric id`);
      vocab.set(tok, id);
    }
    const merges: [string, string][] = model.merges.map((m: unknown, i: number): [string, string] => {
      if (typeof m === 'string') {
        const parts = m.split(' ');
        if (parts.length !== 2) throw new TokenizerError(`tokenizer.json: merge #${i} ${JSON.stringify(m)} is not "left right"`);
        return [parts[0]!, parts[1]!];
      }
      if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return [m[0], m[1]];
      throw new TokenizerError(`tokenizer.json: merge #${i} ${JSON.stringify(m)} is neither "a b" nor ["a", "b"]`);
    });
    const added: AddedToken[] = [];
    if (doc.added_tokens !== undefined) {
      if (!Array.isArray(doc.added_tokens)) throw new TokenizerError('tokenizer.json: added_tokens must be an array');
      for (const t of doc.added_tokens) {
        if (!isRecord(t) || typeof t.id !== 'number' || typeof t.content !== 'string') {
          throw new TokenizerError(`tokenizer.json: bad added_tokens entry ${JSON.stringify(t)}`);
        }
        const special = t.special === true;
        added.push({
          id: t.id, content: t.content, special,
          // Hugging Face's defaults when a flag is absent: special tokens are not normalised.
          normalized: typeof t.normalized === 'boolean' ? t.normalized : !special,
          lstrip: t.lstrip === true, rstrip: t.rstrip === true, singleWord: t.single_word === true,
        });
      }
    }
    const names = { ...DEFAULT_SPECIAL_TOKENS, ...stripUndefined(options.specialTokens ?? {}) };
    // Added tokens live outside model.vocab in some files and inside it in others (GPT-2's <|endoftext|>).
    const modelVocab = new Map(vocab);
    for (const t of added) {
      const existing = modelVocab.get(t.content);
      if (existing !== undefined && existing !== t.id) {
        throw new TokenizerError(`tokenizer.json: added token ${JSON.stringify(t.content)} has id ${t.id} but vocab says ${existing}`);
      }
      modelVocab.set(t.content, t.id);
    }
    return new BpeTokenizer(modelVocab, merges, added, names, {
      addPrefixSpace: preTok.add_prefix_space === true,
      ignoreMerges: model.ignore_merges === true,
      normalizer,
    });
  }

  /** Serialise as a Hugging Face `tokenizer.json` object (load it back with `fromHuggingFace`). */
  toHuggingFace(): object {
    const addedIds = new Set(this.added.map((t) => t.id));
    const vocab: Record<string, number> = {};
    this.idToTok.forEach((tok, id) => {
      if (tok !== undefined && !addedIds.has(id)) vocab[tok] = id;
    });
    const byteLevel = { type: 'ByteLevel', add_prefix_space: this.addPrefixSpace, trim_offsets: true, use_regex: true };
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: [...this.added].sort((a, b) => a.id - b.id).map((t) => ({
        id: t.id,
        content: t.content,
        single_word: t.singleWord,
        lstrip: t.lstrip,
        rstrip: t.rstrip,
        normalized: t.normalized,
        special: t.special,
      })),
      normalizer: this.normalizer === 'nfc' ? { type: 'NFC' } : null,
      pre_tokenizer: byteLevel,
      post_processor: { ...byteLevel, trim_offsets: false },
      decoder: byteLevel,
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: this.ignoreMerges,
        vocab,
        // Byte-level tokens never contain a plain space, so the compact "a b" form is unambiguous.
        merges: this.merges.map(([a, b]) => `${a} ${b}`),
      },
    };
  }

  /**
   * Add special tokens as transformers' `add_special_tokens` does (e.g. OpenFlamingo's `<image>`):
   * a token already added keeps its id (and becomes special), one in the vocabulary takes that id,
   * a new one takes the id after the largest. Returns their ids.
   */
  addSpecialTokens(tokens: string[]): number[] {
    return tokens.map((content) => {
      const have = this.addedByContent.get(content);
      if (have) {
        have.special = true;
        this.matchers = null;
        return have.id;
      }
      const inVocab = this.vocab.get(content);
      const id = inVocab ?? this.idToTok.length;
      if (inVocab === undefined) {
        this.vocab.set(content, id);
        this.idToTok[id] = content;
      }
      this.registerAdded(specialToken(id, content));
      return id;
    });
  }

  /** Added tokens (copies), in id order. */
  getAddedTokens(): AddedToken[] {
    return [...this.added].sort((a, b) => a.id - b.id).map((t) => ({ ...t }));
  }

  // ------------------------------------------------------------------------------ queries

  get vocabSize(): number {
    return this.idToTok.length;
  }
  get imageTokenId(): number {
    return this.roleId('image');
  }
  get eocTokenId(): number {
    return this.roleId('eoc');
  }
  get padTokenId(): number {
    return this.roleId('pad');
  }
  get eosTokenId(): number {
    return this.roleId('eos');
  }
  get specialTokenNames(): SpecialTokenNames {
    return { ...this.names };
  }
  /** Learned merges in rank order (copies). */
  getMerges(): [string, string][] {
    return this.merges.map(([a, b]) => [a, b]);
  }

  tokenToId(token: string): number | undefined {
    return this.vocab.get(token);
  }
  idToToken(id: number): string | undefined {
    return this.idToTok[id];
  }
  isSpecial(id: number): boolean {
    return this.addedById.get(id)?.special === true;
  }

  // ------------------------------------------------------------------------------ encode/decode

  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids: number[] = [];
    const m = this.getMatchers();
    const special = options.parseSpecial ?? true;
    // Raw pass: added tokens with normalized=false are found in the text as given.
    for (const raw of (special ? m.raw : m.rawPlain).split(text)) {
      if (raw.id !== undefined) { ids.push(raw.id); continue; }
      // Each remaining piece is normalised on its own, then searched for the normalised added tokens.
      const norm = this.normalizer === 'nfc' ? nfcUnicode9(raw.text) : raw.text;
      for (const piece of (special ? m.norm : m.normPlain).split(norm)) {
        if (piece.id !== undefined) ids.push(piece.id);
        else this.encodeOrdinary(piece.text, ids);
      }
    }
    if (options.addSpecial) ids.push(this.eosTokenId);
    return ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const bytes: number[] = [];
    for (const id of ids) {
      // Added tokens by their content, then the model vocabulary; ids in neither are dropped.
      const added = this.addedById.get(id);
      const tok = added ? added.content : this.idToTok[id];
      if (tok === undefined) continue;
      if (options.skipSpecial && (added ?? this.addedByContent.get(tok))?.special) continue;
      pushTokenBytes(tok, bytes);
    }
    let text = utf8Decoder.decode(new Uint8Array(bytes));
    if (options.cleanUpSpaces) for (const [a, b] of CLEAN_UP) text = text.split(a).join(b);
    return text;
  }

  // ------------------------------------------------------------------------------ internals

  private roleId(role: keyof SpecialTokenNames): number {
    const id = this.vocab.get(this.names[role]);
    if (id === undefined) {
      throw new TokenizerError(`${role} token ${JSON.stringify(this.names[role])} is not in the vocab (use addSpecialTokens)`);
    }
    return id;
  }

  private registerAdded(t: AddedToken): void {
    if (t.content.length === 0) throw new TokenizerError(`added token id ${t.id} has empty content`);
    if (this.idToTok[t.id] === undefined) this.idToTok[t.id] = t.content;
    if (!this.vocab.has(t.content)) this.vocab.set(t.content, t.id);
    this.added.push(t);
    this.addedByContent.set(t.content, t);
    this.addedById.set(t.id, t);
    this.matchers = null;
  }

  private getMatchers(): NonNullable<BpeTokenizer['matchers']> {
    if (!this.matchers) {
      const raw = this.added.filter((t) => !t.normalized);
      const norm = this.added.filter((t) => t.normalized);
      this.matchers = {
        raw: new AddedTokenMatcher(raw),
        norm: new AddedTokenMatcher(norm),
        rawPlain: new AddedTokenMatcher(raw.filter((t) => !t.special)),
        normPlain: new AddedTokenMatcher(norm.filter((t) => !t.special)),
      };
    }
    return this.matchers;
  }

  private encodeOrdinary(text: string, out: number[]): void {
    if (text.length === 0) return;
    const src = this.addPrefixSpace && !text.startsWith(' ') ? ' ' + text : text;
    for (const piece of preTokenize(src)) {
      let ids = this.cache.get(piece);
      if (!ids) {
        ids = this.bpe(toByteLevel(piece));
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(piece, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  /**
   * Merge one byte-level word. Candidate merges sit in a min-heap keyed by (rank, position): the
   * lowest-ranked pair is merged first, equal ranks left to right — the order Hugging Face's
   * tokenizers use (identical to GPT-2's "merge every occurrence of the best pair" for well-formed
   * merge lists) — in O(n log n), so very long pieces (base64, ASCII art) stay fast.
   */
  private bpe(word: string): number[] {
    if (this.ignoreMerges) {
      const whole = this.vocab.get(word);
      if (whole !== undefined && !this.addedByContent.has(word)) return [whole];
    }
    const id = new Int32Array(word.length);
    let n = 0;
    for (let i = 0; i < word.length; i++) {
      const v = this.byteIds[CHAR_TO_BYTE.get(word[i]!)!]!;
      if (v >= 0) id[n++] = v; // a symbol missing from the vocab is dropped (no unk token), as Hugging Face does
    }
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
      const r = this.ranks.get(id[pos]! * PAIR_SHIFT + id[next[pos]!]!);
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
      const r = this.ranks.get(id[pos]! * PAIR_SHIFT + id[right]!);
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

function specialToken(id: number, content: string): AddedToken {
  return { id, content, special: true, normalized: false, lstrip: false, rstrip: false, singleWord: false };
}

/** A token's bytes for the ByteLevel decoder: its byte symbols, or its own UTF-8 if any character is not one. */
function pushTokenBytes(tok: string, out: number[]): void {
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

function readNormalizer(node: unknown): NormalizerKind {
  if (node === null || node === undefined) return 'none';
  if (isRecord(node) && node.type === 'NFC') return 'nfc';
  if (isRecord(node) && node.type === 'Sequence' && Array.isArray(node.normalizers)) {
    const kinds = node.normalizers.map(readNormalizer).filter((k) => k !== 'none');
    if (kinds.length <= 1) return kinds[0] ?? 'none';
  }
  throw new TokenizerError(`tokenizer.json: normalizer ${JSON.stringify(node).slice(0, 80)} is not supported (only NFC or none)`);
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function uniq(xs: string[]): string[] {
  return [...new Set(xs)];
}

/** Accept `ByteLevel` directly or inside a `Sequence`; anything else is a tokenizer we cannot reproduce. */
function findByteLevel(node: unknown, where: string): Record<string, unknown> {
  if (node === null || node === undefined) {
    throw new TokenizerError(`tokenizer.json: ${where} is missing; only ByteLevel ${where}s are supported`);
  }
  if (!isRecord(node)) throw new TokenizerError(`tokenizer.json: ${where} is not an object`);
  if (node.type === 'ByteLevel') {
    if (where === 'pre_tokenizer' && node.use_regex === false) {
      throw new TokenizerError('tokenizer.json: ByteLevel pre_tokenizer with use_regex=false (custom Split regex) is not supported');
    }
    return node;
  }
  if (node.type === 'Sequence') {
    const list = (node.pretokenizers ?? node.decoders) as unknown;
    if (Array.isArray(list) && list.length === 1) return findByteLevel(list[0], where);
  }
  throw new TokenizerError(`tokenizer.json: ${where} type ${JSON.stringify(node.type)} is not supported (need ByteLevel)`);
}
