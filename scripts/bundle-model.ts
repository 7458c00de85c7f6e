/**
 * Package a trained run as the bundled model: copies config.json, weights.safetensors and
 * tokenizer.json from `<run>/model` into the target directory and writes meta.json with the
 * Fashion-MNIST classes seen in Flamingo training (from the run's config) and the held-out rest.
 *   node --import tsx scripts/bundle-model.ts runs/bundled-copying models/flamingo-fmnist
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const [run, out] = process.argv.slice(2);
if (!run || !out) {
  process.stderr.write('usage: bundle-model.ts <run dir> <model dir>\n');
  process.exit(2);
}
const cfgFile = join(run, 'config.json');
if (!existsSync(cfgFile)) throw new Error(`${cfgFile} not found (the training run writes its resolved config there)`);
const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as { stages: { flamingo: { datasets: { source: { type: string; classes?: number[] } }[] } } };
const binding = cfg.stages.flamingo.datasets.find((d) => d.source.type === 'fashion-binding');
const seen = binding?.source.classes ?? [];
const heldout = [...Array(10).keys()].filter((c) => !seen.includes(c));
mkdirSync(out, { recursive: true });
for (const f of ['config.json', 'weights.safetensors', 'tokenizer.json']) copyFileSync(join(run, 'model', f), join(out, f));
writeFileSync(join(out, 'meta.json'), JSON.stringify({
  name: 'flamingo-fmnist',
  description: 'Tiny Flamingo trained by `npm run train:bundled` (configs/bundled-reading.json, configs/bundled.json, then configs/bundled-copying.json): frozen contrastive ViT and text LM; resampler + gated cross-attention first trained to read scenes on single-image VQA pairs, then on Fashion-MNIST fast-binding episodes and captions of the seen classes, fast-binding episodes on synthetic scenes, and synthetic documents, pairs and videos; finally the LM learns to copy names of any form (many name inventories and the tokenizer\'s own pieces, only copyable names scored) and the cross-attention adapts to it with instance episodes and image and video QA.',
  seen_classes: seen,
  heldout_classes: heldout,
  training_config: ['configs/bundled-reading.json', 'configs/bundled.json', 'configs/bundled-copying.json'],
}, null, 2) + '\n');
const mb = statSync(join(out, 'weights.safetensors')).size / 2 ** 20;
process.stdout.write(`bundled ${run} → ${out} (${mb.toFixed(1)} MiB weights; seen classes ${seen.join(',')}, held-out ${heldout.join(',')})\n`);
