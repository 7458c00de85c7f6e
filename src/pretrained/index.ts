/**
 * One way to load a model: `loadPretrained(location, options?)` → model (inference mode), tokenizer,
 * processor and meta.json. Every command, the built-in suite, the demo and the tools load through it.
 *
 * Layer: above data/ (it needs io/ for weights and data/ for the tokenizer and processor) and below
 * train/, eval/ and cli/, which use it (see docs/ARCHITECTURE.md, checked by test/layering.test.ts).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { storedDType } from '../nn/quantize.ts';
import { FlamingoProcessor } from '../data/processor.ts';
import { UsageError } from '../errors.ts';
import { SOURCES } from './sources.ts';
import { PretrainedError, type LoadPretrainedOptions, type ModelMeta, type Pretrained, type PretrainedLocation } from './types.ts';

export { BUNDLED_MODEL_DIR, BUNDLED_MODEL_HINT } from './bundled.ts';
export { SOURCES } from './sources.ts';
export { MODEL_DIR_FILES } from './model-dir.ts';
export { PretrainedError, type LoadPretrainedOptions, type LoadedWeights, type ModelMeta, type Pretrained, type PretrainedLocation, type PretrainedSource, type ReleaseLocation } from './types.ts';

/** Read and check meta.json (the seen / held-out Fashion-MNIST class split); null when the directory has none. */
export function readModelMeta(dir: string): ModelMeta | null {
  const file = join(dir, 'meta.json');
  if (!existsSync(file)) return null;
  let meta: unknown;
  try {
    meta = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new PretrainedError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const classes = (xs: unknown): xs is number[] => Array.isArray(xs) && xs.every((x) => Number.isInteger(x) && x >= 0 && x < 10);
  if (typeof meta !== 'object' || meta === null || !classes((meta as ModelMeta).seen_classes) || !classes((meta as ModelMeta).heldout_classes)) {
    throw new PretrainedError(`${file}: seen_classes and heldout_classes must be lists of Fashion-MNIST class indices 0..9`);
  }
  return meta as ModelMeta;
}

/** The location must exist; a relative path that does not is reported with what it resolved to. */
function checkLocation(location: string, hint: string | undefined): void {
  const resolved = resolve(location);
  const where = resolved === location ? location : `${location} (resolved to ${resolved})`;
  if (!existsSync(location)) throw new PretrainedError(`model directory ${where} does not exist`, { hint });
  if (!statSync(location).isDirectory()) throw new PretrainedError(`model path ${where} is not a directory`, { hint });
}

/**
 * Load a pretrained Flamingo from `location` for inference: a directory (a model directory, or a
 * release in `flamingo export`'s layout) or a release's three files `{ openClip, lm, checkpoint }`.
 * The source is the one named by `options.source`, else the first of SOURCES that accepts the location. The tokenizer must fit the
 * model: its <image> and <|endofchunk|> ids are the config's, and its vocabulary fits the embedding.
 */
export function loadPretrained(location: PretrainedLocation, options: LoadPretrainedOptions = {}): Pretrained {
  if (typeof location === 'string') checkLocation(location, options.hint);
  else if (typeof location !== 'object' || location === null) throw new UsageError('loadPretrained: the location is a directory path or { openClip, lm, checkpoint }');
  const where = typeof location === 'string' ? `model directory ${location}` : `release files ${JSON.stringify(location)}`;
  let source;
  if (options.source !== undefined) {
    source = SOURCES.find((s) => s.name === options.source);
    if (!source) throw new UsageError(`unknown model source '${options.source}' (available: ${SOURCES.map((s) => s.name).join(', ')})`);
    const why = source.check(location);
    if (why !== null) throw new PretrainedError(`${where} ${why} (expected ${source.describe})`, { hint: options.hint });
  } else {
    const reasons = SOURCES.map((s) => ({ s, why: s.check(location) }));
    source = reasons.find((r) => r.why === null)?.s;
    if (!source) {
      const detail = reasons.length === 1 ? `${reasons[0]!.why} (expected ${reasons[0]!.s.describe})` : `is not a model: ${reasons.map((r) => `as ${r.s.describe}, ${r.why}`).join('; ')}`;
      throw new PretrainedError(`${where} ${detail}`, { hint: options.hint });
    }
  }
  const { model, tokenizer } = source.load(location, options);
  const cfg = model.config;
  const pairs: [string, number, number][] = [
    ['<image>', tokenizer.imageTokenId, cfg.flamingo.media_token_id],
    ['<|endofchunk|>', tokenizer.eocTokenId, cfg.flamingo.eoc_token_id],
  ];
  for (const [name, t, m] of pairs) {
    if (t !== m) throw new PretrainedError(`${where}: the tokenizer's ${name} has id ${t} but the model config says ${m}`);
  }
  if (tokenizer.vocabSize > cfg.lm.vocab_size) {
    throw new PretrainedError(`${where}: the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary is ${cfg.lm.vocab_size}`);
  }
  model.setTrainingMode('none');
  const processor = new FlamingoProcessor(tokenizer, { imageSize: cfg.vision.image_size, maxLength: cfg.lm.max_position_embeddings, preprocess: cfg.preprocess });
  options.log?.(`${where} (${source.name}, ${(model.numParameters() / 1e6).toFixed(2)}M parameters, weights ${storedDType(model)})`);
  return { model, tokenizer, processor, location, source: source.name, meta: typeof location === 'string' ? readModelMeta(location) : null };
}
