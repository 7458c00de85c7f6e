import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../src/engine/rng.ts';
import { encodePng, makeImage } from '../src/data/image.ts';
import { fashionMnistAvailable } from '../src/data/fashion-mnist.ts';
import { FlamingoProcessor } from '../src/data/processor.ts';
import { main } from '../src/cli/main.ts';
import {
  BINDING_INVENTORIES, BUILTIN_TASKS, formatAnswer, formatEpisode, formatPrompt, runSuite, scoreResults, scoreVqa, tenfold, type SuiteReport,
} from '../src/eval/suite/index.ts';
import { tokenizerCodec } from '../src/eval/tasks.ts';
import { RARE_WORDS } from '../src/data/synthetic/inventories.ts';
import { capture, saveModelDir, tinyModel, tinyTokenizer } from './eval-helpers.ts';

// Through the CLI's entry point: errors become one line on stderr and an exit code there.
const suiteCli = (a: string[]): Promise<number> => main(['eval', '--suite', 'builtin', ...a]);

const root = mkdtempSync(join(tmpdir(), 'eval-builtin-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

const tok = tinyTokenizer();
const model = tinyModel(tok, 5);
const modelDir = saveModelDir(join(root, 'model'), tok, model);
writeFileSync(join(modelDir, 'meta.json'), JSON.stringify({ seen_classes: [0, 1, 2, 3, 4], heldout_classes: [5, 6, 7, 8, 9] }));

// A small stand-in for the Tux Paint stamps: PNG + caption .txt (with a translation line) per stamp.
const tuxDir = join(root, 'stamps');
mkdirSync(join(tuxDir, 'animals'), { recursive: true });
for (let i = 0; i < 14; i++) {
  const rng = new Rng(100 + i);
  const im = makeImage(20 + i, 24);
  for (let j = 0; j < im.data.length; j++) im.data[j] = rng.int(256);
  writeFileSync(join(tuxDir, 'animals', `thing${i}.png`), encodePng(im));
  writeFileSync(join(tuxDir, 'animals', `thing${i}.txt`), `A red thing number ${i}.\nde.utf8=Ein Ding.\n`);
}

const FULL_SHOTS: Record<string, string[]> = {
  fast_binding_seen: ['1', '3', '5'], fast_binding_heldout: ['1', '3', '5'], captioning: ['0', '4', '8'], vqa: ['0', '4', '8'],
  captioning_tuxpaint: ['0', '4', '8'], format: ['0', '2', '4'], video_qa: ['0', '2', '4'],
};
const RANGE: Record<string, [number, number]> = {
  accuracy: [0, 100], 'VQA accuracy': [0, 100], 'exact match': [0, 100], CIDEr: [0, 1000],
};

function checkReport(r: SuiteReport, expectShots: (task: string) => string[]): void {
  assert.deepEqual(Object.keys(r).sort(), ['model', 'seconds', 'tasks']);
  assert.equal(r.model, 'model');
  assert.ok(r.seconds > 0);
  assert.deepEqual(r.tasks.map((t) => t.task), [...BUILTIN_TASKS]);
  for (const t of r.tasks) {
    if (t.task.startsWith('fast_binding') && !fashionMnistAvailable()) {
      assert.match(t.skipped ?? '', /Fashion-MNIST/);
      continue;
    }
    assert.equal(t.skipped, undefined, `${t.task} skipped: ${t.skipped}`);
    assert.ok(t.items >= 1);
    assert.deepEqual(Object.keys(t.shots), expectShots(t.task), t.task);
    const [lo, hi] = RANGE[t.metric]!;
    assert.ok(RANGE[t.metric], `unknown metric ${t.metric}`);
    for (const [k, v] of Object.entries(t.shots)) {
      assert.equal(typeof v, 'number', `${t.task} ${k}-shot has no score`);
      assert.ok(v! >= lo && v! <= hi, `${t.task} ${k}-shot score ${v} outside [${lo}, ${hi}]`);
    }
  }
}

test('full suite (2 items per task): every task, the right shot keys, scores in range, picture written', async () => {
  const out = join(root, 'full');
  const r = await capture(suiteCli, ['--model', modelDir, '--json', '--items', '2', '--out', out, '--tuxpaint', tuxDir, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, 'one JSON object on stdout');
  const rep = JSON.parse(lines[0]!) as SuiteReport;
  checkReport(rep, (t) => FULL_SHOTS[t]!);
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')), rep);
  const svg = readFileSync(join(out, 'score_vs_shots.svg'), 'utf8');
  assert.match(svg, /^<svg/);
  for (const t of rep.tasks) if (!t.skipped) assert.ok(svg.includes(`${t.task}:`), `panel for ${t.task}`);
});

test('k-shot prompts hold k demonstrations (0 shots: two text-only ones); fast binding: ways × k', () => {
  const processor = new FlamingoProcessor(tok, { imageSize: 32 });
  const { report, prompts, outputs } = runSuite(model, processor, tokenizerCodec(tok), 'tiny', {
    quick: false, seed: 3, items: 2, tuxpaintDir: tuxDir, classes: { seen: [0, 1, 2, 3, 4], heldout: [5, 6, 7, 8] },
  });
  const count = (s: string, sub: string): number => s.split(sub).length - 1;
  for (const t of report.tasks) {
    if (t.skipped) continue;
    for (const k of Object.keys(t.shots).map(Number)) {
      const ps = prompts[t.task]![String(k)]!;
      assert.ok(ps.length >= 1, `${t.task} ${k}-shot prompts recorded`);
      const outs = outputs[t.task]![String(k)]!;
      assert.equal(outs.length, t.items, `${t.task} ${k}-shot: every query's output recorded`);
      // the expected answer of the first query: a fast-binding name is one of its prompt's demonstrations
      if (t.task.startsWith('fast_binding')) assert.ok(ps[0]!.includes(` ${outs[0]!.expected}.`), `${t.task}: ${outs[0]!.expected}`);
      else assert.ok(outs.every((o) => typeof o.output === 'string' && o.expected.length > 0), `${t.task} ${k}-shot`);
      if (t.task === 'captioning') for (const o of outs) assert.match(o.expected, /^There (is|are) .+ on a [a-z]+ background\.$/, 'house-style reference');
      for (const p of ps) {
        const images = count(p, '<image>');
        const demos = count(p, '<|endofchunk|>');
        if (t.task.startsWith('fast_binding')) {
          const ways = t.settings!.ways as number;
          assert.equal(ways, t.task === 'fast_binding_seen' ? 5 : 4, 'ways = min(5, classes)');
          assert.equal(demos, ways * k, `${t.task} ${k}-shot`);
          assert.equal(images, ways * k + 1);
          assert.ok(p.endsWith('This is a<|endofchunk|><image>'));
        } else if (t.task === 'format') {
          assert.equal(demos, k);
          assert.equal(images, k + 1);
        } else {
          assert.equal(demos, k === 0 ? 2 : k, `${t.task} ${k}-shot: ${p}`);
          assert.equal(images, k === 0 ? 1 : k + 1, `${t.task} ${k}-shot: ${p}`);
          const marker = t.task.startsWith('captioning') ? 'Output:' : 'Short answer:';
          assert.equal(count(p, marker), (k === 0 ? 2 : k) + 1);
          assert.ok(p.endsWith(`<image>${t.task.startsWith('captioning') ? 'Output:' : ''}`) || p.endsWith('Short answer:'));
          if (t.task === 'captioning') {
            // every demonstration is in the house style, which the 0-shot text-only examples show as well
            const demoCaps = [...p.matchAll(/Output:(.*?)<\|endofchunk\|>/g)].map((m) => m[1]!);
            assert.equal(demoCaps.length, k === 0 ? 2 : k);
            for (const c of demoCaps) assert.match(c, /^There (is|are) .+ on a [a-z]+ background\.$/, c);
          }
        }
      }
    }
  }
  assert.equal(report.tasks.find((t) => t.task === 'video_qa')!.settings!.frames, 4, 'frames = the model\'s max_num_frames');
  // VQA reports each question kind per shot count; their item-weighted mean is the overall score
  const vqaRep = report.tasks.find((t) => t.task === 'vqa')!;
  for (const [k, perKind] of Object.entries(vqaRep.by_kind!)) {
    assert.ok(Object.keys(perKind).length >= 2, `several question kinds at ${k} shots`);
    for (const v of Object.values(perKind)) assert.ok(v >= 0 && v <= 100);
  }
  assert.deepEqual(Object.keys(vqaRep.by_kind!), Object.keys(vqaRep.shots));
  // fast binding: every name inventory at every shot count, on the same episodes; the task's score is the generator's
  for (const task of ['fast_binding_seen', 'fast_binding_heldout'] as const) {
    const rep = report.tasks.find((t) => t.task === task)!;
    if (rep.skipped) continue;
    assert.deepEqual(Object.keys(rep.by_inventory!), Object.keys(rep.shots));
    for (const [k, byInv] of Object.entries(rep.by_inventory!)) {
      assert.deepEqual(Object.keys(byInv), [...BINDING_INVENTORIES]);
      assert.equal(byInv.generator, rep.shots[k]);
      for (const inv of BINDING_INVENTORIES.slice(1)) {
        const outs = outputs[`${task}/${inv}`]![k]!;
        assert.equal(outs.length, rep.items, `${task} ${inv} ${k}-shot`);
        assert.ok(prompts[`${task}/${inv}`]![k]![0]!.includes(` ${outs[0]!.expected}.`), `${task} ${inv}: ${outs[0]!.expected}`);
        if (inv === 'rare') assert.ok(outs.every((o) => RARE_WORDS.includes(o.expected)));
        if (inv === 'letters') assert.ok(outs.every((o) => /^[a-z]{3,8}$/.test(o.expected)));
      }
    }
  }
});

test('--quick through `flamingo eval --suite builtin` is deterministic; another seed changes the data', async () => {
  const runOnce = async (name: string, seed: string) => {
    const out = join(root, name);
    const r = await capture(suiteCli, ['--model', modelDir, '--quick', '--json', '--out', out, '--tuxpaint', tuxDir, '--seed', seed]);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as SuiteReport;
    return { rep, prompts: readFileSync(join(out, 'prompts.json'), 'utf8') };
  };
  const a = await runOnce('q1', '1');
  const b = await runOnce('q2', '1');
  checkReport(a.rep, (t) => (t.startsWith('fast_binding') ? ['1', '3'] : t === 'format' || t === 'video_qa' ? ['0', '2'] : ['0', '4']));
  const strip = (r: SuiteReport) => ({ ...r, seconds: 0 });
  assert.deepEqual(strip(a.rep), strip(b.rep));
  assert.equal(a.prompts, b.prompts);
  const c = await runOnce('q3', '2');
  assert.notEqual(c.prompts, a.prompts);
});

test('missing or incomplete model directory: exit 1 with a clear message', async () => {
  const missing = join(root, 'no-such-model');
  const r = await capture(suiteCli, ['--model', missing, '--quick', '--json']);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /model directory .*no-such-model does not exist/);
  const partial = join(root, 'partial');
  mkdirSync(partial, { recursive: true });
  writeFileSync(join(partial, 'config.json'), readFileSync(join(modelDir, 'config.json')));
  const p = await capture(suiteCli, ['--model', partial, '--quick']);
  assert.equal(p.code, 1);
  assert.match(p.stderr, /has no weights\.safetensors, tokenizer\.json/);
  const u = await capture(suiteCli, ['--model', modelDir, '--items', '0']);
  assert.equal(u.code, 2);
  assert.match(u.stderr, /--items/);
});

test('absent Tux Paint data and absent class split: those tasks are skipped with a note, the rest run', async () => {
  const noMeta = join(root, 'nometa');
  mkdirSync(noMeta, { recursive: true });
  for (const f of ['config.json', 'weights.safetensors', 'tokenizer.json']) writeFileSync(join(noMeta, f), readFileSync(join(modelDir, f)));
  const r = await capture(suiteCli, ['--model', noMeta, '--quick', '--json', '--items', '1', '--out', join(root, 'skip'), '--tuxpaint', join(root, 'nothing')]);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as SuiteReport;
  const byName = new Map(rep.tasks.map((t) => [t.task, t]));
  assert.match(byName.get('captioning_tuxpaint')!.skipped!, /Tux Paint stamps not found/);
  assert.deepEqual(byName.get('captioning_tuxpaint')!.shots, {});
  assert.match(byName.get('fast_binding_seen')!.skipped!, /meta\.json/);
  assert.equal(byName.get('vqa')!.skipped, undefined);
  assert.deepEqual(Object.keys(byName.get('vqa')!.shots), ['0', '4']);
});

test('format episodes: one format throughout, k-shot prompt = the k examples nearest the query', () => {
  const ep = formatEpisode(7, 0, 32);
  assert.equal(ep.examples.length, 4);
  const lead = ep.query.lead;
  for (const ex of ep.examples) assert.ok(ex.text.startsWith(`${lead} `), `example '${ex.text}' uses lead '${lead}'`);
  assert.deepEqual(formatEpisode(7, 0, 32).query, ep.query, 'deterministic');
  const p2 = formatPrompt(ep, 2, 'k');
  assert.equal(p2.text, `<image>${ep.examples[2]!.text}<|endofchunk|><image>${ep.examples[3]!.text}<|endofchunk|><image>${lead}`);
  assert.deepEqual(p2.media.map((m) => m.key), ['k:ex2', 'k:ex3', 'k:query']);
  assert.equal(formatPrompt(ep, 0, 'k').text, `<image>${lead}`);
  assert.throws(() => formatPrompt(ep, 5, 'k'), RangeError);
  assert.equal(formatAnswer(` ${ep.query.answer}\nmore`), ep.query.answer);
});

test('scoring: exact VQA answers score 100 (ten-fold answers), wrong 0; a reference caption scores CIDEr > 0 (x100)', () => {
  const ref = { key: 'x', files: [], load: () => [makeImage(2, 2)] };
  const vqa = ['red', '3', 'top left'].map((a, i) => ({ kind: 'vqa' as const, id: i, question: 'q?', answers: tenfold(a), answerType: ['colour', 'count', 'where'][i]!, media: ref }));
  assert.equal(scoreResults('vqa', vqa, vqa.map((q) => ({ question_id: q.id, answer: q.answers[0]! }))), 100);
  assert.equal(scoreResults('vqa', vqa, vqa.map((q) => ({ question_id: q.id, answer: 'blue' }))), 0);
  // per kind: only the answers of that kind count
  const one = vqa.map((q, i) => ({ question_id: q.id, answer: i === 0 ? q.answers[0]! : 'blue' }));
  assert.deepEqual(scoreVqa(vqa, one), { overall: 33.33, byKind: { colour: 100, count: 0, where: 0 } });
  assert.ok(Math.abs(scoreResults('video_qa', vqa, [{ question_id: 0, answer: 'red' }, { question_id: 1, answer: 'no' }, { question_id: 2, answer: 'no' }]) - 100 / 3) < 0.01);
  const caps = ['a red circle on the left', 'two blue squares at the top', 'a large green star in the center'].map((c, i) => ({
    kind: 'captioning' as const, id: i, captions: [c, `${c} of the picture`], media: ref,
  }));
  const good = scoreResults('captioning', caps, caps.map((c) => ({ image_id: c.id, caption: c.captions[0]! })));
  const bad = scoreResults('captioning', caps, caps.map((c) => ({ image_id: c.id, caption: 'nothing here' })));
  assert.ok(good > 100, `CIDEr x100 of reference captions: ${good}`);
  assert.equal(bad, 0);
});
