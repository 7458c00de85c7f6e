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
 *
 * Parts: the byte alphabet (byte-level.ts), merging (bpe-merge.ts), normalisation, pre-tokenisation and
 * added tokens (tokenizer-text.ts), the tokenizer.json format (tokenizer-json.ts), training (bpe-train.ts).
 */
import { trainBpe } from './bpe-train.ts';
import { AddedTokenMatcher, nfcUnicode9, preTokenize, type AddedToken } from './tokenizer-text.ts';
import { TokenizerError } from './tokenizer-error.ts';
import { BYTE_TO_CHAR, CHAR_TO_BYTE, pushTokenBytes, toByteLevel, utf8Decoder } from './byte-level.ts';
import { PAIR_SHIFT, mergeWord, type MergeRanks } from './bpe-merge.ts';
import { parseTokenizerJson, stripUndefined, tokenizerJson } from './tokenizer-json.ts';
import {
  DEFAULT_SPECIAL_TOKENS, type DecodeOptions, type EncodeOptions, type NormalizerKind, type SpecialTokenNames, type TrainOptions,
} from './tokenizer-types.ts';

export { preTokenize, nfcUnicode9 } from './tokenizer-text.ts';
export type { AddedToken } from './tokenizer-text.ts';

/** Ids must fit a merge pair key. */
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
  private readonly ranks: MergeRanks = new Map();
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
    const p = parseTokenizerJson(json, options.specialTokens);
    return new BpeTokenizer(p.vocab, p.merges, p.added, p.names, p.opts);
  }

  /** Serialise as a Hugging Face `tokenizer.json` object (load it back with `fromHuggingFace`). */
  toHuggingFace(): object {
    return tokenizerJson({
      idToTok: this.idToTok, merges: this.merges, added: this.added, normalizer: this.normalizer,
      addPrefixSpace: this.addPrefixSpace, ignoreMerges: this.ignoreMerges,
    });
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
   * Merge one byte-level word (bpe-merge.ts).
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
    return mergeWord(id, n, this.ranks);
  }
}

function specialToken(id: number, content: string): AddedToken {
  return { id, content, special: true, normalized: false, lstrip: false, rstrip: false, singleWord: false };
}

function uniq(xs: string[]): string[] {
  return [...new Set(xs)];
}
