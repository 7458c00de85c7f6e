/**
 * `flamingo demo` (npm start): the main job on the bundled model. Loads models/flamingo-fmnist,
 * builds a 5-way 1-shot fast-binding prompt from real Fashion-MNIST test images (classes never seen
 * in Flamingo training), prints the prompt, the generated answer and the truth, then a table of
 * fast-binding accuracy by shots on seen and held-out classes. Names come from `--names` (default `unseen`, an
 * inventory training never drew from, so a right answer is copied from the prompt, not recalled).
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../engine/rng.ts';
import { noGrad } from '../engine/index.ts';
import { backend } from '../engine/backend.ts';
import { generate } from '../model/generate.ts';
import { BUNDLED_MODEL_DIR, BUNDLED_MODEL_HINT, loadPretrained, PretrainedError } from '../pretrained/index.ts';
import { intArg, parseOptions } from './args.ts';
import { answerSpan, answersName, bindingEpisode, evaluateBinding } from '../eval/fast-binding.ts';
import { isNameInventory, NAME_INVENTORIES, type NameInventory } from '../data/synthetic/inventories.ts';
import { UsageError } from '../errors.ts';
import { fashionMnistByClass } from '../data/fashion-mnist.ts';
import { encodePng, makeImage, type RgbImage } from '../data/image.ts';

/** Side-by-side strip of images (for a picture of the prompt). */
function strip(images: RgbImage[]): RgbImage {
  const h = Math.max(...images.map((i) => i.height));
  const w = images.reduce((s, i) => s + i.width + 2, 0);
  const out = makeImage(w, h);
  out.data.fill(255);
  let x0 = 0;
  for (const im of images) {
    for (let y = 0; y < im.height; y++) out.data.set(im.data.subarray(y * im.width * 3, (y + 1) * im.width * 3), (y * w + x0) * 3);
    x0 += im.width + 2;
  }
  return out;
}

/** Inventories a prompt can draw from (training's own are not evaluation names). */
const EVAL_INVENTORIES: readonly NameInventory[] = NAME_INVENTORIES.filter((i) => i !== 'training' && i !== 'pieces');

export async function run(args: string[]): Promise<number> {
  const { values } = parseOptions(args, { model: { type: 'string' }, episodes: { type: 'string' }, seed: { type: 'string' }, names: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) {
    process.stdout.write(`usage: flamingo demo [--model DIR] [--episodes N] [--seed S] [--names INVENTORY]\n  --names  name inventory (default unseen: never drawn in training): ${EVAL_INVENTORIES.join(', ')}\n`);
    return 0;
  }
  // by default names from an inventory training never drew from: a right answer can only be copied from the prompt
  const inventory = (values.names ?? 'unseen') as NameInventory;
  if (!isNameInventory(inventory) || !EVAL_INVENTORIES.includes(inventory)) throw new UsageError(`--names must be one of ${EVAL_INVENTORIES.join(', ')}, got ${JSON.stringify(values.names)}`);
  const dir = values.model ?? BUNDLED_MODEL_DIR;
  const seed = intArg('seed', values.seed) ?? 2024;
  const episodes = intArg('episodes', values.episodes, { min: 1 }) ?? 60;
  const t0 = performance.now();
  const { model, processor, meta } = loadPretrained(dir, { hint: values.model === undefined ? BUNDLED_MODEL_HINT : undefined });
  if (!meta) throw new PretrainedError(`${dir} has no meta.json (the seen / held-out Fashion-MNIST class split the demo needs)`);
  process.stdout.write(`flamingo-ts demo — model ${dir} (${(model.numParameters() / 1e6).toFixed(2)}M parameters), kernels: ${backend().description}\n\n`);

  const held = fashionMnistByClass(meta.heldout_classes, 200);
  const seen = fashionMnistByClass(meta.seen_classes, 200);
  noGrad(() => {
    // 1. one prompt, shown in full
    const ep = bindingEpisode(new Rng(seed), held, 5, 1, inventory);
    const enc = processor.encode([ep.prompt], [ep.images]);
    const out = generate(model, { inputIds: enc.inputIds, attentionMask: enc.attentionMask, visionX: enc.visionX }, { maxNewTokens: 8 });
    const generated = processor.decode(out.generated[0]!);
    mkdirSync('runs', { recursive: true });
    writeFileSync(join('runs', 'demo-prompt.png'), encodePng(strip(ep.images)));
    process.stdout.write('Few-shot prompt on real Fashion-MNIST photos (classes held out from Flamingo training;\n');
    process.stdout.write(`each name is invented for this prompt only, from the "${inventory}" inventory,\nso the answer can only come from the examples):\n`);
    const bound = Object.entries(ep.names).map(([c, n]) => `  "${n}" = ${c}`).join('\n');
    process.stdout.write(`${bound}\n\n  prompt: ${ep.prompt.replace(/<\|endofchunk\|>/g, '<|endofchunk|>\n          ')}\n`);
    process.stdout.write(`  generated: "${generated}"  → ${answersName(generated, ep.answer) ? 'correct' : `wrong ("${answerSpan(generated)}")`} (query class: ${ep.queryClass}, bound to "${ep.answer}")\n`);
    process.stdout.write(`  (images of this prompt: runs/demo-prompt.png)\n\n`);

    // 2. accuracy by shots
    process.stdout.write(`5-way fast binding accuracy, "${inventory}" names (${episodes} episodes each, chance 20%):\n`);
    process.stdout.write('  shots per class | seen classes | held-out classes\n  ----------------|--------------|-----------------\n');
    for (const shots of [1, 2, 3]) {
      const a = evaluateBinding(model, processor, seen, { ways: 5, shots, episodes, seed: seed + shots, inventory });
      const b = evaluateBinding(model, processor, held, { ways: 5, shots, episodes, seed: seed + 100 + shots, inventory });
      process.stdout.write(`  ${String(shots).padEnd(15)} | ${(100 * a.accuracy).toFixed(1).padStart(10)}% | ${(100 * b.accuracy).toFixed(1).padStart(14)}%\n`);
    }
  });
  process.stdout.write(`\ndone in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  return 0;
}
