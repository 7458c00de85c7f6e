/**
 * Hugging Face's `tokenizer.json` file format for byte-level BPE: reading one into the parts a BpeTokenizer
 * is built from (with errors naming the field), and writing those parts back in the layout the Rust
 * `tokenizers` library writes.
 */
import type { AddedToken } from './tokenizer-text.ts';
import { TokenizerError } from './tokenizer-error.ts';
import { DEFAULT_SPECIAL_TOKENS, type NormalizerKind, type SpecialTokenNames } from './tokenizer-types.ts';

/** What a tokenizer.json holds, as BpeTokenizer takes it. */
export interface TokenizerParts {
  /** Token → id, the added tokens included. */
  vocab: Map<string, number>;
  merges: [string, string][];
  added: AddedToken[];
  names: SpecialTokenNames;
  opts: { addPrefixSpace: boolean; ignoreMerges: boolean; normalizer: NormalizerKind };
}

/**
 * Read a Hugging Face `tokenizer.json` (BPE model with a ByteLevel pre-tokenizer). Role names for
 * image/eoc/pad/eos default to DEFAULT_SPECIAL_TOKENS.
 */
export function parseTokenizerJson(json: string | object, specialTokens: Partial<SpecialTokenNames> = {}): TokenizerParts {
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
  const names = { ...DEFAULT_SPECIAL_TOKENS, ...stripUndefined(specialTokens) };
  // Added tokens live outside model.vocab in some files and inside it in others (GPT-2's <|endoftext|>).
  const modelVocab = new Map(vocab);
  for (const t of added) {
    const existing = modelVocab.get(t.content);
    if (existing !== undefined && existing !== t.id) {
      throw new TokenizerError(`tokenizer.json: added token ${JSON.stringify(t.content)} has id ${t.id} but vocab says ${existing}`);
    }
    modelVocab.set(t.content, t.id);
  }
  return {
    vocab: modelVocab, merges, added, names,
    opts: { addPrefixSpace: preTok.add_prefix_space === true, ignoreMerges: model.ignore_merges === true, normalizer },
  };
}

/** The tokenizer's state that tokenizer.json records. */
export interface TokenizerState {
  /** id → token (sparse), the added tokens included. */
  idToTok: readonly (string | undefined)[];
  merges: readonly [string, string][];
  added: readonly AddedToken[];
  normalizer: NormalizerKind;
  addPrefixSpace: boolean;
  ignoreMerges: boolean;
}

/** A Hugging Face `tokenizer.json` object of the tokenizer (parseTokenizerJson reads it back). */
export function tokenizerJson(t: TokenizerState): object {
  const addedIds = new Set(t.added.map((a) => a.id));
  const vocab: Record<string, number> = {};
  t.idToTok.forEach((tok, id) => {
    if (tok !== undefined && !addedIds.has(id)) vocab[tok] = id;
  });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: t.addPrefixSpace, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [...t.added].sort((a, b) => a.id - b.id).map((a) => ({
      id: a.id,
      content: a.content,
      single_word: a.singleWord,
      lstrip: a.lstrip,
      rstrip: a.rstrip,
      normalized: a.normalized,
      special: a.special,
    })),
    normalizer: t.normalizer === 'nfc' ? { type: 'NFC' } : null,
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
      ignore_merges: t.ignoreMerges,
      vocab,
      // Byte-level tokens never contain a plain space, so the compact "a b" form is unambiguous.
      merges: t.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
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

export function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
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
