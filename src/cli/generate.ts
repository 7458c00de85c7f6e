/**
 * `flamingo generate --model DIR --prompt "<image>Output:a cat<|endofchunk|><image>Output:" --images a.png,b.png`
 * Few-shot generation from the command line: interleaved text with one <image> marker per media item.
 * A media item is an image file, a video file (mp4, webm, avi, gif, …; decoded by ffmpeg) or a folder of
 * frames; videos are sampled to --frames frames (default: the model's resampler.max_num_frames, else 8).
 * Options: --max-new-tokens N (20), --num-beams N (3), --length-penalty X, --sample [--temperature T --top-k K --top-p P --seed S], --json.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import { loadFlamingo } from '../io/checkpoint.ts';
import { BpeTokenizer } from '../data/tokenizer.ts';
import { FlamingoProcessor } from '../data/processor.ts';
import { framesForModel, loadMedia } from '../data/video.ts';
import { generate } from '../model/generate.ts';
import { encodeMediaItems } from '../model/media.ts';
import { intTensor } from '../engine/tensor.ts';

/** A numeric option value, or a clear usage error. */
export function numberOption(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got '${v}'`);
  return n;
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

const OPTIONS = {
  model: { type: 'string' }, prompt: { type: 'string' }, images: { type: 'string' }, 'max-new-tokens': { type: 'string' },
  'num-beams': { type: 'string' }, 'length-penalty': { type: 'string' }, sample: { type: 'boolean' }, temperature: { type: 'string' },
  'top-k': { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' }, frames: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
} as const;

export async function run(args: string[]): Promise<number> {
  let v: ReturnType<typeof parseArgs<{ args: string[]; options: typeof OPTIONS; strict: true }>>['values'];
  let nums: Record<string, number | undefined>;
  try {
    ({ values: v } = parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: false }));
    if (v.help) {
      process.stdout.write('usage: flamingo generate --model DIR --prompt TEXT [--images a.png,clip.mp4,frames-dir] [--frames N] [--max-new-tokens 20] [--num-beams 3] [--sample --temperature 1 --top-k 0 --top-p 1 --seed 0] [--json]\n');
      return 0;
    }
    if (v.model === undefined || v.prompt === undefined) throw new Error('--model and --prompt are required');
    if (v.frames !== undefined && !/^[1-9]\d*$/.test(v.frames)) throw new Error(`--frames must be a positive integer, got '${v.frames}'`);
    nums = Object.fromEntries(['max-new-tokens', 'num-beams', 'length-penalty', 'temperature', 'top-k', 'top-p', 'seed', 'frames']
      .map((k) => [k, numberOption(k, v[k as keyof typeof v] as string | undefined)]));
  } catch (e) {
    process.stderr.write(`flamingo generate: ${(e as Error).message}\n`);
    return 2;
  }
  const { model, processor } = loadModelDir(v.model);
  const frames = nums.frames ?? framesForModel(model.config.resampler);
  const media = (v.images ?? '').split(',').filter((p) => p.length > 0).map((p) => loadMedia(p, frames).map((im) => processor.preprocessImage(im)));
  const ids = processor.encodeText(v.prompt);
  const markers = ids.filter((t) => t === processor.tokenizer.imageTokenId).length;
  if (markers !== media.length) {
    process.stderr.write(`flamingo generate: the prompt has ${markers} <image> marker(s) but ${media.length} image/video file(s) were given\n`);
    return 2;
  }
  const numBeams = nums['num-beams'] ?? 3;
  const out = generate(model, { inputIds: intTensor(ids, [1, ids.length]), media: media.length > 0 ? encodeMediaItems(model, media) : null }, {
    maxNewTokens: nums['max-new-tokens'] ?? 20,
    strategy: v.sample ? 'sample' : numBeams > 1 ? 'beam' : 'greedy',
    numBeams,
    lengthPenalty: nums['length-penalty'] ?? 1,
    temperature: nums.temperature,
    topK: nums['top-k'],
    topP: nums['top-p'],
    seed: nums.seed ?? 0,
  });
  const text = processor.decode(out.generated[0]!);
  process.stdout.write(v.json ? JSON.stringify({ text, ids: out.generated[0] }) + '\n' : text + '\n');
  return 0;
}
