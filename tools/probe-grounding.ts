/**
 * Does a model read what is in a synthetic scene? On single-object scenes, score
 * `<image>A {colour} {shape} on a {background} background.` with one attribute varied over all its values
 * and count how often the true one has the highest likelihood — with the gated blocks on and with every gate
 * set to 0 (the frozen LM alone: the text prior). Captioning and VQA can only rise with shots on a model whose
 * "on" column is well above the "off" one.
 *   node --import tsx tools/probe-grounding.ts [model dir] [--json]
 */
import { BUNDLED_MODEL_DIR, loadPretrained } from '../src/pretrained/index.ts';
import { scoreContinuations } from '../src/model/score.ts';
import { Rng } from '../src/engine/rng.ts';
import { resolveConfig } from '../src/data/synthetic/config.ts';
import { sampleSceneWith } from '../src/data/synthetic/scene.ts';
import { renderScene } from '../src/data/synthetic/render.ts';
import { BACKGROUND_NAMES, COLOUR_NAMES, SHAPES } from '../src/data/synthetic/vocab.ts';

const args = process.argv.slice(2);
const dir = args.find((a) => !a.startsWith('--')) ?? BUNDLED_MODEL_DIR;
const SCENES = 60;
type Attr = 'colour' | 'shape' | 'background';
const VALUES: Record<Attr, readonly string[]> = { colour: COLOUR_NAMES, shape: SHAPES, background: BACKGROUND_NAMES };

const { model, processor } = loadPretrained(dir);

function probe(): Record<Attr, number> {
  const tok = processor.tokenizer;
  const cfg = resolveConfig({ imageSize: model.config.vision.image_size });
  const hits: Record<Attr, number> = { colour: 0, shape: 0, background: 0 };
  for (let i = 0; i < SCENES; i++) {
    const scene = sampleSceneWith(new Rng(5).fork(i), cfg, { count: 1 });
    const truth: Record<Attr, string> = { colour: scene.objects[0]!.colour, shape: scene.objects[0]!.shape, background: scene.background.colour };
    const enc = processor.encode(['<image>A'], [[renderScene(scene, cfg.imageSize)]]);
    const prompt = { inputIds: enc.inputIds, attentionMask: enc.attentionMask, visionX: enc.visionX };
    for (const attr of Object.keys(VALUES) as Attr[]) {
      const text = (v: string): string => {
        const t = { ...truth, [attr]: v };
        return ` ${t.colour} ${t.shape} on a ${t.background} background.`;
      };
      const scores = scoreContinuations(model, prompt, VALUES[attr].map((v) => tok.encode(text(v))));
      if (VALUES[attr][scores.indexOf(Math.max(...scores))] === truth[attr]) hits[attr]++;
    }
  }
  const pct = (n: number): number => Math.round((1000 * n) / SCENES) / 10;
  return { colour: pct(hits.colour), shape: pct(hits.shape), background: pct(hits.background) };
}

const on = probe();
// every tanh gate at 0: each gated block passes its input through, leaving the frozen LM alone
for (const [n, p] of model.namedParameters()) if (/_gate$/.test(n)) p.f32.fill(0);
const off = probe();
const chance = { colour: 100 / COLOUR_NAMES.length, shape: 100 / SHAPES.length, background: 100 / BACKGROUND_NAMES.length };
if (args.includes('--json')) process.stdout.write(`${JSON.stringify({ model: dir, metric: 'accuracy (%) of the true attribute by likelihood', scenes: SCENES, gates_on: on, gates_off: off, chance })}\n`);
else {
  process.stdout.write(`single-object scenes (${SCENES}), true attribute ranked first by likelihood (%), ${dir}\n`);
  process.stdout.write(`${'attribute'.padEnd(12)} ${'model'.padStart(7)} ${'LM only'.padStart(8)} ${'chance'.padStart(7)}\n`);
  for (const a of Object.keys(VALUES) as Attr[]) {
    process.stdout.write(`${a.padEnd(12)} ${String(on[a]).padStart(7)} ${String(off[a]).padStart(8)} ${chance[a].toFixed(1).padStart(7)}\n`);
  }
}
