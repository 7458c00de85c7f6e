/**
 * Image preprocessing fixtures (test/fixtures/shared/preprocess, kind "image_preprocess"): the
 * case's image file is decoded and run through open_clip's evaluation transform as the released
 * models use it (OPEN_CLIP_EVAL_PREPROCESS). A case passes when the decoded RGB pixels are within
 * `tolerance.decoded_rgb` and the tensor is within `tolerance.pixel_values_from_file` of at least one
 * of the case's `targets` (both max and mean absolute difference).
 */
import { FlamingoError } from '../../errors.ts';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { readSafetensors } from '../../io/safetensors-read.ts';
import { type SafetensorsFile } from '../../io/safetensors.ts';
import { decodeImage } from '../../data/image.ts';
import { preprocessToRgb, toCHWFloat } from '../../data/image-tensor.ts';
import { OPEN_CLIP_EVAL_PREPROCESS, type PreprocessConfig } from '../../model/preprocess-config.ts';
import type { VerifyKind, VerifyOutput, VerifyResult } from './types.ts';

interface Tol { max_abs: number; mean_abs: number }

function tolerance(c: Record<string, unknown>, key: string): Tol {
  const t = (c.tolerance as Record<string, unknown> | undefined)?.[key] as Partial<Tol> | undefined;
  if (!t || typeof t.max_abs !== 'number' || typeof t.mean_abs !== 'number') throw new FlamingoError(`case.json: tolerance.${key} needs max_abs and mean_abs`);
  return t as Tol;
}

function diff(got: ArrayLike<number>, want: ArrayLike<number>): { max: number; mean: number } {
  if (got.length !== want.length) return { max: Infinity, mean: Infinity };
  let max = 0;
  let sum = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    if (!(d <= max)) max = Number.isNaN(d) ? Infinity : d;
    sum += d;
  }
  return { max, mean: want.length ? sum / want.length : 0 };
}

function output(name: string, d: { max: number; mean: number }, tol: Tol): VerifyOutput {
  const pass = d.max <= tol.max_abs && d.mean <= tol.mean_abs;
  return { name, pass, maxAbsError: d.max, detail: `mean_abs=${d.mean.toExponential(3)} (tolerance max ${tol.max_abs}, mean ${tol.mean_abs})` };
}

/** The expected tensor of a target; `pixel_values_rgb_first` is derived from `rgb_first_crop` when not stored. */
function expectedTarget(st: SafetensorsFile, name: string, cfg: PreprocessConfig): Float32Array {
  if (st.has(name)) return st.float32(name);
  if (name === 'pixel_values_rgb_first' && st.has('rgb_first_crop')) {
    const crop = st.bytes('rgb_first_crop');
    const hw = crop.length / 3;
    const out = new Float32Array(crop.length);
    // open_clip computes this in float32: ((x / 255) - mean) / std.
    for (let c = 0; c < 3; c++) {
      const m = Math.fround(cfg.mean[c]!);
      const s = Math.fround(cfg.std[c]!);
      for (let i = 0; i < hw; i++) out[c * hw + i] = Math.fround(Math.fround(Math.fround(crop[3 * i + c]! / 255) - m) / s);
    }
    return out;
  }
  throw new FlamingoError(`expected.safetensors has no tensor for target '${name}'`);
}

/** The transform constants: the fixture's manifest.json (next to the case) when present, else open_clip's. */
function configFor(dir: string): { size: number; cfg: PreprocessConfig } {
  const manifest = join(dirname(dir), 'manifest.json');
  const cfg: PreprocessConfig = { ...OPEN_CLIP_EVAL_PREPROCESS, mean: [...OPEN_CLIP_EVAL_PREPROCESS.mean], std: [...OPEN_CLIP_EVAL_PREPROCESS.std] };
  let size = 224;
  if (existsSync(manifest)) {
    const m = JSON.parse(readFileSync(manifest, 'utf8')) as { size?: number; mean?: number[]; std?: number[] };
    if (typeof m.size === 'number') size = m.size;
    if (Array.isArray(m.mean) && m.mean.length === 3) cfg.mean = m.mean as [number, number, number];
    if (Array.isArray(m.std) && m.std.length === 3) cfg.std = m.std as [number, number, number];
  }
  return { size, cfg };
}

export function runPreprocessCase(dir: string, c: Record<string, unknown>): VerifyResult {
  const name = typeof c.name === 'string' ? c.name : basename(dir);
  const input = typeof c.input === 'string' ? c.input : null;
  if (!input) throw new FlamingoError('case.json: missing "input"');
  const st = readSafetensors(join(dir, 'expected.safetensors'));
  const { size, cfg } = configFor(dir);
  const img = decodeImage(readFileSync(join(dir, input)), { name: join(dir, input), alpha: 'drop' });
  const decoded = output('decoded_rgb', diff(img.data, st.bytes('decoded_rgb')), tolerance(c, 'decoded_rgb'));
  const tensor = toCHWFloat(preprocessToRgb(img, size, cfg), { mean: cfg.mean, std: cfg.std });
  const targets = Array.isArray(c.targets) && c.targets.length > 0 ? (c.targets as string[]) : ['pixel_values'];
  const tol = tolerance(c, 'pixel_values_from_file');
  const perTarget = targets.map((t) => output(t, diff(tensor, expectedTarget(st, t, cfg)), tol));
  const pass = decoded.pass && perTarget.some((o) => o.pass);
  const best = perTarget.reduce((a, b) => ((b.maxAbsError ?? Infinity) < (a.maxAbsError ?? Infinity) ? b : a));
  return { case: name, dir, kind: String(c.kind), pass, maxAbsError: best.maxAbsError, outputs: [decoded, ...perTarget] };
}

export const preprocessKind: VerifyKind = {
  name: 'image_preprocess',
  caseKinds: ['image_preprocess'],
  run(dir, caseJson) {
    return Promise.resolve([runPreprocessCase(dir, caseJson ?? {})]);
  },
};
