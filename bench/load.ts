/**
 * `npm run bench -- load --config openflamingo3b [--dtype fp32|bf16|int8] [--files DIR] [--delete-files] [--json]`
 *
 * Memory and time of loading a released OpenFlamingo from its three sources as downloaded
 * (open_clip_pytorch_model.bin, the LM directory's pytorch_model.bin, checkpoint.pt: torch.save
 * files, as the releases ship), in a child process so its peak RSS is the load's alone:
 *
 *   1. once per config, random-weight release files of a bench config (bench/configs/configs.json)
 *      are written to DIR (default <tmpdir>/flamingo-bench-release-<config>), streamed tensor by
 *      tensor by `flamingo export`'s writer from a skeleton (the float32 model never exists here);
 *   2. a child loads them with io/release.ts in the dtype asked for (bf16 / int8: each frozen linear
 *      weight packed as it is read) and reports.
 *
 * Prints {config, dtype, load_ms, peak_rss_mb, rss_before_load_mb, final_weights_mb, peak_over_final,
 * files_mb}. peak_over_final = peak RSS of the loading process / bytes of the loaded weights (the
 * issue's target: ≤ 1.15). --delete-files removes DIR afterwards (a 3B fp32 set is ~12 GB).
 * A 3B-size run exceeds 4 GB of RSS: run it under `flock /tmp/flamingo-bigmem.lock`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../src/engine/rng.ts';
import { parseWeightDType, type WeightDType } from '../src/engine/quant.ts';
import type { Tensor } from '../src/engine/tensor.ts';
import { Flamingo } from '../src/model/flamingo.ts';
import type { FlamingoConfig } from '../src/model/config.ts';
import { exportRelease } from '../src/io/release-export.ts';
import { loadRelease } from '../src/io/release.ts';
import { SIDECAR_FILE } from '../src/io/release-files.ts';
import { modelBytes } from '../src/nn/quantize.ts';
import type { TorchTensorToWrite } from '../src/io/torch-save.ts';

const CONFIGS = fileURLToPath(new URL('./configs/configs.json', import.meta.url));
const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

function arg(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function benchConfig(name: string): FlamingoConfig {
  const all = JSON.parse(readFileSync(CONFIGS, 'utf8')) as { configs: Record<string, FlamingoConfig> };
  const bc = all.configs[name];
  if (!bc) throw new Error(`unknown bench config '${name}' (available: ${Object.keys(all.configs).join(', ')})`);
  return { vision: bc.vision, resampler: bc.resampler, xattn: bc.xattn, lm: bc.lm, flamingo: bc.flamingo };
}

/** Random values for a ≥2-D parameter (a window of one random block, scaled 1/sqrt(fan-in)); 1-D ones keep their skeleton values. */
function syntheticData(): (name: string, t: Tensor) => TorchTensorToWrite {
  const block = new Float32Array(1 << 22);
  new Rng(0).fillUniform(block, -1, 1);
  let offset = 0;
  const chunk = new Float32Array(1 << 22);
  return (_name, t) => {
    if (t.ndim < 2) return { shape: t.shape, data: t.f32 };
    const scale = 1 / Math.sqrt(t.shape[t.ndim - 1]!);
    return {
      shape: t.shape,
      data: (emit) => {
        for (let i = 0; i < t.size;) {
          const n = Math.min(chunk.length, t.size - i);
          const o = offset % block.length;
          for (let j = 0; j < n; j++) chunk[j] = block[(o + j) % block.length]! * scale;
          offset += n + 7919;
          emit(chunk.subarray(0, n));
          i += n;
        }
      },
    };
  };
}

function dirBytes(dir: string): number {
  let s = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) s += e.isDirectory() ? dirBytes(join(dir, e.name)) : statSync(join(dir, e.name)).size;
  return s;
}

function releaseFilesIn(dir: string): { openClip: string; lmDir: string; checkpoint: string } {
  return { openClip: join(dir, 'clip', 'open_clip_pytorch_model.bin'), lmDir: join(dir, 'lm'), checkpoint: join(dir, 'openflamingo', 'checkpoint.pt') };
}

/** Write the release files of `name` into dir unless a finished set is there. */
function ensureFiles(name: string, dir: string, log: (s: string) => void): void {
  const done = join(dir, 'done.json');
  if (existsSync(done) && (JSON.parse(readFileSync(done, 'utf8')) as { config: string }).config === name) return;
  rmSync(dir, { recursive: true, force: true });
  const t0 = performance.now();
  const skeleton = new Flamingo(benchConfig(name), 0, { init: false });
  exportRelease(skeleton, dir, { tensorData: syntheticData() });
  // a real release has no flamingo-ts.json: the loader derives the config from the files
  rmSync(join(dir, 'openflamingo', SIDECAR_FILE));
  writeFileSync(done, JSON.stringify({ config: name }));
  log(`wrote ${name} release files (${(dirBytes(dir) / 2 ** 20).toFixed(0)} MB) to ${dir} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

/** In the child: load and report on stdout. */
function child(dir: string, dtype: WeightDType): void {
  const before = process.memoryUsage().rss;
  const t0 = performance.now();
  const { model } = loadRelease(releaseFilesIn(dir), { dtype });
  const loadMs = performance.now() - t0;
  const peak = process.resourceUsage().maxRSS * 1024;
  const final = modelBytes(model);
  process.stdout.write(`${JSON.stringify({
    load_ms: loadMs, peak_rss_mb: peak / 2 ** 20, rss_before_load_mb: before / 2 ** 20, rss_after_load_mb: process.memoryUsage().rss / 2 ** 20,
    final_weights_mb: final / 2 ** 20, peak_over_final: peak / final, parameters: model.numParameters(),
  })}\n`);
}

export async function run(args: string[]): Promise<void> {
  const dtype = parseWeightDType(arg(args, '--dtype') ?? 'fp32', '--dtype');
  const childDir = arg(args, '--child');
  if (childDir) { child(childDir, dtype); return; }
  const json = args.includes('--json');
  const name = arg(args, '--config') ?? 'tiny';
  const dir = arg(args, '--files') ?? join(tmpdir(), `flamingo-bench-release-${name}`);
  const log = (s: string): void => { if (!json) process.stderr.write(`${s}\n`); };
  ensureFiles(name, dir, log);
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, 'load', '--child', dir, '--dtype', dtype], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`loading child failed (status ${r.status}, signal ${r.signal}): ${r.stderr}`);
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number>;
  const out = { config: name, dtype, ...res, files_mb: dirBytes(dir) / 2 ** 20 };
  if (args.includes('--delete-files')) rmSync(dir, { recursive: true, force: true });
  if (json) process.stdout.write(`${JSON.stringify(out)}\n`);
  else log(`${name} ${dtype}: loaded in ${(res.load_ms! / 1000).toFixed(1)} s, peak RSS ${res.peak_rss_mb!.toFixed(0)} MB for ${res.final_weights_mb!.toFixed(0)} MB of weights (x${res.peak_over_final!.toFixed(3)})`);
}
