import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BpeTokenizer, preTokenize } from '../src/data/tokenizer.ts';
import { BYTE_ALPHABET, toByteLevel } from '../src/data/byte-level.ts';
import { TokenizerError } from '../src/data/tokenizer-error.ts';

/** Small seeded PRNG (mulberry32) so failures are reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CORPUS = [
  'The cat sat on the mat. The cat ate the rat.',
  "It's a photo of a dog running on the beach; the dog's owner isn't there.",
  'Numbers like 1234 and 56 appear too!!! And unicode: café, naïve, 東京, 😀.',
  '<image>A red bus parked on the street.<|endofchunk|><image>Two cats on a sofa.<|endofchunk|>',
];

function randomText(r: () => number, len: number): string {
  // Code point pools: ASCII, whitespace, Latin-1/accents, combining marks, CJK, emoji (astral), symbols.
  const pools: [number, number][] = [
    [0x20, 0x7e], [0x20, 0x20], [0x0a, 0x0a], [0x09, 0x09], [0xa0, 0xff], [0x300, 0x36f],
    [0x4e00, 0x9fff], [0x1f300, 0x1f6ff], [0x2000, 0x206f], [0x10000, 0x1ffff], [0x00, 0x1f],
  ];
  let s = '';
  for (let i = 0; i < len; i++) {
    const [lo, hi] = pools[Math.floor(r() * pools.length)]!;
    s += String.fromCodePoint(lo + Math.floor(r() * (hi - lo + 1)));
  }
  return s;
}

const trained = BpeTokenizer.train(CORPUS, { vocabSize: 320, minFrequency: 2 });

test('byte-level alphabet matches GPT-2 for well-known bytes', () => {
  assert.equal(BYTE_ALPHABET.length, 256);
  assert.equal(BYTE_ALPHABET[0x20], 'Ġ');
  assert.equal(BYTE_ALPHABET[0x0a], 'Ċ');
  assert.equal(BYTE_ALPHABET[0x00], 'Ā');
  assert.equal(BYTE_ALPHABET[0x41], 'A');
  assert.equal(BYTE_ALPHABET[0xad], 'Ń');
  assert.equal(new Set(BYTE_ALPHABET).size, 256);
  assert.equal(toByteLevel(' é'), 'ĠÃ©');
});

test('pre-tokenisation follows the GPT-2 pattern', () => {
  assert.deepEqual(preTokenize("I'm here  now 123!! ok\n"), ['I', "'m", ' here', ' ', ' now', ' 123', '!!', ' ok', '\n']);
  assert.deepEqual(preTokenize("they'll go"), ['they', "'ll", ' go']);
});

test('round trip on random unicode strings', () => {
  const r = rng(7);
  for (let i = 0; i < 300; i++) {
    const s = randomText(r, 1 + Math.floor(r() * 40));
    const ids = trained.encode(s);
    assert.equal(trained.decode(ids), s, `round trip failed for ${JSON.stringify(s)}`);
    for (const id of ids) assert.ok(id >= 0 && id < trained.vocabSize);
  }
});

test('special tokens are recognised literally and round-trip', () => {
  const t = trained;
  const text = '<image>A cat on a mat.<|endofchunk|><image>Two dogs<|endofchunk|><pad>';
  const ids = t.encode(text);
  assert.equal(ids[0], t.imageTokenId);
  assert.equal(ids.filter((i) => i === t.imageTokenId).length, 2);
  assert.equal(ids.filter((i) => i === t.eocTokenId).length, 2);
  assert.equal(ids[ids.length - 1], t.padTokenId);
  assert.equal(t.decode(ids), text);
  assert.equal(t.decode(ids, { skipSpecial: true }), 'A cat on a mat.Two dogs');
  // Random text with special tokens spliced in between.
  const r = rng(11);
  const specials = ['<image>', '<|endofchunk|>', '<|endoftext|>', '<pad>'];
  for (let i = 0; i < 100; i++) {
    let s = '';
    for (let k = 0; k < 4; k++) s += randomText(r, Math.floor(r() * 8)) + specials[Math.floor(r() * 4)];
    assert.equal(t.decode(t.encode(s)), s);
  }
  // Without parsing, the same text is plain bytes: no special ids, still a round trip.
  const plain = t.encode(text, { parseSpecial: false });
  for (const sid of [t.imageTokenId, t.eocTokenId, t.padTokenId]) assert.ok(!plain.includes(sid));
  assert.equal(t.decode(plain), text);
  const withEos = t.encode('hi', { addSpecial: true });
  assert.equal(withEos[withEos.length - 1], t.eosTokenId);
  assert.equal(new Set([t.imageTokenId, t.eocTokenId, t.padTokenId, t.eosTokenId]).size, 4);
});

test('training is deterministic and independent of corpus order', () => {
  const a = BpeTokenizer.train(CORPUS, { vocabSize: 320 });
  const b = BpeTokenizer.train([...CORPUS].reverse(), { vocabSize: 320 });
  assert.deepEqual(a.getMerges(), b.getMerges());
  assert.deepEqual(a.toHuggingFace(), b.toHuggingFace());
  assert.ok(a.getMerges().length > 0);
});

test('tiny corpus: merges are learned by count, ties broken by symbol id', () => {
  // Words: "ab" x1, " ab" x2, " abc" x1 → (a,b)=4 first, then (Ġ,ab)=3; (ab,c)=1 is below minFrequency.
  const t = BpeTokenizer.train(['ab ab ab abc'], { vocabSize: 400, minFrequency: 2 });
  assert.deepEqual(t.getMerges(), [['a', 'b'], ['Ġ', 'ab']]);
  assert.equal(t.vocabSize, 4 + 256 + 2);
  assert.deepEqual(t.encode(' abc').map((i) => t.idToToken(i)), ['Ġab', 'c']);
  // All pairs tie at count 1: ordered by (left id, right id); byte ids follow byte order (Ġ=0x20 < x < z).
  const u = BpeTokenizer.train(['xy zw'], { vocabSize: 400, minFrequency: 1 });
  assert.deepEqual(u.getMerges(), [['Ġ', 'z'], ['x', 'y'], ['Ġz', 'w']]);
  assert.throws(() => BpeTokenizer.train(['x'], { vocabSize: 100 }), TokenizerError);
});

test('special token configuration: renamed roles and extra tokens', () => {
  const t = BpeTokenizer.train(CORPUS, { vocabSize: 300, specialTokens: { image: '<img>', extra: ['<sep>'] } });
  assert.equal(t.idToToken(t.imageTokenId), '<img>');
  assert.deepEqual([t.imageTokenId, t.eocTokenId, t.padTokenId, t.eosTokenId, t.tokenToId('<sep>')], [0, 1, 2, 3, 4]);
  assert.deepEqual(t.encode('<img>x<sep>').filter((i) => i < 5), [0, 4]);
  // "<image>" is now ordinary text: encoded as bytes, not as one id.
  assert.ok(t.encode('<image>').length > 1);
  const u = BpeTokenizer.train(CORPUS, { vocabSize: 300, specialTokens: ['<image>', '<sep>'] });
  assert.ok(u.vocabSize > 5 + 256 && u.vocabSize <= 300, `vocab size ${u.vocabSize}`); // stops early when pairs run out
  assert.equal(u.tokenToId('<sep>'), 4);
  assert.equal(u.imageTokenId, 0);
});

/** A Hugging Face tokenizer.json written by hand: 256 byte symbols + a few merges. */
function handWrittenHf(merges: unknown[], extraVocab: string[]): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  BYTE_ALPHABET.forEach((c, i) => (vocab[c] = i));
  extraVocab.forEach((t, i) => (vocab[t] = 256 + i));
  vocab['<|endoftext|>'] = 256 + extraVocab.length; // GPT-2 keeps it inside model.vocab too
  return {
    version: '1.0',
    added_tokens: [
      { id: 256 + extraVocab.length, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, vocab, merges },
  };
}

test('hand-written HF tokenizer.json: merges applied in rank order, both merge forms', () => {
  const extra = ['ab', 'bc', 'abc', 'Ġa'];
  const bcFirst = BpeTokenizer.fromHuggingFace(JSON.stringify(handWrittenHf(['b c', 'a b', 'Ġ a'], extra)));
  assert.deepEqual(bcFirst.encode('abc'), [97, 257]); // a + bc (no "a bc" merge)
  const abFirst = BpeTokenizer.fromHuggingFace(handWrittenHf([['a', 'b'], ['b', 'c'], ['ab', 'c']], extra));
  assert.deepEqual(abFirst.encode('abc'), [258]); // ab, then ab+c
  assert.deepEqual(abFirst.encode('abcb c'), [258, 98, 32, 99]); // "b" and " c" stay bytes
  assert.deepEqual(bcFirst.encode(' a<|endoftext|>'), [259, 260]);
  assert.equal(bcFirst.eosTokenId, 260);
  assert.equal(bcFirst.decode([259, 260, 97], { skipSpecial: true }), ' aa');
  assert.throws(() => bcFirst.imageTokenId, /<image>/);
  const [img] = bcFirst.addSpecialTokens(['<image>']);
  assert.equal(img, 261);
  assert.deepEqual(bcFirst.encode('<image>a'), [261, 97]);
});

test('HF json round trip preserves vocab, merges and encodings', () => {
  const json = JSON.stringify(trained.toHuggingFace());
  const back = BpeTokenizer.fromHuggingFace(json);
  assert.equal(back.vocabSize, trained.vocabSize);
  assert.deepEqual(back.getMerges(), trained.getMerges());
  assert.deepEqual(back.toHuggingFace(), trained.toHuggingFace());
  const r = rng(3);
  for (let i = 0; i < 50; i++) {
    const s = randomText(r, 30) + '<image>' + CORPUS[i % CORPUS.length];
    assert.deepEqual(back.encode(s), trained.encode(s));
  }
  assert.equal(back.imageTokenId, trained.imageTokenId);
  // Array-form merges (newer tokenizers versions) load to the same tokenizer.
  const obj = JSON.parse(json);
  obj.model.merges = obj.model.merges.map((m: string) => m.split(' '));
  assert.deepEqual(BpeTokenizer.fromHuggingFace(obj).encode(CORPUS[0]!), trained.encode(CORPUS[0]!));
});

test('unsupported or broken tokenizer.json files fail with clear errors', () => {
  const good = handWrittenHf(['a b'], ['ab']);
  assert.throws(() => BpeTokenizer.fromHuggingFace('{not json'), /not valid JSON/);
  assert.throws(() => BpeTokenizer.fromHuggingFace({ ...good, model: { ...(good.model as object), type: 'WordPiece' } }), /WordPiece/);
  assert.throws(() => BpeTokenizer.fromHuggingFace(handWrittenHf(['a q'], [])), /merge #0/);
  assert.throws(() => BpeTokenizer.fromHuggingFace({ ...good, pre_tokenizer: { type: 'Whitespace' } }), /Whitespace/);
  assert.throws(() => BpeTokenizer.fromHuggingFace({ ...good, normalizer: { type: 'Lowercase' } }), /normalizer .*Lowercase.* is not supported/);
  // Ids in neither vocabulary are dropped, as Hugging Face's decode does.
  assert.equal(trained.decode([trained.vocabSize + 5]), '');
});

test('encoding matches a plain GPT-2 style reference merge loop, and long pieces stay fast', () => {
  const tok = BpeTokenizer.train([...CORPUS, ...CORPUS.map((s) => s.toUpperCase())], { vocabSize: 360, minFrequency: 1 });
  const rank = new Map(tok.getMerges().map(([a, b], i) => [`${a} ${b}`, i]));
  // Reference: repeatedly merge every occurrence of the best-ranked adjacent pair.
  const reference = (word: string): string[] => {
    let s = [...word];
    for (;;) {
      let best = Infinity;
      let at = -1;
      for (let i = 0; i + 1 < s.length; i++) {
        const r = rank.get(`${s[i]} ${s[i + 1]}`);
        if (r !== undefined && r < best) [best, at] = [r, i];
      }
      if (at < 0) return s;
      const [a, b] = [s[at]!, s[at + 1]!];
      const out: string[] = [];
      for (let i = 0; i < s.length; ) {
        const hit = i + 1 < s.length && s[i] === a && s[i + 1] === b;
        out.push(hit ? a + b : s[i]!);
        i += hit ? 2 : 1;
      }
      s = out;
    }
  };
  const r = rng(99);
  const texts = [...CORPUS, 'the the the thethe tthhee', 'aaaaaaa bbbbbb', ...Array.from({ length: 40 }, () => randomText(r, 25))];
  for (const text of texts) {
    for (const piece of preTokenize(text)) {
      const got = tok.encode(piece, { parseSpecial: false }).map((i) => tok.idToToken(i));
      assert.deepEqual(got, reference(toByteLevel(piece)), `piece ${JSON.stringify(piece)}`);
    }
  }
  const long = 'at'.repeat(45000); // "at" is frequent in the corpus (cat, sat, mat, rat, ate)
  const t0 = Date.now();
  const ids = tok.encode(long);
  assert.ok(Date.now() - t0 < 5000, 'a 90k-character piece must not take quadratic time');
  assert.ok(ids.length <= long.length / 2, 'merges compress the repeated word');
  assert.equal(tok.decode(ids), long);
});
