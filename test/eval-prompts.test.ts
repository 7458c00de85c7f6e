import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildPrompt, captionPrompt, effectiveShots, hatefulMemesPrompt, vqaPrompt, IMAGE_TOKEN, EOC_TOKEN,
} from '../src/eval/prompts.ts';
import type { CaptionItem, ClassificationItem, EvalItem, MediaRef, VqaItem } from '../src/eval/datasets/types.ts';

const ref = (key: string): MediaRef => ({ key, files: [], load: () => [] });
const cap = (i: number, caption: string): CaptionItem => ({ kind: 'captioning', id: i, media: ref(`c${i}`), captions: [caption, 'other'] });
const vqa = (i: number): VqaItem => ({ kind: 'vqa', id: i, media: ref(`v${i}`), question: `q${i}?`, answers: [`a${i}`, 'x'] });
const hm = (i: number, label: 0 | 1): ClassificationItem => ({ kind: 'classification', id: i, media: ref(`h${i}`), text: `t${i}`, label });

const count = (s: string, sub: string) => s.split(sub).length - 1;

test('templates match OpenFlamingo', () => {
  assert.equal(captionPrompt('a cat'), '<image>Output:a cat<|endofchunk|>');
  assert.equal(captionPrompt(), '<image>Output:');
  assert.equal(vqaPrompt('What?', 'red'), '<image>Question:What? Short answer:red<|endofchunk|>');
  assert.equal(vqaPrompt('What?'), '<image>Question:What? Short answer:');
  assert.equal(hatefulMemesPrompt('hi', 'yes'), "<image>is an image with: 'hi' written on it. Is it hateful? Answer:yes<|endofchunk|>");
  assert.equal(hatefulMemesPrompt('hi'), "<image>is an image with: 'hi' written on it. Is it hateful? Answer:");
});

test('k shots: exactly k demonstrations, k+1 <image> and k+1 media, query last', () => {
  for (const k of [1, 2, 4, 8]) {
    const demos: EvalItem[] = Array.from({ length: k }, (_, i) => vqa(i));
    const p = buildPrompt('vqa', k, demos, vqa(99));
    assert.equal(count(p.text, IMAGE_TOKEN), k + 1);
    assert.equal(count(p.text, EOC_TOKEN), k);
    assert.equal(count(p.text, 'Short answer:'), k + 1);
    assert.equal(p.media.length, k + 1);
    assert.deepEqual(p.media.map((m) => m.key), [...demos.map((d) => d.media.key), 'v99']);
    assert.ok(p.text.endsWith('<image>Question:q99? Short answer:'));
    assert.equal(p.text.slice(0, p.prefixLength), demos.map((d) => `<image>Question:${(d as VqaItem).question} Short answer:${(d as VqaItem).answers[0]}<|endofchunk|>\n`).join(''));
  }
});

test('zero-shot trick: two text-only demonstrations, only the query image', () => {
  const p = buildPrompt('captioning', 0, [cap(1, ' a dog. '), cap(2, 'two cats')], cap(3, 'x'));
  assert.equal(p.text, 'Output:a dog.<|endofchunk|>\nOutput:two cats<|endofchunk|>\n<image>Output:');
  assert.deepEqual(p.media.map((m) => m.key), ['c3']);
  assert.equal(effectiveShots(0), 2);
  assert.equal(effectiveShots(4), 4);
  assert.throws(() => buildPrompt('captioning', 0, [cap(1, 'a')], cap(3, 'x')), /needs 2 demonstrations/);
});

test('classification demonstrations are concatenated without newline and carry yes/no labels', () => {
  const p = buildPrompt('classification', 2, [hm(1, 1), hm(2, 0)], hm(3, 0));
  assert.equal(
    p.text,
    "<image>is an image with: 't1' written on it. Is it hateful? Answer:yes<|endofchunk|>"
    + "<image>is an image with: 't2' written on it. Is it hateful? Answer:no<|endofchunk|>"
    + "<image>is an image with: 't3' written on it. Is it hateful? Answer:",
  );
  const z = buildPrompt('classification', 0, [hm(1, 1), hm(2, 0)], hm(3, 0));
  assert.equal(count(z.text, IMAGE_TOKEN), 1);
  assert.ok(z.text.startsWith("is an image with: 't1'"));
});

test('video QA uses the VQA template with one media item per video', () => {
  const v = (i: number): VqaItem => ({ ...vqa(i), kind: 'video_qa' });
  const p = buildPrompt('video_qa', 2, [v(1), v(2)], v(3));
  assert.equal(count(p.text, IMAGE_TOKEN), 3);
  assert.equal(p.media.length, 3);
});
