/**
 * The three training stages (paper §3 / §A.2):
 *   (a) trainContrastive — CLIP-style pretraining of the ViT with a small text tower;
 *   (b) trainLM          — next-token pretraining of the LLaMA-style LM on text;
 *   (c) trainFlamingo    — perceiver + gated cross-attention (+ input embeddings) on a weighted mixture of
 *                          multimodal datasets, with (a) and (b) loaded and frozen.
 * Each stage writes DIR/<stage>/ (checkpoints, metrics.jsonl, loss.svg) and its product
 * (vision.safetensors, lm.safetensors, or the Flamingo weights). Datasets come from the config, or from
 * `opts.sources` by dataset name (any DocSource: this is how code plugs in its own data).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Tensor } from '../engine/tensor.ts';
import { add, backward, crossEntropy, indexSelect, reshape, scale, sub } from '../engine/index.ts';
import { Rng } from '../engine/rng.ts';
import { readSafetensors } from '../io/safetensors-read.ts';
import { writeSafetensors } from '../io/safetensors-write.ts';
import { canonicalize, readWeights, type WeightEntry } from '../io/checkpoint.ts';
import type { Module } from '../nn/module.ts';
import { Flamingo } from '../model/flamingo.ts';
import { createLanguageModel, type DecoderLM } from '../model/lm/index.ts';
import { preprocessClip, preprocessImage } from '../data/image-tensor.ts';
import { FlamingoProcessor } from '../data/processor.ts';
import type { BpeTokenizer } from '../data/tokenizer.ts';
import { buildSample, collateSamples, docPlainPieces, docPlainText, docToText, encodePieces, makeLabels, sourceFromSpec, type DocSource, type RawDoc } from '../data/datasets/index.ts';
import { clipLoss } from './clip.ts';
import { ClipModel } from '../model/clip.ts';
import { configHash, flamingoConfig, lmConfig, textEncoderConfig, type DatasetConfig, type StageConfig, type StageName, type TrainConfig } from './config.ts';
import { similarityLoss, similarityTarget } from './similarity.ts';
import { runLoop, TrainingError, type LoopDataset, type LoopResult, type MicroStep } from './loop.ts';

export interface StageOptions {
  /** Run directory; the stage works in DIR/<stage>. */
  outDir: string;
  tokenizer: BpeTokenizer;
  resume?: boolean;
  progress?: boolean;
  /** Sources by dataset name, replacing the config's `source` (required for `{"type": "custom"}`). */
  sources?: Record<string, DocSource>;
  /** Resolves relative dataset paths (the config file's folder). */
  baseDir?: string;
  /** Stop once this many steps of the stage are done (checkpoint first), as if killed. For tests. */
  stopAfter?: number;
  /** Status lines (resume decisions); default stderr. */
  log?: (line: string) => void;
}

export type Weights = Map<string, { shape: readonly number[]; data: Float32Array }>;

export interface StageResult<M> {
  model: M;
  loop: LoopResult;
  /** True when the stage ran (or had already run) to its last step. */
  complete: boolean;
}

function datasetsOf(name: StageName, cfg: StageConfig, opts: StageOptions): (LoopDataset & { cfg: DatasetConfig })[] {
  return cfg.datasets.map((d) => {
    const given = opts.sources?.[d.name];
    if (!given && (d.source as { type: string }).type === 'custom') {
      throw new TrainingError(name, `dataset ${d.name} has source type "custom" but no source was passed for it`);
    }
    const source = given ?? sourceFromSpec(d.name, d.source, opts.baseDir, { tokenizer: opts.tokenizer });
    return { name: d.name, source, batchSize: d.batch_size, weight: d.weight, cfg: d };
  });
}

export function weightsOf(m: Module): Weights {
  return new Map(m.namedParameters().map(([n, t]) => [n, { shape: t.shape, data: t.f32 }]));
}

/** Write a component file (float32, the module's own names) as the stages do. */
export function saveWeights(file: string, w: Weights, meta: Record<string, string>): void {
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const [n, t] of w) tensors[n] = { dtype: 'F32', shape: [...t.shape], data: t.data };
  writeSafetensors(file, tensors, meta);
}

/** Read a component file written by a stage (vision.safetensors, lm.safetensors). */
export function loadWeights(file: string): Weights {
  const f = readSafetensors(file);
  return new Map(f.entries().map((e) => [e.name, { shape: e.shape, data: f.float32(e.name) }]));
}

function rightPad(rows: number[][], pad: number): { ids: Int32Array; mask: Uint8Array; L: number } {
  const L = Math.max(...rows.map((r) => r.length));
  const ids = new Int32Array(rows.length * L).fill(pad);
  const mask = new Uint8Array(rows.length * L);
  rows.forEach((r, b) => {
    ids.set(r, b * L);
    mask.fill(1, b * L, b * L + r.length);
  });
  return { ids, mask, L };
}

function run(name: StageName, cfg: TrainConfig, opts: StageOptions, model: Module, microStep: MicroStep, afterUpdate?: () => void): LoopResult {
  const s = cfg.stages[name];
  return runLoop({
    stage: name,
    dir: join(opts.outDir, name),
    model,
    datasets: datasetsOf(name, s, opts),
    microStep,
    afterUpdate,
    steps: s.steps,
    optim: s.optim,
    mixture: s.mixture,
    seed: cfg.seed,
    configHash: configHash(cfg, name),
    checkpointEvery: s.checkpoint_every,
    keepCheckpoints: s.keep_checkpoints,
    resume: opts.resume ?? false,
    progress: opts.progress,
    logEvery: s.log_every,
    stopAfter: opts.stopAfter,
    log: opts.log,
  });
}

function cfgOf(cfg: StageConfig, name: string): DatasetConfig {
  return cfg.datasets.find((d) => d.name === name)!;
}

// ------------------------------------------------------------------------------------------------ (a)

/** Stage (a): CLIP pretraining. Product: DIR/contrastive/vision.safetensors (ViT names, no prefix). */
export function trainContrastive(cfg: TrainConfig, opts: StageOptions): StageResult<ClipModel> {
  const tok = opts.tokenizer;
  const stage = cfg.stages.contrastive;
  const text = textEncoderConfig(cfg, tok);
  const model = new ClipModel(cfg.model.vision, text, new Rng(cfg.seed).fork('init').fork('contrastive'));
  const S = cfg.model.vision.image_size;
  const eos = tok.eosTokenId;
  const micro: MicroStep = (ds, docs) => {
    const d = cfgOf(stage, ds.name);
    const maxText = Math.min(d.max_tokens, text.context_length);
    const B = docs.length;
    const pixels = new Float32Array(B * 3 * S * S);
    const rows: number[][] = docs.map((doc, b) => {
      const media = doc.chunks.find((c) => c.kind !== 'text');
      if (!media) throw new TrainingError('contrastive', `document ${doc.key} of ${ds.name} has no image`);
      const img = media.kind === 'image' ? media.image() : media.kind === 'video' ? media.frames[0]!() : null;
      // Training converts to RGB first (OpenFlamingo's training loader), whatever order evaluation uses.
      const pre = cfg.model.preprocess;
      pixels.set(pre ? preprocessImage(img!, S, { ...pre, order: 'rgb_first' }) : preprocessClip(img!, S), b * 3 * S * S);
      // the text tower pools at the end-of-text token, so it is always kept
      return [...tok.encode(docPlainText(doc), { parseSpecial: false }).slice(0, maxText - 1), eos];
    });
    const { ids, L } = rightPad(rows, tok.padTokenId);
    const img = model.encodeImage(new Tensor(pixels, [B, 3, S, S]));
    const txt = model.encodeText(new Tensor(ids, [B, L]), rows.map((r) => r.length));
    const { loss } = clipLoss(img, txt, model.logit_scale);
    if (ds.weight > 0) backward(scale(loss, ds.weight));
    return { loss: loss.item(), tokens: rows.reduce((a, r) => a + r.length, 0), images: B };
  };
  const loop = run('contrastive', cfg, opts, model, micro, () => model.clampLogitScale());
  const complete = loop.step >= stage.steps;
  if (complete) {
    const w = new Map([...weightsOf(model)].filter(([n]) => n.startsWith('visual.')).map(([n, t]) => [n.slice(7), t]));
    saveWeights(join(opts.outDir, 'contrastive', 'vision.safetensors'), w, { stage: 'contrastive', logit_scale: String(model.logit_scale.f32[0]) });
  }
  return { model, loop, complete };
}

// ------------------------------------------------------------------------------------------------ (b)

/** Per-row inputs of vector-key episodes (RawDoc.keyVectors). */
export interface KeyVectors {
  vectors: Float32Array[];
  /** Factor for the tokens after each `<image>` (RawDoc.keySpread). */
  spread: number;
}

/**
 * Next-token CE of a decoder LM on right-padded rows (labels: pad and `<image>` → -100, shifted by one); rows
 * with key vectors get them added to their input embeddings.
 */
export function lmLoss(lm: DecoderLM, rows: number[][], pad: number, keyVectors?: (KeyVectors | undefined)[], imageId = 0, scored?: (Uint8Array | null)[]): Tensor {
  const { ids, mask, L } = rightPad(rows, pad);
  const B = rows.length;
  const pos = new Int32Array(B * L);
  for (let b = 0; b < B; b++) for (let t = 0; t < L; t++) pos[b * L + t] = t;
  const { targets } = makeLabels(ids, mask, B, L, imageId, scored); // a placeholder is never a target
  const ctx = { positions: new Tensor(pos, [B, L]), keyMask: mask, past: 0, cache: null };
  let x = lm.embed(new Tensor(ids, [B, L]));
  if (keyVectors?.some((v) => v)) x = add(x, placeholderEmbeddings(ids, B, L, x.shape[2]!, keyVectors, imageId, pad));
  for (let i = 0; i < lm.numLayers; i++) x = lm.layer(i, x, ctx);
  return crossEntropy(lm.head(x), new Tensor(targets, [B, L]));
}

/**
 * (B, L, H) additive inputs: row b's k-th `<image>` token gets its vector (RawDoc.keyVectors), the tokens after
 * it up to the next `<image>` the vector times `spread`; tokens before the first `<image>` and padding get none.
 */
function placeholderEmbeddings(ids: Int32Array, B: number, L: number, H: number, keyVectors: (KeyVectors | undefined)[], imageId: number, pad: number): Tensor {
  const out = new Float32Array(B * L * H);
  for (let b = 0; b < B; b++) {
    const kv = keyVectors[b];
    if (!kv) continue;
    let k = 0;
    let cur: Float32Array | null = null;
    for (let t = 0; t < L; t++) {
      const id = ids[b * L + t];
      if (id === imageId) {
        cur = kv.vectors[k++] ?? null;
        if (!cur) throw new TrainingError('lm', `row ${b} has more <image> placeholders than key vectors (${kv.vectors.length})`);
        out.set(cur, (b * L + t) * H);
      } else if (cur && kv.spread > 0 && id !== pad) {
        for (let j = 0; j < H; j++) out[(b * L + t) * H + j] = kv.spread * cur[j]!;
      }
    }
  }
  return new Tensor(out, [B, L, H]);
}

/**
 * A document's ids for LM pretraining. Plain text never turns "<image>" into the special token; vector-key
 * episodes mean it, and `markers` writes the document as stage (c) does (docToText strips marker strings from
 * the document's own text, so only its media become markers).
 */
export function lmTokens(tok: BpeTokenizer, doc: RawDoc, markers: boolean): number[] {
  return lmRow(tok, doc, markers).ids;
}

/** lmTokens with the loss targets of documents whose chunks say `scored: false` (null: every token). */
export function lmRow(tok: BpeTokenizer, doc: RawDoc, markers: boolean): { ids: number[]; scored: Uint8Array | null } {
  if (markers) return encodePieces(tok, docToText(tok, doc).pieces, true, doc.key);
  return encodePieces(tok, docPlainPieces(doc), doc.keyVectors !== undefined, doc.key);
}

/** Stage (b): LM pretraining. Product: DIR/lm/lm.safetensors (LlamaForCausalLM names). */
export function trainLM(cfg: TrainConfig, opts: StageOptions): StageResult<DecoderLM> {
  const tok = opts.tokenizer;
  const stage = cfg.stages.lm;
  const lm = createLanguageModel(lmConfig(cfg, tok), new Rng(cfg.seed).fork('init').fork('lm'));
  if (stage.init_weights) {
    const file = resolve(opts.baseDir ?? '.', stage.init_weights);
    if (!existsSync(file)) throw new TrainingError('lm', `init_weights: no such file ${file}`);
    try {
      lm.loadStateDict(loadWeights(file));
    } catch (e) {
      throw new TrainingError('lm', `init_weights ${file} does not fit this LM: ${(e as Error).message}`);
    }
  }
  const maxPos = cfg.model.lm.max_position_embeddings ?? Infinity;
  const micro: MicroStep = (ds, docs) => {
    const d = cfgOf(stage, ds.name);
    const maxLen = Math.min(d.max_tokens, maxPos);
    const H = lm.config.hidden_size;
    const scored: (Uint8Array | null)[] = [];
    const rows = docs.map((doc) => {
      const row = lmRow(tok, doc, d.markers ?? false);
      const ids = row.ids;
      if (d.append_eos) ids.push(tok.eosTokenId);
      const kept = ids.length > 0 ? ids.slice(0, maxLen) : [tok.eosTokenId];
      let s = row.scored;
      if (s) {
        s = Uint8Array.from({ length: kept.length }, (_, t) => (t < s!.length ? s![t]! : 1));
      }
      scored.push(s);
      return kept;
    });
    const keys = docs.map((doc) => (doc.keyVectors ? { vectors: doc.keyVectors(H), spread: doc.keySpread ?? 0 } : undefined));
    const loss = lmLoss(lm, rows, tok.padTokenId, keys, tok.imageTokenId, scored);
    if (ds.weight > 0) backward(scale(loss, ds.weight));
    return { loss: loss.item(), tokens: rows.reduce((a, r) => a + r.length, 0), images: 0 };
  };
  const loop = run('lm', cfg, opts, lm, micro);
  const complete = loop.step >= stage.steps;
  if (complete) saveWeights(join(opts.outDir, 'lm', 'lm.safetensors'), weightsOf(lm), { stage: 'lm' });
  return { model: lm, loop, complete };
}

// ------------------------------------------------------------------------------------------------ (c)

export interface FlamingoStageOptions extends StageOptions {
  /** Weights of stage (a) (ViT names) and (b) (LM names); absent → the Flamingo's own random init. */
  vision?: Weights | null;
  lm?: Weights | null;
}

/** The Flamingo model of a config with pretrained components loaded and the Flamingo training mode set. */
export function buildFlamingo(cfg: TrainConfig, tok: BpeTokenizer, vision?: Weights | null, lm?: Weights | null): Flamingo {
  const model = new Flamingo(flamingoConfig(cfg, tok), new Rng(cfg.seed).fork('init').fork('flamingo').nextU32());
  const lmTraining = cfg.stages.flamingo.lm_training ?? 'frozen';
  if (vision) model.vision_encoder.loadStateDict(vision);
  // 'scratch' (ablation): the LM keeps this model's random initialisation
  if (lm && lmTraining !== 'scratch') model.lang_encoder.lm.loadStateDict(lm);
  model.setTrainingMode('flamingo', cfg.stages.flamingo.train_embeddings, lmTraining !== 'frozen');
  return model;
}

/**
 * Start the trainable parameters of a Flamingo from `file` (stages.flamingo.init_weights). Every trainable
 * parameter must be there with its shape; the file's other tensors (a frozen ViT / LM) are not read, so the
 * frozen parts stay those of this run.
 */
export function initTrainable(model: Flamingo, file: string): void {
  if (!existsSync(file)) throw new TrainingError('flamingo', `init_weights: no such file ${file}`);
  let w: Map<string, WeightEntry>;
  try {
    w = canonicalize(readWeights(file));
  } catch (e) {
    throw new TrainingError('flamingo', `init_weights ${file}: ${(e as Error).message}`);
  }
  const own = model.trainableParameters();
  const missing = own.filter(([n]) => !w.has(n)).map(([n]) => n);
  const bad = own.filter(([n, t]) => { const s = w.get(n)?.shape; return s !== undefined && (s.length !== t.shape.length || s.some((d, i) => d !== t.shape[i])); });
  if (missing.length || bad.length) {
    const parts = [
      ...(missing.length ? [`missing ${missing.length} trainable tensor(s): ${missing.slice(0, 6).join(', ')}${missing.length > 6 ? ', …' : ''}`] : []),
      ...bad.slice(0, 6).map(([n, t]) => `${n} has shape [${w.get(n)!.shape}] instead of [${t.shape}]`),
    ];
    throw new TrainingError('flamingo', `init_weights ${file} does not fit this model: ${parts.join('; ')}`);
  }
  for (const [n, t] of own) t.f32.set(w.get(n)!.data);
}

/**
 * The similarity-preserving term for a batch of single-frame images: the ViT runs once (frozen) for both the
 * visual tokens (passed to forward as `media`) and its pooled embeddings, the target. `tap` collects what the
 * gated blocks write (output minus input: of the first block, or of every block); `loss()` compares their rows
 * at `<image>` positions (the k-th `<image>` of a row ↔ that row's k-th image), averaged over the blocks.
 * Null loss when fewer than 3 images.
 */
function imageSimilarity(
  model: Flamingo, ids: Tensor, visionX: Tensor, layers: 'first' | 'all',
): { media: Tensor; tap: (layer: number, input: Tensor, output: Tensor) => void; loss: () => Tensor | null } {
  const [B, T] = visionX.shape as [number, number];
  const { media, pooled: vitPooled } = model.encodeVisionWithPooled(visionX);
  const L = ids.shape[1]!;
  const rows: number[] = [];
  const images: number[] = [];
  for (let b = 0; b < B; b++) {
    let k = 0;
    for (let t = 0; t < L; t++) {
      if (ids.i32[b * L + t] !== model.config.flamingo.media_token_id) continue;
      if (k < T) { rows.push(b * L + t); images.push(b * T + k); }
      k++;
    }
  }
  const written: Tensor[] = [];
  const first = Math.min(...model.lang_encoder.gated.keys());
  return {
    media,
    tap: (layer, input, output) => {
      if (layers === 'all' || layer === first) written.push(sub(output, input));
    },
    loss: () => {
      if (written.length === 0 || rows.length < 3) return null;
      const D = vitPooled.shape[1]!;
      const pooled = new Float32Array(images.length * D);
      images.forEach((im, i) => pooled.set(vitPooled.f32.subarray(im * D, (im + 1) * D), i * D));
      const target = similarityTarget(pooled, images.length, D);
      const index = new Tensor(Int32Array.from(rows), [rows.length]);
      const terms = written.map((h) => similarityLoss(indexSelect(reshape(h, [B * L, h.shape[2]!]), 0, index), target));
      return scale(terms.reduce((a, b) => add(a, b)), 1 / terms.length);
    },
  };
}

/** Stage (c): Flamingo training on the dataset mixture. Product: the trained model (saved by the caller). */
export function trainFlamingo(cfg: TrainConfig, opts: FlamingoStageOptions): StageResult<Flamingo> {
  const tok = opts.tokenizer;
  const stage = cfg.stages.flamingo;
  const model = buildFlamingo(cfg, tok, opts.vision, opts.lm);
  const say = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  if (stage.lm_training === 'finetune') say('flamingo: the LM learns too (fine-tuned from its pretrained weights)');
  if (stage.lm_training === 'scratch') say('flamingo: the LM learns from a random initialisation (its pretrained weights are not loaded)');
  if (stage.mixture === 'round_robin') say(`flamingo: round-robin mixture (${stage.datasets.length} updates per step, one per dataset)`);
  if (stage.init_weights) initTrainable(model, resolve(opts.baseDir ?? '.', stage.init_weights));
  const processor = new FlamingoProcessor(tok, { imageSize: cfg.model.vision.image_size, padding: 'right' });
  const maxPos = cfg.model.lm.max_position_embeddings ?? Infinity;
  const simWeight = stage.feature_similarity ?? 0;
  const micro: MicroStep = (ds, docs) => {
    const d = cfgOf(stage, ds.name);
    const so = { maxImages: d.max_images, maxTokens: Math.min(d.max_tokens, maxPos), imageSize: cfg.model.vision.image_size, videoFrames: d.video_frames, appendEos: d.append_eos, preprocess: cfg.model.preprocess };
    const batch = collateSamples(processor, docs.map((doc: RawDoc) => buildSample(tok, doc, so)));
    const aux = simWeight > 0 && batch.visionX && batch.visionX.shape[2] === 1 ? imageSimilarity(model, batch.inputIds, batch.visionX, stage.feature_similarity_layers ?? 'first') : null;
    const logits = model.forward({ inputIds: batch.inputIds, attentionMask: batch.attentionMask, ...(aux ? { media: aux.media, onGated: aux.tap } : { visionX: batch.visionX }) });
    let loss = crossEntropy(logits, batch.targets);
    const nll = loss.item();
    const simLoss = aux?.loss();
    if (simLoss) loss = add(loss, scale(simLoss, simWeight));
    if (ds.weight > 0) backward(scale(loss, ds.weight));
    return { loss: nll, tokens: batch.numTokens, images: batch.numImages, ...(simLoss ? { aux: { similarity: simLoss.item() } } : {}) };
  };
  const loop = run('flamingo', cfg, opts, model, micro);
  return { model, loop, complete: loop.step >= stage.steps };
}

