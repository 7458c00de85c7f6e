import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  evaluateCaptions, bleu, ciderD, rougeLSample, lcsLength, closestRefLength, ptbTokenize, pyRound,
  normalizeVqaAnswer, processPunctuation, vqaAccuracy, vqaItemAccuracy, rocAuc, rocAucStringLabels,
  predictClassNames, top1Accuracy, binaryScoreFromLogprobs, logSumExp, postprocessCaptionGeneration,
  postprocessVqaGeneration, MetricInputError, type CaptionSample,
} from '../src/eval/metrics/index.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- fixtures are untyped JSON */
function fixture(name: string): any {
  return JSON.parse(readFileSync(new URL(`./fixtures/shared/metrics/${name}`, import.meta.url), 'utf8'));
}
const caption = fixture('captioning.json');
const vqa = fixture('vqa.json');
const cls = fixture('classification.json');

const TOL = 1e-9;
function close(actual: number, expected: number, what: string): void {
  assert.ok(Number.isFinite(actual), `${what}: got ${actual}`);
  assert.ok(Math.abs(actual - expected) <= TOL, `${what}: got ${actual}, expected ${expected}`);
}

// ---------------------------------------------------------------- captioning
function checkCaptionSet(images: any[], expected: any, label: string): void {
  const samples: CaptionSample[] = images.map((im) => ({ candidate: im.candidate, references: im.references }));
  const ev = evaluateCaptions(samples);
  for (const k of ['CIDEr', 'Bleu_1', 'Bleu_2', 'Bleu_3', 'Bleu_4', 'ROUGE_L'] as const) {
    close(ev.scores[k], expected[k], `${label} ${k}`);
  }
  assert.equal(Object.keys(expected.per_image_CIDEr).length, images.length);
  images.forEach((im, i) => {
    const id = String(im.id);
    close(ev.perImage.CIDEr[i]!, expected.per_image_CIDEr[id], `${label} CIDEr[${id}]`);
    close(ev.perImage.ROUGE_L[i]!, expected.per_image_ROUGE_L[id], `${label} ROUGE_L[${id}]`);
    for (let k = 0; k < 4; k++) {
      close(ev.perImage.Bleu[k]![i]!, expected[`per_image_Bleu_${k + 1}`][id], `${label} Bleu_${k + 1}[${id}]`);
    }
  });
}

test('caption metrics reproduce every fixture number on the full set', () => {
  checkCaptionSet(caption.images, caption.expected, 'full');
});

test('caption metrics on each fixture subset recompute df and N from the subset', () => {
  assert.ok(caption.subsets.length > 0);
  for (const s of caption.subsets) {
    const ids = new Set<number>(s.image_ids);
    const images = caption.images.filter((im: any) => ids.has(im.id));
    assert.equal(images.length, ids.size);
    checkCaptionSet(images, s.expected, s.name);
  }
});

test('CIDEr-D of an image depends on the evaluated set', () => {
  const first = caption.images[0];
  const alone = ciderD([{ candidate: first.candidate, references: first.references }]).perImage[0]!;
  // With N = 1, every idf is log(1) - log(max(1, df)) = 0, so the score is 0.
  assert.equal(alone, 0);
  const full = caption.expected.per_image_CIDEr[String(first.id)];
  assert.ok(full > 0);
});

test('CIDEr-D: identical candidate and reference in a two-image set', () => {
  const s = ciderD([
    { candidate: 'a b c d e', references: ['a b c d e'] },
    { candidate: 'x y', references: ['z w'] },
  ]);
  // First image: vectors identical, every order's cosine is 1, no length penalty -> 10.
  close(s.perImage[0]!, 10, 'identical');
  assert.equal(s.perImage[1], 0);
  close(s.score, 5, 'mean');
});

test('BLEU helpers: closest reference length with ties to the shorter', () => {
  assert.equal(closestRefLength([7, 9], 8), 7);
  assert.equal(closestRefLength([9, 7], 8), 7);
  assert.equal(closestRefLength([3, 10, 12], 11), 10);
  const b = bleu([{ candidate: 'the cat sat', references: ['the cat sat'] }]);
  close(b.corpus[0]!, 1, 'exact match BLEU-1');
  // No 4-gram in a 3-word candidate: the smoothed precision tiny/small keeps BLEU-4 positive.
  const p = [(3 + 1e-15) / (3 + 1e-9), (2 + 1e-15) / (2 + 1e-9), (1 + 1e-15) / (1 + 1e-9), 1e-15 / 1e-9];
  close(b.corpus[3]!, (p[0]! * p[1]! * p[2]! * p[3]!) ** 0.25, 'smoothed BLEU-4');
  // Brevity penalty: 2-word candidate against a 4-word reference.
  const short = bleu([{ candidate: 'the cat', references: ['the cat sat down'] }]);
  close(short.corpus[0]!, Math.exp(1 - 4 / 2), 'brevity penalty');
});

test('ROUGE-L takes P and R maxima independently', () => {
  assert.equal(lcsLength(['a', 'b', 'c', 'd'], ['a', 'c', 'd']), 3);
  // ref1 gives P = 1 (lcs 2 / 2), ref2 gives R = 1 (lcs 1 / 1).
  const score = rougeLSample('a b', ['a b c d', 'a']);
  const p = 1;
  const r = 1;
  close(score, ((1 + 1.44) * p * r) / (r + 1.44 * p), 'independent maxima');
  assert.equal(rougeLSample('x', ['a b']), 0);
});

test('caption metrics reject empty input and missing references', () => {
  assert.throws(() => evaluateCaptions([]), MetricInputError);
  assert.throws(() => ciderD([{ candidate: 'a', references: [] }]), MetricInputError);
});

test('captioning post-processing matches every fixture case', () => {
  const cases = caption.postprocess_captioning_generation.cases;
  assert.ok(cases.length > 0);
  for (const c of cases) assert.equal(postprocessCaptionGeneration(c.generation), c.expected, c.generation);
});

// ---------------------------------------------------------------- PTB tokenizer
test('PTB tokenizer: lowercase, clitics, punctuation removal', () => {
  assert.equal(ptbTokenize('A man\'s dog doesn\'t like the "red" ball.'), "a man 's dog does n't like the red ball");
  assert.equal(ptbTokenize("They're here, I'm sure; we've seen it! You'll see. He'd go?"),
    "they 're here i 'm sure we 've seen it you 'll see he 'd go");
  assert.equal(ptbTokenize("I can't and won't"), "i ca n't and wo n't");
  assert.equal(ptbTokenize('Two dogs\' toys (blue) -- on the floor...'), 'two dogs toys blue on the floor');
  assert.equal(ptbTokenize('At 10:30, 1,000 people ate 3.5 pizzas.'), 'at 10:30 1,000 people ate 3.5 pizzas');
  assert.equal(ptbTokenize('A t-shirt near the U.S. border'), 'a t-shirt near the u.s. border');
  assert.equal(ptbTokenize('  spaced\tout \n caption  '), 'spaced out caption');
  assert.equal(ptbTokenize('“Curly” quotes – and dash…'), 'curly quotes and dash');
  assert.equal(ptbTokenize('!!! ... ?'), '');
});

test('PTB tokenizer output is stable under re-tokenization', () => {
  // The fixture captions are already in tokenized form; tokenizing again must not change them.
  for (const im of caption.images) {
    for (const r of [...im.references, im.candidate]) assert.equal(ptbTokenize(r), r);
  }
});

// ---------------------------------------------------------------- VQA
test('Python round: half-even on the exact binary value', () => {
  assert.equal(pyRound(0.125, 2), 0.12); // exactly representable tie -> even ((0.125).toFixed(2) is 0.13)
  assert.equal(pyRound(0.375, 2), 0.38);
  assert.equal(pyRound(2.675, 2), 2.67); // binary value is below the tie
  assert.equal(pyRound(1.005, 2), 1); // the exact binary value is 1.00499...
  assert.equal(pyRound(2.5, 0), 2);
  assert.equal(pyRound(3.5, 0), 4);
  assert.equal(pyRound(-0.125, 2), -0.12);
  assert.equal(pyRound(79.8, 2), 79.8);
  assert.equal(pyRound(1e300, 2), 1e300);
});

test('VQA normalization matches every fixture string', () => {
  for (const q of vqa.questions) {
    const exp = vqa.expected.normalized[String(q.question_id)];
    assert.equal(normalizeVqaAnswer(q.prediction), exp.prediction, `prediction of ${q.question_id}`);
    assert.deepEqual(q.answers.map(normalizeVqaAnswer), exp.answers, `answers of ${q.question_id}`);
  }
});

test('VQA normalization quirks: punctuation next to a space, digit commas, 32-period cap', () => {
  assert.equal(processPunctuation('a-b'), 'a b');
  assert.equal(processPunctuation('a-b - c'), 'ab  c');
  assert.equal(processPunctuation('1,000 a-b'), '1000 ab');
  assert.equal(processPunctuation('3.5.'), '3.5');
  const dots = '.'.repeat(40);
  assert.equal(processPunctuation(dots), '.'.repeat(8));
  assert.equal(normalizeVqaAnswer('Two\tdogs\n'), '2 dogs');
  assert.equal(normalizeVqaAnswer('the dont'), "don't");
});

test('VQA accuracy reproduces every fixture number', () => {
  const items = vqa.questions.map((q: any) => ({ prediction: q.prediction, answers: q.answers, answerType: q.answer_type }));
  const ev = vqaAccuracy(items);
  const e = vqa.expected;
  assert.equal(ev.overall, e.overall_accuracy);
  close(ev.overallUnrounded, e.overall_accuracy_unrounded, 'unrounded');
  close(ev.mean, e.mean_accuracy, 'mean');
  assert.deepEqual(ev.perAnswerType, e.per_answer_type);
  vqa.questions.forEach((q: any, i: number) => {
    const id = String(q.question_id);
    close(ev.perItem[i]!, e.per_question[id], `acc ${id}`);
    assert.equal(ev.perItemPercent[i], e.per_question_percent[id], `percent ${id}`);
  });
});

test('VQA leave-one-out: duplicates remove only themselves', () => {
  const answers = ['cat', 'cat', 'cat', 'dog', 'dog', 'dog', 'dog', 'dog', 'dog', 'dog'];
  // For each "cat": 2 others match -> 2/3; for each "dog": 3 cats -> 1.
  close(vqaItemAccuracy('cat', answers), (3 * (2 / 3) + 7) / 10, 'cat');
  close(vqaItemAccuracy('bird', answers), 0, 'bird');
  assert.throws(() => vqaAccuracy([]), MetricInputError);
});

test('VQA post-processing matches every fixture case', () => {
  const cases = vqa.postprocess_vqa_generation.cases;
  assert.ok(cases.length > 0);
  for (const c of cases) assert.equal(postprocessVqaGeneration(c.generation), c.expected, c.generation);
});

// ---------------------------------------------------------------- classification
test('ROC-AUC matches sklearn on the binary fixture and the extra cases', () => {
  close(rocAuc(cls.binary.labels, cls.binary.scores), cls.binary.expected_roc_auc, cls.binary.name);
  assert.ok(cls.binary_extra_cases.length > 0);
  for (const c of cls.binary_extra_cases) close(rocAuc(c.labels, c.scores), c.expected_roc_auc, c.name);
});

test('ROC-AUC: ties count one half, perfect and inverted rankings, one-class error', () => {
  assert.equal(rocAuc([0, 1], [0.5, 0.5]), 0.5);
  assert.equal(rocAuc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]), 1);
  assert.equal(rocAuc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]), 0);
  assert.throws(() => rocAuc([1, 1], [0.1, 0.2]), MetricInputError);
});

test('Hateful Memes path: P(yes) from log-probs and ROC-AUC with string labels', () => {
  const hm = cls.hateful_memes;
  const preds = hm.items.map((it: any) => binaryScoreFromLogprobs(it.logprobs, hm.class_names));
  assert.equal(hm.expected.pred_label.length, hm.items.length);
  hm.items.forEach((it: any, i: number) => {
    assert.equal(preds[i].predLabel, hm.expected.pred_label[i], `pred_label ${it.id}`);
    close(preds[i].predScore, hm.expected.pred_score[i], `pred_score ${it.id}`);
  });
  const auc = rocAucStringLabels(hm.items.map((it: any) => it.gt_label), preds.map((p: any) => p.predScore));
  close(auc, hm.expected.roc_auc, 'hateful memes roc_auc');
});

test('logsumexp and binary score agree with a direct softmax', () => {
  close(logSumExp([Math.log(0.25), Math.log(0.75)]), 0, 'lse');
  const p = binaryScoreFromLogprobs([Math.log(0.2), Math.log(0.6)], ['no', 'yes']);
  assert.equal(p.predLabel, 'yes');
  close(p.predScore, 0.75, 'P(yes)');
  const q = binaryScoreFromLogprobs([Math.log(0.6), Math.log(0.2)], ['no', 'yes']);
  assert.equal(q.predLabel, 'no');
  close(q.predScore, 0.25, 'P(yes) when no wins');
});

test('multiclass argmax predictions and top-1 accuracy match the fixture', () => {
  const mc = cls.multiclass;
  const preds = predictClassNames(mc.items.map((it: any) => it.logprobs), mc.class_names);
  assert.deepEqual(preds, mc.expected.pred_label);
  const gts = mc.items.map((it: any) => it.gt_label);
  assert.equal(preds.filter((p, i) => p === gts[i]).length, mc.expected.correct);
  close(top1Accuracy(preds, gts), mc.expected.top1_accuracy, 'top1');
});
