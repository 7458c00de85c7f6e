/**
 * `flamingo generate --model DIR --prompt "<image>Output:a cat<|endofchunk|><image>Output:" --images a.png,b.png`
 * Few-shot generation from the command line: interleaved text with one <image> marker per image.
 * Options: --max-new-tokens N (20), --num-beams N (3), --length-penalty X, --sample [--temperature T --top-k K --top-p P --seed S], --json.
 */
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { loadFlamingo } from '../io/checkpoint.ts';
import { BpeTokenizer } from '../data/tokenizer.ts';
import { loadImage } from '../data/image.ts';
import { FlamingoProcessor } from '../data/processor.ts';
import { generate } from '../model/generate.ts';

export class CliUsageError extends Error {}

export function parseFlags(args: string[], spec: Record<string, 'string' | 'number' | 'boolean'>): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) throw new CliUsageError(`unexpected argument '${a}'`);
    const key = a.slice(2);
    const kind = spec[key];
    if (!kind) throw new CliUsageError(`unknown option --${key}`);
    if (kind === 'boolean') { out[key] = true; continue; }
    const v = args[++i];
    if (v === undefined) throw new CliUsageError(`--${key} needs a value`);
    if (kind === 'number') {
      const n = Number(v);
      if (!Number.isFinite(n)) throw new CliUsageError(`--${key} must be a number, got '${v}'`);
      out[key] = n;
    } else out[key] = v;
  }
  return out;
}

/** Load a model directory: config.json + weights.safetensors + tokenizer.json. */
export function loadModelDir(dir: string): { model: ReturnType<typeof loadFlamingo>; processor: FlamingoProcessor } {
  if (!existsSync(join(dir, 'tokenizer.json'))) throw new Error(`${dir} has no tokenizer.json`);
  const tokenizer = BpeTokenizer.fromHuggingFace(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
  const model = loadFlamingo(dir);
  if (tokenizer.vocabSize > model.config.lm.vocab_size) {
    throw new Error(`${dir}: tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary is ${model.config.lm.vocab_size}`);
  }
  model.setTrainingMode('none');
  return { model, processor: new FlamingoProcessor(tokenizer, { imageSize: model.config.vision.image_size, maxLength: model.config.lm.max_position_embeddings }) };
}

export async function run(args: string[]): Promise<number> {
  let f: Record<string, string | number | boolean>;
  try {
    f = parseFlags(args, {
      model: 'string', prompt: 'string', images: 'string', 'max-new-tokens': 'number', 'num-beams': 'number', 'length-penalty': 'number',
      sample: 'boolean', temperature: 'number', 'top-k': 'number', 'top-p': 'number', seed: 'number', json: 'boolean', help: 'boolean',
    });
    if (f.help) {
      process.stdout.write('usage: flamingo generate --model DIR --prompt TEXT [--images a.png,b.png] [--max-new-tokens 20] [--num-beams 3] [--sample --temperature 1 --top-k 0 --top-p 1 --seed 0] [--json]\n');
      return 0;
    }
    if (typeof f.model !== 'string' || typeof f.prompt !== 'string') throw new CliUsageError('--model and --prompt are required');
  } catch (e) {
    process.stderr.write(`flamingo generate: ${(e as Error).message}\n`);
    return 2;
  }
  const { model, processor } = loadModelDir(f.model as string);
  const paths = typeof f.images === 'string' && f.images.length > 0 ? f.images.split(',') : [];
  const images = paths.map((p) => loadImage(p));
  const enc = processor.encode([f.prompt as string], [images]);
  const sample = f.sample === true;
  const out = generate(model, { inputIds: enc.inputIds, attentionMask: enc.attentionMask, visionX: enc.visionX }, {
    maxNewTokens: (f['max-new-tokens'] as number | undefined) ?? 20,
    strategy: sample ? 'sample' : ((f['num-beams'] as number | undefined) ?? 3) > 1 ? 'beam' : 'greedy',
    numBeams: (f['num-beams'] as number | undefined) ?? 3,
    lengthPenalty: (f['length-penalty'] as number | undefined) ?? 1,
    temperature: f.temperature as number | undefined,
    topK: f['top-k'] as number | undefined,
    topP: f['top-p'] as number | undefined,
    seed: (f.seed as number | undefined) ?? 0,
  });
  const text = processor.decode(out.generated[0]!);
  if (f.json) process.stdout.write(JSON.stringify({ text, ids: out.generated[0] }) + '\n');
  else process.stdout.write(text + '\n');
  return 0;
}
