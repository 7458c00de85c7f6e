/**
 * A model directory's frozen components as the files stages (a) and (b) write, so a training config can start
 * from them (`stages.flamingo.vision_weights` / `lm_weights`, `stages.lm.init_weights`) without the run that
 * made them: OUT/vision.safetensors (ViT names) and OUT/lm.safetensors (the LM's names).
 *   node --import tsx tools/split-components.ts [model dir] OUT
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadPretrained } from '../src/pretrained/index.ts';
import { saveWeights, weightsOf } from '../src/train/stages.ts';

const [dir, out] = process.argv.length > 3 ? [process.argv[2]!, process.argv[3]!] : [join('models', 'flamingo-fmnist'), process.argv[2]];
if (!out) {
  process.stderr.write('usage: node --import tsx tools/split-components.ts [model dir] OUT\n');
  process.exit(2);
}
const { model } = loadPretrained(dir);
mkdirSync(out, { recursive: true });
saveWeights(join(out, 'vision.safetensors'), weightsOf(model.vision_encoder), { stage: 'contrastive', source: dir });
saveWeights(join(out, 'lm.safetensors'), weightsOf(model.lang_encoder.lm), { stage: 'lm', source: dir });
process.stdout.write(`${join(out, 'vision.safetensors')}, ${join(out, 'lm.safetensors')}\n`);
