/**
 * `npm run bench -- eval [--json] [--config tiny] [--items 100] [--shots 4] [--batch-size 8] [--support 64]
 *   [--beams 3] [--demo-mode per-query|per-batch]`
 *
 * Times the VQA evaluation path (`runTrial`: random demonstrations, prompt building, left padding,
 * media cache, 3-beam search with at most 5 new tokens, post-processing) on synthetic data with a
 * random-weight model from bench/configs/configs.json (a copy of ../shared/bench/configs.json). Text goes through a word-level stand-in codec
 * (hashed word ids, the config's <image> / <|endofchunk|> ids for the markers), so no trained
 * tokenizer is needed. Prints {items, shots, seconds, items_per_s, ...}.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Rng } from '../src/engine/rng.ts';
import { backend } from '../src/engine/backend.ts';
import { makeImage, type RgbImage } from '../src/data/image.ts';
import { Flamingo } from '../src/model/flamingo.ts';
import { type FlamingoConfig, validateFlamingoConfig } from '../src/model/config.ts';
import { MediaEncoder } from '../src/eval/media.ts';
import { type TextCodec, runTrial } from '../src/eval/tasks.ts';
import { EOC_TOKEN, IMAGE_TOKEN } from '../src/eval/prompts.ts';
import type { VqaItem } from '../src/eval/datasets/types.ts';

const CONFIGS = fileURLToPath(new URL('./configs/configs.json', import.meta.url));

/**
 * Word-level stand-in for a BPE tokenizer (similar token counts): each word or punctuation run, with
 * its leading space, hashes to an id in [3, V-3); the markers map to the model's special ids.
 */
export function wordCodec(cfg: FlamingoConfig): TextCodec {
  const V = cfg.lm.vocab_size;
  const { media_token_id: img, eoc_token_id: eoc } = cfg.flamingo;
  const span = V - 6;
  const hash = (w: string) => {
    let h = 2166136261;
    for (let i = 0; i < w.length; i++) h = Math.imul(h ^ w.charCodeAt(i), 16777619);
    return 3 + ((h >>> 0) % span);
  };
  return {
    encode(text) {
      const ids: number[] = [];
      for (const part of text.split(/(<image>|<\|endofchunk\|>)/)) {
        if (part === IMAGE_TOKEN) ids.push(img);
        else if (part === EOC_TOKEN) ids.push(eoc);
        else for (const w of part.match(/ ?\w+| ?[^\w\s]+|\s+/g) ?? []) ids.push(hash(w));
      }
      return ids;
    },
    decode: (ids) => ids.filter((t) => t !== img && t !== eoc && t >= 3).map((t) => ` w${t}`).join(''),
  };
}

function randomImage(rng: Rng, size: number): RgbImage {
  const im = makeImage(size, size);
  for (let i = 0; i < im.data.length; i++) im.data[i] = rng.int(256);
  return im;
}

const WORDS = ['what', 'color', 'is', 'the', 'how', 'many', 'are', 'there', 'on', 'table', 'dog', 'cat', 'red', 'blue', 'left', 'of'];
const ANSWERS = ['red', 'blue', '2', 'yes', 'no', 'dog'];

/** Synthetic VQA items: random images (one per item), 4–7 word questions, short answers. */
export function syntheticVqa(n: number, size: number, rng: Rng, prefix: string): VqaItem[] {
  return Array.from({ length: n }, (_, i) => {
    const img = randomImage(rng, size);
    const words = Array.from({ length: 4 + rng.int(4) }, () => WORDS[rng.int(WORDS.length)]!);
    return {
      kind: 'vqa', id: i, media: { key: `${prefix}${i}`, files: [], load: () => [img] },
      question: `${words.join(' ')}?`, answers: [ANSWERS[rng.int(ANSWERS.length)]!],
    };
  });
}

export async function run(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args, strict: true,
    options: {
      json: { type: 'boolean' }, config: { type: 'string' }, items: { type: 'string' }, shots: { type: 'string' },
      'batch-size': { type: 'string' }, support: { type: 'string' }, beams: { type: 'string' }, 'demo-mode': { type: 'string' },
    },
  });
  const name = values.config ?? 'tiny';
  const all = JSON.parse(readFileSync(CONFIGS, 'utf8')) as { configs: Record<string, FlamingoConfig> };
  const raw = all.configs[name];
  if (!raw) throw new Error(`bench eval: unknown config '${name}' (available: ${Object.keys(all.configs).join(', ')})`);
  const cfg = validateFlamingoConfig({ vision: raw.vision, resampler: raw.resampler, xattn: raw.xattn, lm: raw.lm, flamingo: raw.flamingo });
  const items = Number(values.items ?? 100);
  const shots = Number(values.shots ?? 4);
  const batchSize = Number(values['batch-size'] ?? 8);
  const numBeams = Number(values.beams ?? 3);
  const demoMode = values['demo-mode'] === 'per-batch' ? 'per-batch' : 'per-query';
  const model = new Flamingo(cfg, 0);
  model.setTrainingMode('none');
  const rng = new Rng(1);
  const S = cfg.vision.image_size;
  const support = syntheticVqa(Number(values.support ?? 64), S, rng, 's');
  const queries = syntheticVqa(items, S, rng, 'q');
  const media = new MediaEncoder(model);
  const out = runTrial({ model, codec: wordCodec(cfg), media }, 'vqa', support, queries, {
    shots, seed: 0, selection: 'random', batchSize, demoMode, generation: { numBeams, maxNewTokens: 5, lengthPenalty: 0 },
  });
  const result = {
    bench: 'eval', config: name, task: 'vqa', items, shots, batch_size: batchSize, demo_mode: demoMode, num_beams: numBeams, max_new_tokens: 5,
    seconds: Number(out.seconds.toFixed(3)), items_per_s: Number(out.itemsPerS.toFixed(3)),
    media_encoded: media.stats.encoded, media_cache_hits: media.stats.hits, support: support.length,
    prefill_s: Number(out.timing.prefillS.toFixed(3)), decode_s: Number(out.timing.decodeS.toFixed(3)),
    kernels: backend().name,
  };
  process.stdout.write(values.json ? `${JSON.stringify(result)}\n` : `${Object.entries(result).map(([k, v]) => `${k.padEnd(16)} ${v}`).join('\n')}\n`);
}
