import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/engine/rng.ts';
import {
  drawNames, NAME_INVENTORIES, RARE_WORDS, TRAINING_ONSETS, TRAINING_VOWELS, UNSEEN_INVENTORY, type NameInventory,
} from '../src/data/synthetic/inventories.ts';
import { GENERATOR_SYLLABLES, inventNames, isReservedWord } from '../src/data/synthetic/names.ts';
import { textBinding } from '../src/data/datasets/binding.ts';
import { sourceFromSpec } from '../src/data/datasets/spec.ts';
import { textSourceAvailable } from '../src/data/text-corpus.ts';

// `pieces` joins names from a tokenizer's pieces: a small made-up vocabulary stands in for one here
const PIECES = { initial: ['qu', 'he', 'o', 'str', 'Al', 'bla'], inner: ['ick', 'e', 'ing', 'x', 'oa', 'th', 'Q'] };
const draw = (inv: NameInventory, episodes: number, seed = 1): string[][] => {
  const r = new Rng(seed);
  return Array.from({ length: episodes }, () => drawNames(r, 5, inv, inv === 'pieces' ? { pieces: PIECES } : {}));
};
const wordnet = textSourceAvailable('wordnet');

test('every inventory: n names per episode, distinct first words, no reserved word, deterministic in the seed', (t) => {
  for (const inv of NAME_INVENTORIES) {
    if ((inv === 'training' || inv === 'pieces') && !wordnet) { t.diagnostic('wordnet-base not installed: training inventory skipped'); continue; }
    const eps = draw(inv, 60);
    assert.deepEqual(draw(inv, 60), eps, inv);
    assert.notDeepEqual(draw(inv, 60, 2), eps, inv);
    for (const names of eps) {
      assert.equal(names.length, 5);
      const firsts = names.map((n) => n.split(' ')[0]!.toLowerCase());
      assert.equal(new Set(firsts).size, 5, `${inv}: ${names}`);
      for (const n of names) {
        assert.ok(!/[.<>|\n]/.test(n), `${inv}: ${n}`);
        for (const part of n.split(' ')) assert.ok(!isReservedWord(part.toLowerCase()), `${inv}: ${n}`);
      }
    }
  }
});

test('generator inventory is names.ts\' generator, draw for draw (earlier results stay comparable)', () => {
  const a = new Rng(9);
  const b = new Rng(9);
  for (let i = 0; i < 20; i++) assert.deepEqual(drawNames(a, 4, 'generator'), inventNames(b, 4));
});

test('the unseen inventory shares no onset or vowel with any syllable inventory training uses', () => {
  for (const o of UNSEEN_INVENTORY.onsets) {
    assert.ok(!TRAINING_ONSETS.includes(o) && !GENERATOR_SYLLABLES.onsets.includes(o), o);
  }
  for (const v of UNSEEN_INVENTORY.vowels) {
    assert.ok(!TRAINING_VOWELS.includes(v) && !GENERATOR_SYLLABLES.vowels.includes(v), v);
  }
  // and its names really are built from those units: each starts with one of its onsets
  for (const names of draw('unseen', 30)) for (const n of names) assert.ok(UNSEEN_INVENTORY.onsets.some((o) => n.startsWith(o)), n);
});

test('letters and rare words: what they say they are', () => {
  for (const names of draw('letters', 30)) for (const n of names) assert.match(n, /^[a-z]{3,8}$/);
  for (const names of draw('rare', 30)) for (const n of names) assert.ok(RARE_WORDS.includes(n), n);
  for (const names of draw('two-word', 30)) for (const n of names) assert.match(n, /^[a-z]+ [a-z]+$/);
});

test('training names: many forms (syllables, letters, real words, capitals, digits, two words), never a rare evaluation word', (t) => {
  if (!wordnet) return t.skip('wordnet-base not installed');
  const all = draw('training', 400).flat();
  const rare = new Set(RARE_WORDS);
  assert.ok(all.every((n) => !n.split(' ').some((p) => rare.has(p.toLowerCase()))), 'training never draws an evaluation rare word');
  const share = (re: RegExp): number => all.filter((n) => re.test(n)).length / all.length;
  assert.ok(share(/[A-Z]/) > 0.05, 'capitals');
  assert.ok(share(/\d/) > 0.04, 'digits');
  assert.ok(share(/ /) > 0.05, 'two-word names');
  const lengths = new Set(all.map((n) => n.length));
  assert.ok(Math.min(...lengths) <= 3 && Math.max(...lengths) >= 14, `lengths ${Math.min(...lengths)}..${Math.max(...lengths)}`);
  // no onset/vowel of the unseen inventory opens a training name's syllable-built words often: their first
  // letters pairs come from the training pools or random letters, so 'qu', 'wh' openings are rare
  assert.ok(share(/^(qu|wh|kn|wr)/) < 0.03);
});

test('binding sources take a names inventory; an unknown one is an error naming the dataset', (t) => {
  if (!wordnet) return t.skip('wordnet-base not installed');
  const gen = textBinding({ name: 'tb' }).open(1).next();
  const same = textBinding({ name: 'tb', names: 'generator' }).open(1).next();
  assert.deepEqual(same.chunks, gen.chunks, 'default is the generator');
  const s = sourceFromSpec('tb', { type: 'text-binding', names: 'training' }).open(1);
  let text = '';
  for (let i = 0; i < 40; i++) text += (s.next().chunks[0] as { text: string }).text;
  assert.ok(/[A-Z0-9]/.test(text.replace(/This is a/g, '')), 'training names reach the episodes');
  assert.throws(() => sourceFromSpec('tb', { type: 'text-binding', names: 'klingon' } as never), /tb.*names must be one of generator/);
  assert.throws(() => drawNames(new Rng(1), 2, 'klingon' as never), /unknown name inventory "klingon"/);
  assert.throws(() => drawNames(new Rng(1), 2, 'pieces'), /inventory pieces joins names from a tokenizer's pieces; none were given/);
});

test('tokenizer pieces: every alphabetic vocabulary piece can make a training name, and a run passes its tokenizer', async (t) => {
  if (!wordnet) return t.skip('wordnet-base not installed');
  const { namePiecesOf } = await import('../src/data/synthetic/inventories.ts');
  const { tokenizerPieces } = await import('../src/data/datasets/spec.ts');
  const { BpeTokenizer } = await import('../src/data/tokenizer.ts');
  const { readFileSync } = await import('node:fs');
  assert.deepEqual(namePiecesOf([' qu', 'ick', ' the', '.', ' 7', 'ing', ' ', 'a b']), { initial: ['qu', 'the'], inner: ['ick', 'ing'] });
  assert.throws(() => namePiecesOf(['.', ' 7']), /without alphabetic word-start and word-inner pieces/);
  const tok = BpeTokenizer.fromHuggingFace(readFileSync(new URL('../models/flamingo-fmnist/tokenizer.json', import.meta.url), 'utf8'));
  const pieces = tokenizerPieces(tok);
  assert.equal(tokenizerPieces(tok), pieces, 'computed once per tokenizer');
  assert.ok(pieces.initial.length > 100 && pieces.inner.length > 100);
  // names joined from pieces: start with a word-start piece, and across many episodes use most of them
  const r = new Rng(9);
  const firstPieces = new Set<string>();
  const initial = new Set(pieces.initial);
  for (let e = 0; e < 3000; e++) {
    for (const n of drawNames(r, 5, 'training', { pieces })) {
      for (let k = Math.min(n.length, 12); k >= 1; k--) if (initial.has(n.slice(0, k))) { firstPieces.add(n.slice(0, k)); break; }
    }
  }
  assert.ok(firstPieces.size > 0.8 * pieces.initial.length, `${firstPieces.size} of ${pieces.initial.length} word-start pieces open a name`);
  // without a tokenizer the training inventory draws what it drew before
  const plain = drawNames(new Rng(4), 5, 'training');
  assert.deepEqual(drawNames(new Rng(4), 5, 'training', {}), plain);
  // sourceFromSpec hands the tokenizer's pieces to `names: training` episodes only
  const withTok = sourceFromSpec('tb', { type: 'text-binding', names: 'training' }, '.', { tokenizer: tok }).open(1);
  const without = sourceFromSpec('tb', { type: 'text-binding', names: 'training' }).open(1);
  let differ = 0;
  for (let i = 0; i < 40; i++) if (JSON.stringify(withTok.next().chunks) !== JSON.stringify(without.next().chunks)) differ++;
  assert.ok(differ > 0, 'the pieces reach the episodes');
  const gen = sourceFromSpec('tb', { type: 'text-binding' }, '.', { tokenizer: tok }).open(1).next();
  assert.deepEqual(gen.chunks, textBinding({ name: 'tb' }).open(1).next().chunks, 'other inventories ignore the tokenizer');
});
