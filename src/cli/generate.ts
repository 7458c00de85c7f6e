/**
 * `flamingo generate --model DIR --prompt "<image>Output:a cat<|endofchunk|><image>Output:" --images a.png,b.png`
 * Few-shot generation from the command line: interleaved text with one <image> marker per media item.
 * A media item is an image file, a video file (mp4, webm, avi, gif, …; decoded by ffmpeg) or a folder of
 * frames; videos are sampled to --frames frames (default: the model's resampler.max_num_frames, else 8).
 * --prompt-file PATH (or - for standard input) reads a prompt too long for one shell argument.
 * Options: --max-new-tokens N (20), --num-beams N (3), --length-penalty X, --sample [--temperature T --top-k K --top-p P --seed S], --json.
 */
import { framesForModel, loadMedia } from '../data/video.ts';
import { generate } from '../model/generate.ts';
import { encodeMediaItems } from '../model/media.ts';
import { intTensor } from '../engine/tensor.ts';
import { loadPretrained } from '../pretrained/index.ts';
import { RELEASE_OPTIONS, modelLocation } from './model-sources.ts';
import { UsageError } from '../errors.ts';
import { dtypeArg, intArg, numberArg, parseOptions } from './args.ts';
import { logWeights, storedDType } from '../nn/quantize.ts';
import { readPrompt } from './prompt-input.ts';

const OPTIONS = {
  ...RELEASE_OPTIONS,
  model: { type: 'string' }, prompt: { type: 'string' }, 'prompt-file': { type: 'string' }, images: { type: 'string' }, 'max-new-tokens': { type: 'string' },
  'num-beams': { type: 'string' }, 'length-penalty': { type: 'string' }, sample: { type: 'boolean' }, temperature: { type: 'string' },
  'top-k': { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' }, frames: { type: 'string' }, dtype: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
} as const;

export async function run(args: string[]): Promise<number> {
  const { values: v } = parseOptions(args, OPTIONS);
  if (v.help) {
    process.stdout.write('usage: flamingo generate (--model DIR | --open-clip FILE --lm DIR --checkpoint FILE) (--prompt TEXT | --prompt-file PATH|-) [--images a.png,clip.mp4,frames-dir] [--frames N] [--max-new-tokens 20] [--num-beams 3] [--sample --temperature 1 --top-k 0 --top-p 1 --seed 0] [--dtype fp32|bf16|int8] [--json]\n');
    return 0;
  }
  const location = modelLocation(v);
  // Read before the model loads, so a bad prompt file fails at once.
  const prompt = readPrompt(v.prompt, v['prompt-file']);
  const maxNewTokens = intArg('max-new-tokens', v['max-new-tokens'], { min: 1 }) ?? 20;
  const numBeams = intArg('num-beams', v['num-beams'], { min: 1 }) ?? 3;
  const lengthPenalty = numberArg('length-penalty', v['length-penalty']) ?? 1;
  const temperature = numberArg('temperature', v.temperature);
  const topK = intArg('top-k', v['top-k']);
  const topP = numberArg('top-p', v['top-p']);
  const seed = intArg('seed', v.seed) ?? 0;
  const framesArg = intArg('frames', v.frames, { min: 1 });
  const dtype = dtypeArg(v.dtype);
  // a release says which files it assembled (a model directory loads silently: fp32 output is the text alone)
  const log = typeof location === 'string' ? undefined : (s: string): void => { process.stderr.write(`${s}\n`); };
  const { model, processor } = loadPretrained(location, { dtype, log });
  if (storedDType(model) !== 'fp32') logWeights(model, 'flamingo generate'); // the default fp32 adds no line
  const frames = framesArg ?? framesForModel(model.config.resampler);
  const media = (v.images ?? '').split(',').filter((p) => p.length > 0).map((p) => loadMedia(p, frames).map((im) => processor.preprocessImage(im)));
  const ids = processor.encodeText(prompt);
  const markers = ids.filter((t) => t === processor.tokenizer.imageTokenId).length;
  if (markers !== media.length) throw new UsageError(`the prompt has ${markers} <image> marker(s) but ${media.length} image/video file(s) were given`);
  const out = generate(model, { inputIds: intTensor(ids, [1, ids.length]), media: media.length > 0 ? encodeMediaItems(model, media) : null }, {
    maxNewTokens,
    strategy: v.sample ? 'sample' : numBeams > 1 ? 'beam' : 'greedy',
    numBeams,
    lengthPenalty,
    temperature,
    topK,
    topP,
    seed,
  });
  const text = processor.decode(out.generated[0]!);
  process.stdout.write(v.json ? JSON.stringify({ text, ids: out.generated[0] }) + '\n' : text + '\n');
  return 0;
}
