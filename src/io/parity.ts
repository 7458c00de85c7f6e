/**
 * Parity cases (format: shared/fixtures/parity/README.md): a directory with case.json,
 * weights.safetensors, inputs.safetensors and expected.safetensors. `runParityCase` rebuilds the
 * component from the case's config, loads the weights by their OpenFlamingo names, runs it and
 * compares every output: floats within atol + rtol·|want|, integers exactly.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Tensor } from '../engine/tensor.ts';
import { noGrad, reshape } from '../engine/index.ts';
import { Rng } from '../engine/rng.ts';
import { readSafetensors } from './safetensors-read.ts';
import { type SafetensorsFile } from './safetensors.ts';
import { canonicalize, type WeightEntry } from './checkpoint.ts';
import { VisionTransformer } from '../model/vit.ts';
import { PerceiverResampler } from '../model/resampler.ts';
import { GatedCrossAttentionBlock, textTime } from '../model/gated-xattn.ts';
import { Flamingo, positionIds } from '../model/flamingo.ts';
import { generate } from '../model/generate.ts';
import { validateResampler, validateVision, validateXAttn, validateFlamingoConfig, type FlamingoTokensConfig } from '../model/config.ts';
import { loadRelease } from './release.ts';
import type { Module } from '../nn/module.ts';
import { FlamingoError } from '../errors.ts';
import type { WeightDType } from '../engine/quant.ts';
import { quantizeFrozen } from '../nn/quantize.ts';

export class ParityCaseError extends FlamingoError {
  constructor(dir: string, message: string) {
    super(`${dir}: ${message}`);
  }
}

export interface OutputResult {
  name: string;
  maxAbsError: number;
  pass: boolean;
  /** For integer outputs: number of mismatching elements. */
  mismatches?: number;
  /** Low-precision runs: cosine similarity with the expected float output over the compared elements. */
  cosine?: number;
}

/**
 * A run in bf16 / int8: the accuracy of the primary output (logits, step logits, or a component's
 * output) against the fp32 expectation. These replace the fp32 tolerance as the verdict:
 * pass iff logitsCosine ≥ LOW_PRECISION_COSINE[dtype].
 */
export interface LowPrecisionResult {
  dtype: WeightDType;
  /** Cosine of the primary output with the expected fp32 values over the compared positions. */
  logitsCosine: number;
  /** Share of compared positions whose argmax agrees (logits cases; null for component cases). */
  top1Agreement: number | null;
  /** Positions compared (rows of the primary output). */
  positions: number;
}

/** Cosine a low-precision run must reach (issue targets: bf16 rounds weights to 8 bits of mantissa, int8 to 7 bits a block). */
export const LOW_PRECISION_COSINE: Record<Exclude<WeightDType, 'fp32'>, number> = { bf16: 0.9999, int8: 0.995 };

export interface ParityOptions {
  /** Storage of the frozen linear weights for this run (default fp32: the tolerance verdict). */
  dtype?: WeightDType;
}

export interface CaseResult {
  case: string;
  dir: string;
  kind: string;
  pass: boolean;
  maxAbsError: number;
  outputs: OutputResult[];
  error?: string;
  /** Set for bf16 / int8 runs. */
  lowPrecision?: LowPrecisionResult;
}

/** case.json `kind` values this module runs. */
export const PARITY_KINDS = ['vit', 'resampler', 'xattn', 'flamingo_logits', 'flamingo_generate'] as const;

interface CaseJson {
  kind: string;
  config: Record<string, Record<string, unknown>>;
  tolerance?: { rtol?: number; atol?: number };
  comparison?: string;
  /** Real-layout cases (parity-real): the three sources, inputs and expected outputs. */
  files?: {
    open_clip: { weights: string; config?: string | null };
    lm: { config: string; weights: string[]; index?: string | null };
    openflamingo_checkpoint: string;
    inputs?: string;
    expected?: string;
  };
}

/** The model settings of a case's config: the fixture format adds `generation` and `flamingo.tokenizer_len`. */
function modelConfig(config: CaseJson['config']): unknown {
  const { generation: _g, ...model } = config as Record<string, unknown>;
  const { tokenizer_len: _t, ...flamingo } = (model.flamingo ?? {}) as Record<string, unknown>;
  return { ...model, flamingo };
}

/** A whole-model case's Flamingo: from weights.safetensors, or from the three real-layout sources. */
function flamingoForCase(dir: string, c: CaseJson, dtype: WeightDType): Flamingo {
  if (!c.files) {
    const model = new Flamingo(validateFlamingoConfig(modelConfig(c.config)));
    load(model, loadState(readSafetensors(join(dir, 'weights.safetensors'))), dtype);
    return model;
  }
  const f = c.files;
  const lmConfig = join(dir, f.lm.config);
  return loadRelease({
    openClip: join(dir, f.open_clip.weights),
    openClipConfig: f.open_clip.config ? join(dir, f.open_clip.config) : null,
    lmDir: dirname(lmConfig),
    lmWeights: f.lm.weights.map((w) => join(dir, w)),
    lmIndex: f.lm.index ? join(dir, f.lm.index) : null,
    checkpoint: join(dir, f.openflamingo_checkpoint),
  }, {
    vision: validateVision(c.config.vision!),
    resampler: validateResampler(c.config.resampler!),
    xattn: validateXAttn(c.config.xattn!),
    flamingo: c.config.flamingo as unknown as FlamingoTokensConfig & { tokenizer_len?: number },
    dtype,
  }).model;
}

/** Case directories under each path (a path that is itself a case counts), sorted. */
export function findCases(paths: string[]): string[] {
  const out: string[] = [];
  const visit = (p: string): void => {
    if (!existsSync(p)) throw new ParityCaseError(p, 'no such file or directory');
    if (!statSync(p).isDirectory()) return;
    if (existsSync(join(p, 'case.json'))) { out.push(p); return; }
    for (const e of readdirSync(p).sort()) {
      const q = join(p, e);
      if (statSync(q).isDirectory()) visit(q);
    }
  };
  for (const p of paths) visit(p);
  return out;
}

function loadState(file: SafetensorsFile): Map<string, WeightEntry> {
  const m = new Map<string, WeightEntry>();
  for (const e of file.entries()) m.set(e.name, { shape: e.shape, data: file.float32(e.name) });
  return m;
}

function f32(file: SafetensorsFile, name: string): Tensor {
  if (!file.has(name)) throw new ParityCaseError(file.path, `missing tensor '${name}'`);
  return new Tensor(file.float32(name), file.shape(name));
}

function i32(file: SafetensorsFile, name: string): Tensor {
  if (!file.has(name)) throw new ParityCaseError(file.path, `missing tensor '${name}'`);
  return new Tensor(file.int32(name), file.shape(name));
}

function compareFloat(name: string, got: Float32Array, want: Float32Array, rtol: number, atol: number, where?: (i: number) => boolean): OutputResult {
  if (got.length !== want.length) return { name, maxAbsError: Infinity, pass: false };
  let maxErr = 0;
  let pass = true;
  for (let i = 0; i < want.length; i++) {
    if (where && !where(i)) continue;
    const e = Math.abs(got[i]! - want[i]!);
    if (!(e <= atol + rtol * Math.abs(want[i]!))) pass = false;
    if (!(e <= maxErr)) maxErr = Number.isNaN(e) ? Infinity : e;
  }
  return { name, maxAbsError: maxErr, pass };
}

function compareInt(name: string, got: Int32Array, want: Int32Array): OutputResult {
  if (got.length !== want.length) return { name, maxAbsError: Infinity, pass: false, mismatches: Math.max(got.length, want.length) };
  let mism = 0;
  let maxErr = 0;
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) { mism++; maxErr = Math.max(maxErr, Math.abs(got[i]! - want[i]!)); }
  }
  return { name, maxAbsError: maxErr, pass: mism === 0, mismatches: mism };
}

function load(model: Module, weights: Map<string, WeightEntry>, dtype: WeightDType, prefix = ''): void {
  model.loadStateDict(canonicalize(weights, prefix), { strict: true });
  if (dtype !== 'fp32') {
    // inference: every part frozen, every linear weight packed
    model.setTrainable(false);
    quantizeFrozen(model, dtype);
  }
}

/**
 * Cosine of got vs want over the rows (of `cols` values) where `row(i)` holds, and the share of
 * those rows whose argmax agrees.
 */
export function lowPrecisionStats(got: Float32Array, want: Float32Array, cols: number, row: (r: number) => boolean = () => true): { cosine: number; top1: number; rows: number } {
  let dot = 0;
  let ng = 0;
  let nw = 0;
  let rows = 0;
  let agree = 0;
  const R = Math.floor(want.length / cols);
  for (let r = 0; r < R; r++) {
    if (!row(r)) continue;
    rows++;
    let ag = 0;
    let aw = 0;
    for (let j = 0; j < cols; j++) {
      const a = got[r * cols + j]!;
      const b = want[r * cols + j]!;
      dot += a * b;
      ng += a * a;
      nw += b * b;
      if (a > got[r * cols + ag]!) ag = j;
      if (b > want[r * cols + aw]!) aw = j;
    }
    if (ag === aw) agree++;
  }
  const cosine = ng === 0 && nw === 0 ? 1 : dot / Math.sqrt(ng * nw);
  return { cosine: Number.isFinite(cosine) ? cosine : 0, top1: rows ? agree / rows : 0, rows };
}

function expectShape(dir: string, t: Tensor, name: string, shape: readonly number[]): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new ParityCaseError(dir, `output '${name}' has shape [${t.shape}] but expected [${shape}]`);
  }
}

/** Run one case directory. Never throws for a failing comparison; throws only for unreadable cases. */
export function runParityCase(dir: string, opts: ParityOptions = {}): CaseResult {
  const name = dir.split('/').filter(Boolean).pop() ?? dir;
  const dtype = opts.dtype ?? 'fp32';
  let low: LowPrecisionResult | undefined;
  /** Records the primary output's accuracy in a low-precision run. */
  const primary = (got: Float32Array, want: Float32Array, cols: number, logits: boolean, row?: (r: number) => boolean): void => {
    if (dtype === 'fp32') return;
    const st = lowPrecisionStats(got, want, cols, row);
    low = { dtype, logitsCosine: st.cosine, top1Agreement: logits ? st.top1 : null, positions: st.rows };
  };
  let kind = 'unknown';
  try {
    const c = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as CaseJson;
    kind = c.kind;
    const rtol = c.tolerance?.rtol ?? 1e-4;
    const atol = c.tolerance?.atol ?? 1e-4;
    const component = c.kind === 'vit' || c.kind === 'resampler' || c.kind === 'xattn';
    const weights = component ? loadState(readSafetensors(join(dir, 'weights.safetensors'))) : new Map<string, WeightEntry>();
    const inputs = readSafetensors(join(dir, c.files?.inputs ?? 'inputs.safetensors'));
    const expected = readSafetensors(join(dir, c.files?.expected ?? 'expected.safetensors'));
    const outputs: OutputResult[] = [];
    const cmpF = (n: string, got: Tensor, where?: (i: number) => boolean): void => {
      const want = f32(expected, n);
      expectShape(dir, got, n, want.shape);
      outputs.push(compareFloat(n, got.f32, want.f32, rtol, atol, where));
    };
    const cmpI = (n: string, got: Tensor): void => {
      const want = i32(expected, n);
      expectShape(dir, got, n, want.shape);
      outputs.push(compareInt(n, got.i32, want.i32));
    };
    noGrad(() => {
      const rng = new Rng(0);
      switch (c.kind) {
        case 'vit': {
          const m = new VisionTransformer(validateVision(c.config.vision!), rng);
          load(m, weights, dtype);
          const out = m.forward(f32(inputs, 'pixel_values'));
          cmpF('pooled', out.pooled);
          cmpF('tokens', out.tokens);
          primary(out.tokens.f32, f32(expected, 'tokens').f32, out.tokens.dim(-1), false);
          break;
        }
        case 'resampler': {
          const m = new PerceiverResampler(validateResampler(c.config.resampler!), rng);
          load(m, weights, dtype);
          const y = m.forward(f32(inputs, 'x'));
          cmpF('output', y);
          primary(y.f32, f32(expected, 'output').f32, y.dim(-1), false);
          break;
        }
        case 'xattn': {
          const m = new GatedCrossAttentionBlock(validateXAttn(c.config.xattn!), rng);
          load(m, weights, dtype);
          const x = f32(inputs, 'x');
          const media = f32(inputs, 'media');
          const loc = i32(inputs, 'media_locations');
          const [B, L] = loc.shape as [number, number];
          const y = m.forward(x, media, textTime(loc.i32, B, L, false));
          cmpF('y', y);
          primary(y.f32, f32(expected, 'y').f32, y.dim(-1), false);
          if (inputs.has('x_cached')) {
            const xc = f32(inputs, 'x_cached');
            cmpF('y_cached', m.forward(xc, media, textTime(loc.i32, B, L, true, xc.shape[1]!)));
          }
          break;
        }
        case 'flamingo_logits': {
          const model = flamingoForCase(dir, c, dtype);
          const visionX = f32(inputs, 'vision_x');
          const ids = i32(inputs, 'input_ids');
          const mask = i32(inputs, 'attention_mask');
          const [B, T, F, C, H, W] = visionX.shape as number[] as [number, number, number, number, number, number];
          const media = model.encodeVision(visionX);
          const logits = model.forward({ inputIds: ids, attentionMask: mask, media });
          const V = logits.shape[2]!;
          cmpF('logits', logits, (i) => mask.i32[Math.floor(i / V)] === 1);
          primary(logits.f32, f32(expected, 'logits').f32, V, true, (r) => mask.i32[r] === 1);
          if (expected.has('vision_tokens')) {
            const tok = model.encodeImages(reshape(visionX, [B * T * F, C, H, W]));
            cmpF('vision_tokens', reshape(tok, [B, T, F, tok.shape[1]!, tok.shape[2]!]));
          }
          if (expected.has('media')) cmpF('media', media);
          if (expected.has('position_ids')) cmpI('position_ids', positionIdsTensor(mask));
          break;
        }
        case 'flamingo_generate': {
          const model = flamingoForCase(dir, c, dtype);
          const gen = c.config.generation as { max_new_tokens: number; strategy?: string; stop_at_eoc?: boolean; num_beams?: number };
          if (gen.strategy !== undefined && gen.strategy !== 'greedy') throw new ParityCaseError(dir, `generation strategy '${gen.strategy}' is not a parity strategy`);
          const visionX = f32(inputs, 'vision_x');
          const media = model.encodeVision(visionX);
          const out = generate(model, { inputIds: i32(inputs, 'input_ids'), attentionMask: i32(inputs, 'attention_mask'), media }, {
            maxNewTokens: gen.max_new_tokens, strategy: 'greedy', stopAtEoc: gen.stop_at_eoc ?? false, returnStepLogits: true,
          });
          cmpI('generated_ids', out.generatedIds);
          if (expected.has('sequences')) cmpI('sequences', out.sequences);
          if (expected.has('step_logits') && out.stepLogits) {
            // With stop_at_eoc a row that produced eoc continues with pad: its later logits are not
            // compared (case comparison text: step_logits only for rows still generating).
            const wantIds = i32(expected, 'generated_ids');
            const [B, S] = wantIds.shape as [number, number];
            const V = out.stepLogits.shape[2]!;
            const n = out.stepLogits.shape[1]!;
            const eoc = (c.config.flamingo as { eoc_token_id: number }).eoc_token_id;
            const live = new Uint8Array(B * n).fill(1);
            if (gen.stop_at_eoc) {
              for (let b = 0; b < B; b++) {
                let stopped = false;
                for (let k = 0; k < n; k++) {
                  live[b * n + k] = stopped ? 0 : 1;
                  if (k < S && wantIds.i32[b * S + k] === eoc) stopped = true;
                }
              }
            }
            cmpF('step_logits', out.stepLogits, (i) => live[Math.floor(i / V)] === 1);
            if (dtype !== 'fp32') {
              // step logits are comparable while the generated prefix equals the expected one
              const want = f32(expected, 'step_logits');
              const wantIds = i32(expected, 'generated_ids').i32;
              const gotIds = out.generatedIds.i32;
              const [Bs, S, V] = want.shape as [number, number, number];
              const sameUpTo = new Int32Array(Bs);
              for (let b = 0; b < Bs; b++) {
                let s = 0;
                while (s < S && gotIds[b * S + s] === wantIds[b * S + s]) s++;
                sameUpTo[b] = s; // step s (the first divergent one) still saw the same prefix
              }
              primary(out.stepLogits.f32, want.f32, V, true, (r) => r % S <= sameUpTo[Math.floor(r / S)]!);
            }
          }
          if (expected.has('media')) cmpF('media', media);
          break;
        }
        default:
          throw new ParityCaseError(dir, `unknown case kind '${c.kind}'`);
      }
    });
    const maxAbsError = Math.max(0, ...outputs.map((o) => o.maxAbsError));
    if (dtype !== 'fp32') {
      const lp = low as LowPrecisionResult | undefined;
      if (!lp) return { case: name, dir, kind, pass: false, maxAbsError, outputs, error: `no float output to compare in ${dtype}` };
      const pass = lp.logitsCosine >= LOW_PRECISION_COSINE[dtype];
      return { case: name, dir, kind, pass, maxAbsError, outputs, lowPrecision: lp };
    }
    const pass = outputs.length > 0 && outputs.every((o) => o.pass);
    return { case: name, dir, kind, pass, maxAbsError, outputs };
  } catch (e) {
    return { case: name, dir, kind, pass: false, maxAbsError: Infinity, outputs: [], error: e instanceof Error ? e.message : String(e) };
  }
}

/** cumsum(mask) − 1 clamped at 0, as an int32 tensor of the mask's shape. */
export function positionIdsTensor(mask: Tensor): Tensor {
  const [B, L] = mask.shape as [number, number];
  return new Tensor(positionIds(mask.data, B, L), [B, L]);
}
