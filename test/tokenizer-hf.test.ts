// Hugging Face-exact tokenization: every public case of test/fixtures/shared/tokenizers for both
// tokenizer folders, the added-token flags, Unicode 9.0 NFC, and the bundled model's tokenizer
// giving the ids it gave before the rewrite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpeTokenizer, nfcUnicode9, preTokenize } from '../src/data/tokenizer.ts';
import { BYTE_ALPHABET } from '../src/data/byte-level.ts';
import { loadOpenFlamingoTokenizer, runTokenizerDir } from '../src/eval/verify/tokenizer.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const TOK = join(HERE, 'fixtures', 'shared', 'tokenizers');

for (const dir of ['gpt-neox-20b', 'gpt-neox-20b-openflamingo']) {
  test(`${dir}: every public encode and decode case as Hugging Face tokenizers`, () => {
    const results = runTokenizerDir(join(TOK, dir));
    assert.equal(results.length, 179);
    const failed = results.filter((r) => !r.pass).map((r) => `${r.case}: ${r.outputs.filter((o) => !o.pass).map((o) => `${o.name} ${o.detail}`).join('; ')}`);
    assert.deepEqual(failed, []);
  });
}

test("OpenFlamingo's tokens: ids 50277..50279, adding them again changes nothing, both folders agree", () => {
  const a = loadOpenFlamingoTokenizer(join(TOK, 'gpt-neox-20b'));
  const b = loadOpenFlamingoTokenizer(join(TOK, 'gpt-neox-20b-openflamingo'));
  for (const t of [a, b]) {
    assert.deepEqual([t.eocTokenId, t.imageTokenId, t.padTokenId, t.eosTokenId, t.vocabSize], [50277, 50278, 50279, 0, 50280]);
    assert.deepEqual(t.addSpecialTokens(['<|endofchunk|>', '<image>', '<PAD>']), [50277, 50278, 50279]);
    assert.equal(t.vocabSize, 50280);
  }
  const text = 'dog<image>cat <|endofchunk|>  two  spaces<PAD>';
  assert.deepEqual(a.encode(text), b.encode(text));
  assert.deepEqual(a.encode('dog<image>cat').slice(1, 2), [50278]);
  // Not matched: wrong case, inner spaces.
  for (const plain of ['<IMAGE>', '<image >', '< image>', '<pad>']) assert.ok(!a.encode(plain).includes(50278) && !a.encode(plain).includes(50279), plain);
  // parseSpecial false encodes special-token text as plain text.
  assert.ok(!a.encode('<image>', { parseSpecial: false }).includes(50278));
});

/** A tiny byte-level tokenizer.json with the given added tokens. */
function tiny(added: object[], normalizer: object | null = null): BpeTokenizer {
  const vocab: Record<string, number> = {};
  BYTE_ALPHABET.forEach((c, i) => (vocab[c] = i));
  const bl = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return BpeTokenizer.fromHuggingFace({
    added_tokens: added, normalizer, pre_tokenizer: bl, decoder: bl,
    model: { type: 'BPE', vocab, merges: [] },
  });
}

const bytesOf = (s: string): number[] => [...new TextEncoder().encode(s)].map((b) => BYTE_ALPHABET.indexOf(BYTE_ALPHABET[b]!));

test('added-token flags: lstrip and rstrip swallow whitespace, single_word needs word boundaries, leftmost-longest wins', () => {
  const base = { special: true, normalized: false, lstrip: false, rstrip: false, single_word: false };
  const t = tiny([
    { ...base, id: 300, content: '<L>', lstrip: true },
    { ...base, id: 301, content: '<R>', rstrip: true },
    { ...base, id: 302, content: 'ab', single_word: true },
    { ...base, id: 303, content: '<x' },
    { ...base, id: 304, content: '<xy>' },
  ]);
  assert.deepEqual(t.encode('a  <L>b'), [...bytesOf('a'), 300, ...bytesOf('b')]);
  assert.deepEqual(t.encode('a<R> \n b'), [...bytesOf('a'), 301, ...bytesOf('b')]);
  assert.deepEqual(t.encode('ab cab ab_'), [302, ...bytesOf(' cab ab_')]);
  assert.deepEqual(t.encode('<xy><x'), [304, 303]);
  assert.deepEqual(t.decode([300, 301]), '<L><R>');
  assert.deepEqual(t.decode([300, 999, 301], { skipSpecial: true }), '');
});

test('NFC with Unicode 9.0 data: marks assigned later are starters that neither reorder nor compose', () => {
  assert.equal(nfcUnicode9('e\u0301'), '\u00e9');
  assert.equal(nfcUnicode9('a\u0316\u0301'), 'a\u0316\u0301'.normalize('NFC'));
  // U+1AC1 (Unicode 14, canonical class 230 today) stays before U+0316 (class 220); current NFC reorders them.
  assert.equal(nfcUnicode9('a\u1ac1\u0316'), 'a\u1ac1\u0316');
  assert.notEqual('a\u1ac1\u0316'.normalize('NFC'), 'a\u1ac1\u0316');
  // A later mark between a base and an older mark blocks their composition.
  assert.equal(nfcUnicode9('e\u1ac1\u0301'), 'e\u1ac1\u0301');
  const nfc = tiny([], { type: 'NFC' });
  assert.deepEqual(nfc.encode('e\u0301'), bytesOf('\u00e9'));
});

test('pre-tokenisation uses Unicode White_Space (U+0085 is whitespace, U+FEFF is not)', () => {
  // ' \u0085' is a whitespace run followed by a letter: all but its last character go alone (GPT-2's \s+(?!\S)).
  assert.deepEqual(preTokenize('a \u0085b'), ['a', ' ', '\u0085', 'b']);
  assert.deepEqual(preTokenize('Hello \ufeffworld'), ['Hello', ' \ufeff', 'world']);
  assert.deepEqual(preTokenize("I'm here  now 123!! ok\n"), ['I', "'m", ' here', ' ', ' now', ' 123', '!!', ' ok', '\n']);
});

test('decode: one byte stream (a character split by a special token becomes U+FFFD), empty list, clean-up of spaces', () => {
  const a = loadOpenFlamingoTokenizer(join(TOK, 'gpt-neox-20b-openflamingo'));
  const emoji = a.encode('😀');
  assert.ok(emoji.length >= 2);
  assert.equal(a.decode([emoji[0]!, 50278, ...emoji.slice(1)]).includes('\ufffd'), true);
  assert.equal(a.decode([]), '');
  assert.equal(a.decode(a.encode("Hello , world . It 's")), "Hello , world . It 's");
  assert.equal(a.decode(a.encode("Hello , world . It 's"), { cleanUpSpaces: true }), "Hello, world. It's");
  assert.equal(a.decode(a.encode('\ufeffBOM kept')), '\ufeffBOM kept');
});

test('the bundled model tokenizes exactly as before (ids recorded with the previous implementation)', () => {
  const golden = JSON.parse(readFileSync(join(HERE, 'fixtures', 'tokenizer', 'bundled-golden.json'), 'utf8')) as { cases: { text: string; ids: number[] }[] };
  const tok = BpeTokenizer.fromHuggingFace(readFileSync(join(HERE, '..', 'models', 'flamingo-fmnist', 'tokenizer.json'), 'utf8'));
  assert.ok(golden.cases.length > 150);
  for (const c of golden.cases) assert.deepEqual(tok.encode(c.text), c.ids, JSON.stringify(c.text).slice(0, 80));
  // Written back, the file loads to the same tokenizer.
  const again = BpeTokenizer.fromHuggingFace(tok.toHuggingFace());
  for (const c of golden.cases.slice(0, 50)) assert.deepEqual(again.encode(c.text), c.ids);
});
