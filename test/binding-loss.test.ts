// Binding episodes with `loss: "answers"`: only names whose key occurred earlier are loss targets; the tokens
// are those of the same episode scored in full.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fashionBinding, sceneBinding, textBinding } from '../src/data/datasets/binding.ts';
import { buildSample, encodePieces } from '../src/data/datasets/sample.ts';
import { makeLabels, IGNORE_INDEX } from '../src/data/datasets/collate.ts';
import { fashionMnistAvailable } from '../src/data/fashion-mnist.ts';
import { BpeTokenizer } from '../src/data/tokenizer.ts';
import { drawNames } from '../src/data/synthetic/inventories.ts';
import { Rng } from '../src/engine/rng.ts';
import { createLanguageModel } from '../src/model/lm/index.ts';
import { lmLoss, lmRow } from '../src/train/stages.ts';

const tok = BpeTokenizer.fromHuggingFace(readFileSync(new URL('../models/flamingo-fmnist/tokenizer.json', import.meta.url), 'utf8'));

/** The scored tokens of a row, decoded as one string per run of scored tokens. */
function scoredRuns(ids: number[], scored: Uint8Array): string[] {
  const runs: string[] = [];
  let cur: number[] = [];
  ids.forEach((id, t) => {
    if (scored[t]) cur.push(id);
    else if (cur.length) { runs.push(tok.decode(cur)); cur = []; }
  });
  if (cur.length) runs.push(tok.decode(cur));
  return runs;
}

for (const keys of ['words', 'vectors'] as const) {
  test(`text binding (${keys} keys), loss answers: same ids, only the names of repeated keys scored`, () => {
    const a = textBinding({ name: 'tb', keys, names: 'training', loss: 'answers' }).open(4);
    const b = textBinding({ name: 'tb', keys, names: 'training' }).open(4);
    for (let i = 0; i < 40; i++) {
      const da = a.next();
      const ra = lmRow(tok, da, false);
      const rb = lmRow(tok, b.next(), false);
      assert.deepEqual(ra.ids, rb.ids, 'the text is the one scored in full');
      assert.equal(rb.scored, null);
      // expected: the names after the first occurrence of their key, each with its full stop
      const text = tok.decode(ra.ids);
      const items = [...text.matchAll(/This is a(?: (\w+)|(?:<\|endofchunk\|>)?<image>) ([^.]+)\./g)];
      const firstSeen = new Set<string>();
      const expected: string[] = [];
      for (const [, word, name] of items) {
        const key = word ?? name!; // vector keys: the name stands for its key (names are distinct)
        if (firstSeen.has(key!)) expected.push(` ${name}.`);
        firstSeen.add(key!);
      }
      assert.ok(expected.length >= 1);
      assert.equal(scoredRuns(ra.ids, ra.scored!).join(''), expected.join(''));
    }
  });
}

test('fashion and scene binding, loss answers: the query name is scored, support names and the template are not', (t) => {
  const sources = [sceneBinding({ name: 'sb', names: 'letters', loss: 'answers', ways: [3, 3], shots: [1, 1] })];
  if (fashionMnistAvailable()) sources.push(fashionBinding({ name: 'fb', classes: [0, 1, 2], names: 'unseen', loss: 'answers', ways: [3, 3], shots: [1, 1] }));
  else t.diagnostic('Fashion-MNIST not installed: scene episodes only');
  for (const src of sources) {
    const s = src.open(1);
    for (let i = 0; i < 5; i++) {
      const doc = s.next();
      const names = doc.chunks.flatMap((c) => (c.kind === 'text' && c.text !== 'This is a' ? [c.text.trim().replace(/\.$/, '')] : []));
      const sample = buildSample(tok, doc, { maxImages: 10, maxTokens: 200, imageSize: 32 });
      const runs = scoredRuns(sample.tokens, sample.scored!);
      // scored: the <image> markers (never targets), the query's name, the closing <|endofchunk|>
      assert.equal(runs.map((r) => r.replaceAll('<image>', '').replaceAll('<|endofchunk|>', '')).filter((r) => r !== '').join('|'), ` ${names[3]}.`, `${doc.key}: ${runs.join('|')}`);
      const full = buildSample(tok, { key: doc.key, chunks: doc.chunks.map((c) => (c.kind === 'text' ? { kind: 'text', text: c.text } : c)) }, { maxImages: 10, maxTokens: 200, imageSize: 32 });
      assert.deepEqual(sample.tokens, full.tokens);
      assert.equal(full.scored, undefined);
    }
  }
  assert.throws(() => sceneBinding({ name: 'sb', loss: 'names' as never }), /sb: loss must be "all" or "answers"/);
  assert.throws(() => textBinding({ name: 'tb', loss: 1 as never }), /tb: loss must be "all" or "answers"/);
});

test('unscored tokens are not loss targets: labels, and the LM loss equals the loss over the scored ones', () => {
  const ids = Int32Array.from([5, 6, 7, 8, 9, 2]);
  const { labels, targets } = makeLabels(ids, [1, 1, 1, 1, 1, 0], 1, 6, 0, [Uint8Array.from([0, 0, 1, 1, 0])]);
  assert.deepEqual([...labels], [IGNORE_INDEX, IGNORE_INDEX, 7, 8, IGNORE_INDEX, IGNORE_INDEX]);
  assert.deepEqual([...targets], [IGNORE_INDEX, 7, 8, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]);
  assert.throws(() => makeLabels(ids, [1, 1, 1, 1, 1, 1], 1, 6, 0, [new Uint8Array(7)]), /row 0 has 7 scored flags for 6 positions/);

  const lm = createLanguageModel({ family: 'llama', vocab_size: 64, hidden_size: 16, intermediate_size: 32, num_layers: 1, num_heads: 2, num_key_value_heads: 2, max_position_embeddings: 32, rope_theta: 10000, rms_norm_eps: 1e-6, tie_word_embeddings: true } as never, new Rng(1));
  const rows = [[4, 10, 11, 12, 13, 14, 15], [4, 20, 21, 22]];
  const masks = [Uint8Array.from([1, 0, 0, 1, 1, 0, 1]), null];
  const loss = lmLoss(lm, rows, 2, undefined, 0, masks).item();
  // the same targets by hand: a row's target t+1 is counted when it is scored; per-token CE from the full loss of rows cut to one target
  const one = (prefix: number[]): number => lmLoss(lm, [prefix], 2).item() * (prefix.length - 1) - (prefix.length > 2 ? lmLoss(lm, [prefix.slice(0, -1)], 2).item() * (prefix.length - 2) : 0);
  const picked: number[] = [];
  rows.forEach((r, b) => { for (let t = 1; t < r.length; t++) if (!masks[b] || masks[b]![t]) picked.push(one(r.slice(0, t + 1))); });
  assert.ok(Math.abs(loss - picked.reduce((a, x) => a + x, 0) / picked.length) < 1e-4, `${loss} vs ${picked}`);
  assert.notEqual(loss.toFixed(5), lmLoss(lm, rows, 2).item().toFixed(5));
});

test('pieces that tokenise differently apart than together are rejected, not trained on other ids', () => {
  assert.deepEqual(encodePieces(tok, [{ text: 'This is a', scored: false }, { text: ' dax.', scored: true }], true, 'd').scored, Uint8Array.from([0, 0, 0, ...tok.encode(' dax.').map(() => 1)]));
  assert.throws(() => encodePieces(tok, [{ text: 'This is a da', scored: false }, { text: 'x.', scored: true }], true, 'doc-7'), /doc-7: its scored and unscored text pieces tokenise differently/);
});

test('training names: some episodes share a start across all their names, and drawing never gets stuck', () => {
  let sharedStart = 0;
  for (let i = 0; i < 3000; i++) {
    const names = drawNames(new Rng(11).fork(i), 5, 'training').map((n) => n.toLowerCase());
    if (names.every((n) => n.slice(0, 2) === names[0]!.slice(0, 2))) sharedStart++;
  }
  // 30% of episodes get a start of 1-4 letters; half or more of those at least 2 letters
  assert.ok(sharedStart > 150 && sharedStart < 1200, `${sharedStart} of 3000 episodes share their first two letters`);
});
