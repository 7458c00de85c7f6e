import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPretrained, PretrainedError, SOURCES } from '../src/pretrained/index.ts';
import { UsageError } from '../src/errors.ts';
import { saveModelDir, tinyModel, tinyTokenizer } from './eval-helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'flamingo-pretrained-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const tok = tinyTokenizer();
const dir = saveModelDir(join(tmp, 'model'), tok, tinyModel(tok, 3));

test('loadPretrained: model in inference mode, tokenizer, processor sized from the config, source and meta', () => {
  const p = loadPretrained(dir);
  assert.equal(p.source, 'flamingo-ts');
  assert.equal(p.meta, null);
  assert.equal(p.tokenizer.vocabSize, tok.vocabSize);
  assert.equal(p.processor.config.imageSize, p.model.config.vision.image_size);
  assert.ok([...p.model.namedParameters()].every(([, t]) => !t.requiresGrad), 'no trainable parameters');
  writeFileSync(join(dir, 'meta.json'), JSON.stringify({ seen_classes: [0, 1], heldout_classes: [2] }));
  const lines: string[] = [];
  assert.deepEqual(loadPretrained(dir, { log: (l) => lines.push(l) }).meta?.heldout_classes, [2]);
  assert.match(lines.join('\n'), /flamingo-ts, [\d.]+M parameters/);
  writeFileSync(join(dir, 'meta.json'), JSON.stringify({ seen_classes: [12] }));
  assert.throws(() => loadPretrained(dir), (e: unknown) => e instanceof PretrainedError && /meta\.json: seen_classes and heldout_classes/.test((e as Error).message));
  rmSync(join(dir, 'meta.json'));
});

test('loadPretrained: missing, misplaced or incomplete locations say what is wrong, with the hint', () => {
  const cases: [string, RegExp][] = [
    [join(tmp, 'nope'), /model directory .*nope does not exist$/],
    ['relative-nope', /model directory relative-nope \(resolved to .*relative-nope\) does not exist$/],
    [join(dir, 'config.json'), /is not a directory$/],
  ];
  for (const [where, re] of cases) {
    assert.throws(() => loadPretrained(where, { hint: 'try X' }), (e: unknown) => e instanceof PretrainedError && re.test((e as Error).message) && e.hint === 'try X', where);
  }
  const partial = join(tmp, 'partial');
  cpSync(dir, partial, { recursive: true });
  rmSync(join(partial, 'tokenizer.json'));
  rmSync(join(partial, 'weights.safetensors'));
  // every source says what it misses
  assert.throws(() => loadPretrained(partial), /as a flamingo-ts model directory \(.*\), has no weights\.safetensors, tokenizer\.json; as an OpenFlamingo release .* has no clip\/open_clip_pytorch_model\.bin/);
  assert.throws(() => loadPretrained(dir, { source: 'nonesuch' }), (e: unknown) => e instanceof UsageError && new RegExp(`available: ${SOURCES[0]!.name}`).test((e as Error).message));
});

test('loadPretrained: a tokenizer whose special ids differ from the config is refused', () => {
  const bad = join(tmp, 'bad-ids');
  cpSync(dir, bad, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(bad, 'config.json'), 'utf8'));
  cfg.flamingo.media_token_id = (cfg.flamingo.media_token_id + 1) % cfg.lm.vocab_size;
  writeFileSync(join(bad, 'config.json'), JSON.stringify(cfg));
  assert.throws(() => loadPretrained(bad), /<image> has id \d+ but the model config says \d+/);
});
