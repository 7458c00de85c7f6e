/**
 * How a model's images are turned into pixels: part of the model config (`preprocess` in
 * config.json) because a model only sees well what it was trained on. The image size is the
 * vision tower's `image_size`.
 */
import { ConfigError } from './config-error.ts';

export interface PreprocessConfig {
  /** Filter of the shorter-side resize. */
  resize: 'bicubic' | 'bilinear';
  /**
   * 'as_opened': resize and crop in the file's own mode, then convert to RGB (OpenFlamingo's
   * evaluation hands open_clip `Image.open(f)` unconverted). 'rgb_first': convert, then resize
   * (OpenFlamingo's training loader and most user code).
   */
  order: 'as_opened' | 'rgb_first';
  /** 'pillow': `convert("RGB")` (alpha dropped); 'white': transparency composited onto white. */
  rgb: 'pillow' | 'white';
  mean: [number, number, number];
  std: [number, number, number];
}

export const OPENAI_CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const OPENAI_CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** What this project's own models were trained with (and the default when a config has no `preprocess`). */
export const LEGACY_PREPROCESS: Readonly<PreprocessConfig> = Object.freeze({
  resize: 'bicubic', order: 'rgb_first', rgb: 'white', mean: OPENAI_CLIP_MEAN, std: OPENAI_CLIP_STD,
});

/** open_clip's validation transform as OpenFlamingo's evaluation applies it (the released models). */
export const OPEN_CLIP_EVAL_PREPROCESS: Readonly<PreprocessConfig> = Object.freeze({
  resize: 'bicubic', order: 'as_opened', rgb: 'pillow', mean: OPENAI_CLIP_MEAN, std: OPENAI_CLIP_STD,
});

const KEYS = ['resize', 'order', 'rgb', 'mean', 'std'];

function oneOf<T extends string>(where: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !allowed.includes(v as T)) {
    throw new ConfigError(`${where} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

function triple(where: string, v: unknown, positive: boolean): [number, number, number] {
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0))) {
    throw new ConfigError(`${where} must be 3 ${positive ? 'positive ' : ''}finite numbers, got ${JSON.stringify(v)}`);
  }
  return [v[0], v[1], v[2]];
}

/** Validate `preprocess`; missing fields take the legacy values, unknown keys are errors. */
export function validatePreprocess(v: unknown, where = 'preprocess'): PreprocessConfig {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`${where} must be an object`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KEYS.includes(k)) throw new ConfigError(`${where}.${k} is not a known key (known: ${KEYS.join(', ')})`);
  return {
    resize: o.resize === undefined ? LEGACY_PREPROCESS.resize : oneOf(`${where}.resize`, o.resize, ['bicubic', 'bilinear'] as const),
    order: o.order === undefined ? LEGACY_PREPROCESS.order : oneOf(`${where}.order`, o.order, ['as_opened', 'rgb_first'] as const),
    rgb: o.rgb === undefined ? LEGACY_PREPROCESS.rgb : oneOf(`${where}.rgb`, o.rgb, ['pillow', 'white'] as const),
    mean: o.mean === undefined ? [...LEGACY_PREPROCESS.mean] : triple(`${where}.mean`, o.mean, false),
    std: o.std === undefined ? [...LEGACY_PREPROCESS.std] : triple(`${where}.std`, o.std, true),
  };
}
