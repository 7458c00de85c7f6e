/**
 * Does a model take what its few-shot examples show? Two probes in the suite's prompt formats (OpenFlamingo's
 * `<image>Output:{caption}` and `<image>Question:{q} Short answer:{a}`), each run with image examples and with
 * the same examples text-only (their <image> dropped, as the zero-shot prompt does; the query keeps its image):
 *  - captions: mean log-likelihood per token of the suite's house-style reference after k examples in that
 *    style (k = 0 is the zero-shot prompt: two text-only examples);
 *  - answer form: 8 examples that ask the query's kind of question, all answered bare (one word, as VQAv2 and
 *    the suite do); how often the greedy answer is one word, and how often it is right, per question kind.
 * Image examples carry everything the text-only ones do, so a model that does worse with them cannot gain
 * from shots; one that ignores the examples' answer form cannot either.
 *   node --import tsx tools/probe-icl.ts [model dir] [--json]
 */
import { BUNDLED_MODEL_DIR, loadPretrained } from '../src/pretrained/index.ts';
import { generate } from '../src/model/generate.ts';
import { scoreContinuations } from '../src/model/score.ts';
import { Rng } from '../src/engine/rng.ts';
import { resolveConfig } from '../src/data/synthetic/config.ts';
import { sampleSceneWith } from '../src/data/synthetic/scene.ts';
import { renderScene } from '../src/data/synthetic/render.ts';
import { captionInStyle, qaPairs, SCENE_QA_KINDS, type QAKind } from '../src/data/synthetic/text.ts';
import type { RgbImage, Scene } from '../src/data/synthetic/types.ts';
import { SUITE_CAPTION_STYLE } from '../src/eval/suite/index.ts';
import { captionPrompt, EOC_TOKEN, IMAGE_TOKEN, vqaPrompt } from '../src/eval/prompts.ts';

const args = process.argv.slice(2);
const dir = args.find((a) => !a.startsWith('--')) ?? BUNDLED_MODEL_DIR;
const CAPTION_QUERIES = 60;
const CAPTION_SHOTS = [0, 2, 4, 8];
const ANSWER_QUERIES = 20;
const ANSWER_SHOTS = 8;

const { model, processor } = loadPretrained(dir);
const S = model.config.vision.image_size;
const world = resolveConfig({ imageSize: S });
const render = (s: Scene): RgbImage => renderScene(s, S, { supersample: world.supersample });

/** Prompt text and images for demonstrations + query; text-only drops the demonstrations' images. */
function prompt(demos: readonly { text: string; scene: Scene }[], query: { text: string; scene: Scene }, textOnly: boolean) {
  let prefix = demos.map((d) => `${d.text}\n`).join('');
  if (textOnly) prefix = prefix.replaceAll(IMAGE_TOKEN, '');
  const images = [...(textOnly ? [] : demos.map((d) => render(d.scene))), render(query.scene)];
  const enc = processor.encode([prefix + query.text], [images]);
  return { inputIds: enc.inputIds, attentionMask: enc.attentionMask, visionX: enc.visionX };
}

function captionLikelihood(shots: number, textOnly: boolean): number {
  let total = 0;
  let tokens = 0;
  for (let i = 0; i < CAPTION_QUERIES; i++) {
    const rng = new Rng(11).fork(i);
    const item = () => {
      const scene = sampleSceneWith(rng, world);
      return { scene, caption: captionInStyle(scene, SUITE_CAPTION_STYLE) };
    };
    const q = item();
    const demos = Array.from({ length: shots === 0 ? 2 : shots }, item).map((d) => ({ text: captionPrompt(d.caption), scene: d.scene }));
    const target = processor.tokenizer.encode(q.caption + EOC_TOKEN);
    total += scoreContinuations(model, prompt(demos, { text: captionPrompt(), scene: q.scene }, textOnly), [target])[0]!;
    tokens += target.length;
  }
  return Math.round((1000 * total) / tokens) / 1000;
}

function answerForm(kind: QAKind, textOnly: boolean): { oneWord: number; right: number } {
  let oneWord = 0;
  let right = 0;
  for (let i = 0; i < ANSWER_QUERIES; i++) {
    const rng = new Rng(3).fork(kind).fork(i);
    const draw = () => {
      for (;;) {
        const scene = sampleSceneWith(rng, world);
        const of = qaPairs(rng, scene, world).filter((x) => x.kind === kind);
        if (of.length > 0) return { scene, qa: of[rng.int(of.length)]! };
      }
    };
    const q = draw();
    const demos = Array.from({ length: ANSWER_SHOTS }, draw).map((d) => ({ text: vqaPrompt(d.qa.question, d.qa.answer), scene: d.scene }));
    const out = generate(model, prompt(demos, { text: vqaPrompt(q.qa.question), scene: q.scene }, textOnly), { maxNewTokens: 5 });
    const answer = processor.tokenizer.decode(out.generated[0]!).split(EOC_TOKEN)[0]!.trim();
    if (answer !== '' && !/\s/.test(answer)) oneWord++;
    if (answer === q.qa.answer) right++;
  }
  return { oneWord, right };
}

const captions = CAPTION_SHOTS.map((shots) => {
  const textOnly = captionLikelihood(shots, true);
  // the zero-shot prompt has no example images: both columns are the same prompt
  return { shots, images: shots === 0 ? textOnly : captionLikelihood(shots, false), textOnly };
});
const answers = SCENE_QA_KINDS.map((kind) => ({ kind, images: answerForm(kind, false), textOnly: answerForm(kind, true) }));

if (args.includes('--json')) {
  process.stdout.write(`${JSON.stringify({ model: dir, caption_loglik_per_token: captions, answer_form: { shots: ANSWER_SHOTS, queries: ANSWER_QUERIES, by_kind: answers } })}\n`);
} else {
  process.stdout.write(`${dir}\nhouse-style caption, log-likelihood per token (${CAPTION_QUERIES} queries; 0 shots = two text-only examples)\n`);
  process.stdout.write(`${'shots'.padEnd(6)} ${'image examples'.padStart(15)} ${'text-only'.padStart(10)}\n`);
  for (const c of captions) process.stdout.write(`${String(c.shots).padEnd(6)} ${c.images.toFixed(3).padStart(15)} ${c.textOnly.toFixed(3).padStart(10)}\n`);
  process.stdout.write(`\n${ANSWER_SHOTS} examples of the query's question kind, answered in one word: one-word / right answers of ${ANSWER_QUERIES}\n`);
  process.stdout.write(`${'kind'.padEnd(11)} ${'image examples'.padStart(15)} ${'text-only'.padStart(10)}\n`);
  const cell = (r: { oneWord: number; right: number }): string => `${r.oneWord} / ${r.right}`;
  for (const a of answers) process.stdout.write(`${a.kind.padEnd(11)} ${cell(a.images).padStart(15)} ${cell(a.textOnly).padStart(10)}\n`);
}
