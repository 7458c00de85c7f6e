/**
 * `npm run bench -- model --config tiny|small|openflamingo3b|openflamingo9b [--dtype fp32|bf16|int8] [--json] [--repeats N]`
 * `npm run bench -- model --config NAME --against "CMD" [--pairs N] [--timeout-s S] [--json]`
 *
 * Runs the configs and workloads of bench/configs/configs.json (a copy of ../shared/bench/configs.json) with random weights: a training step
 * (ViT frozen under noGrad; perceiver, gated blocks and LM input embeddings trainable; next-token CE
 * ignoring pad; backward; AdamW; zero grads), prefill, and batch-1 KV-cached greedy decode. Prints
 * {config, dtype, load_ms, train_step_ms, prefill_ms, decode_tokens_per_s, generate_ms, peak_rss_mb, train_gflop_per_step, ...}.
 *
 * fp32 builds the model as before (its own random init). bf16 / int8 build a skeleton and fill it
 * tensor by tensor, packing each frozen linear weight as it is made, so the float32 model never
 * exists (the 9B one could not: 32 GB). Their random values repeat one random block (the speed of
 * a product does not depend on the values). With a train workload the trainable parts stay fp32
 * (frozen ones packed); without one everything is frozen (inference) and every linear weight is
 * packed. load_ms is the time to build (and fill, and pack) the model.
 *
 * --against CMD alternates this bench (a fresh process each time, same flags) with the shell command
 * CMD, which must print the same JSON object (the PyTorch baseline's worker does), for N pairs
 * (default 3), and prints each shared numeric figure's per-pair ratios ours / theirs and their median
 * (bench/lib/against.ts).
 *
 * --profile runs the timed train steps once more under the engine's profiler and adds `profile` to
 * the JSON (and a table on stderr): forward and backward time per op kind, kernel time (GEMM by size
 * class, with GFLOP/s), time outside kernels, GC pauses, page faults and kernel CPU time
 * (bench/lib/profile.ts). --profile-shapes does the same with GEMM time by exact shape and
 * transposes (`gemm NT 1024x2048x768`, x48 = batch count) instead of size class. --train-only skips
 * prefill and decode. --profile-decode profiles the decode workload's single-token steps the same way
 * (one profile step per token) and adds `decode_profile`; with --profile-shapes beside it, its GEMM and packed
 * products are listed by shape.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as E from '../src/engine/index.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { Rng } from '../src/engine/rng.ts';
import { backend } from '../src/engine/backend.ts';
import { Flamingo } from '../src/model/flamingo.ts';
import type { FlamingoConfig, LMConfig } from '../src/model/config.ts';
import { generate } from '../src/model/generate.ts';
import { decodeStep, prefill } from '../src/model/decode-state.ts';
import { argmax } from '../src/model/token-choice.ts';
import { AdamW } from '../src/train/optim.ts';
import { type WeightDType, allocPacked, parseWeightDType } from '../src/engine/quant.ts';
import { linearWeightNames, modelBytes, packRowsInto } from '../src/nn/quantize.ts';
import { AgainstError, formatReport, runPairs } from './lib/against.ts';
import { formatProfile, profileSteps } from './lib/profile.ts';
import type { Phase } from '../src/engine/profile.ts';

interface Workload {
  batch_size: number;
  seq_len?: number;
  prompt_len?: number;
  images_per_seq: number;
  frames: number;
  left_padded_rows?: number[];
  left_pad?: number;
  new_tokens?: number;
  optimizer?: { lr: number; betas: [number, number]; eps: number; weight_decay: number };
}

interface BenchConfig extends FlamingoConfig {
  workloads: { train?: Workload; prefill: Workload; decode: Workload };
}

const CONFIGS = fileURLToPath(new URL('./configs/configs.json', import.meta.url));

/** Token layout of configs.json: chunks of <image>, random text, <|endofchunk|>; listed rows left padded. */
export function makeBatch(cfg: FlamingoConfig, w: Workload, rng: Rng): { ids: Tensor; mask: Tensor; targets: Tensor; visionX: Tensor } {
  const B = w.batch_size;
  const L = w.seq_len ?? w.prompt_len!;
  const V = cfg.lm.vocab_size;
  const { media_token_id: img, eoc_token_id: eoc, pad_token_id: pad } = cfg.flamingo;
  const ids = new Int32Array(B * L).fill(pad);
  const mask = new Int32Array(B * L);
  for (let b = 0; b < B; b++) {
    const padded = w.left_padded_rows?.includes(b) ? w.left_pad ?? 0 : 0;
    const real = L - padded;
    const chunk = Math.floor(real / w.images_per_seq);
    const row: number[] = [];
    for (let c = 0; c < w.images_per_seq; c++) {
      const len = c === w.images_per_seq - 1 ? real - chunk * c : chunk;
      row.push(img);
      for (let t = 1; t < len - 1; t++) row.push(1 + rng.int(V - 3));
      row.push(eoc);
    }
    ids.set(row, b * L + padded);
    mask.fill(1, b * L + padded, (b + 1) * L);
  }
  const targets = new Int32Array(B * L).fill(-100);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L - 1; t++) {
      const next = ids[b * L + t + 1]!;
      if (mask[b * L + t] && next !== pad) targets[b * L + t] = next;
    }
  }
  const S = cfg.vision.image_size;
  const visionX = E.zeros([B, w.images_per_seq, w.frames, 3, S, S]);
  rng.fillNormal(visionX.f32);
  return { ids: new Tensor(ids, [B, L]), mask: new Tensor(mask, [B, L]), targets: new Tensor(targets, [B, L]), visionX };
}

/** Analytic matmul FLOPs of one training step (forward + backward where gradients flow). */
export function trainFlops(cfg: FlamingoConfig, w: Workload): number {
  const B = w.batch_size;
  const L = w.seq_len!;
  const T = w.images_per_seq * w.frames;
  const v = cfg.vision;
  const P = (v.image_size / v.patch_size) ** 2;
  const N = B * T;
  const lin = (rows: number, i: number, o: number) => 2 * rows * i * o;
  const attn = (bh: number, lq: number, lk: number, d: number) => 2 * 2 * bh * lq * lk * d;
  // ViT: forward only (frozen, no grad)
  const hid = Math.floor(v.width * v.mlp_ratio);
  let vit = lin(N * P, 3 * v.patch_size ** 2, v.width);
  vit += v.layers * (lin(N * (P + 1), v.width, 3 * v.width) + lin(N * (P + 1), v.width, v.width) + 2 * lin(N * (P + 1), v.width, hid) + attn(N * v.heads, P + 1, P + 1, v.width / v.heads));
  vit += lin(N, v.width, v.output_dim);
  // perceiver: trainable → forward + dX + dW ≈ 3× (attention core: forward 2 matmuls, backward 4)
  const r = cfg.resampler;
  const inner = r.heads * r.dim_head;
  const n = r.num_latents;
  const per = r.depth * (lin(N * n, r.dim, inner) + lin(N * (P + n), r.dim, 2 * inner) + lin(N * n, inner, r.dim) + attn(N * r.heads, n, P + n, r.dim_head) + 2 * lin(N * n, r.dim, r.dim * r.ff_mult));
  // gated blocks: trainable
  const x = cfg.xattn;
  const xi = x.heads * x.dim_head;
  const nGated = Math.floor(cfg.lm.num_layers / cfg.flamingo.cross_attn_every_n_layers);
  const gated = nGated * (lin(B * L, x.dim, xi) + lin(N * n, x.dim_visual, 2 * xi) + lin(B * L, xi, x.dim) + attn(B * x.heads, L, T * n, x.dim_head) + 2 * lin(B * L, x.dim, x.dim * x.ff_mult));
  // LM: frozen weights but gradients flow to the embeddings → forward + dX ≈ 2× (attention core 3×)
  if (cfg.lm.family !== undefined && cfg.lm.family !== 'llama') throw new Error(`bench/model.ts: FLOP estimate is for the llama family, not ${cfg.lm.family}`);
  const m = cfg.lm as LMConfig;
  const hd = m.hidden_size / m.num_heads;
  const kv = m.num_key_value_heads * hd;
  const lmLin = m.num_layers * (lin(B * L, m.hidden_size, m.hidden_size) * 2 + lin(B * L, m.hidden_size, kv) * 2 + 3 * lin(B * L, m.hidden_size, m.intermediate_size)) + lin(B * L, m.hidden_size, m.vocab_size);
  const lmAttn = m.num_layers * attn(B * m.num_heads, L, L, hd);
  return vit + 3 * per + 3 * gated + 2 * lmLin + 3 * lmAttn;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Skeleton model with random weights in `dtype`: frozen linear weights packed as they are filled
 * (in row chunks, so no float32 copy of a whole matrix exists), everything else float32.
 */
export function buildQuantized(cfg: FlamingoConfig, dtype: Exclude<WeightDType, 'fp32'>, train: boolean): Flamingo {
  const model = new Flamingo(cfg, 0, { init: false });
  model.setTrainingMode(train ? 'flamingo' : 'none');
  const block = new Float32Array(1 << 22);
  new Rng(0).fillUniform(block, -1, 1);
  const packable = linearWeightNames(model);
  let offset = 0;
  /** dst = scale · (a window of the random block), wrapping around it. */
  const fill = (dst: Float32Array, scale: number): void => {
    for (let i = 0; i < dst.length;) {
      const o = offset % block.length;
      const n = Math.min(dst.length - i, block.length - o);
      for (let j = 0; j < n; j++) dst[i + j] = block[o + j]! * scale;
      i += n;
      offset += n + 7919; // shift the window between tensors
    }
  };
  const chunk = new Float32Array(1 << 22);
  for (const [name, t] of model.namedParameters()) {
    if (t.ndim < 2) continue; // norm weights (1), biases and gates (0) keep their skeleton values
    const cols = t.shape[t.ndim - 1]!;
    const scale = 1 / Math.sqrt(cols);
    if (packable.has(name) && !t.requiresGrad) {
      const rows = t.shape[0]!;
      const p = allocPacked(rows, cols, dtype);
      const step = Math.max(1, Math.floor(chunk.length / cols));
      for (let r = 0; r < rows; r += step) {
        const n = Math.min(step, rows - r);
        const src = chunk.subarray(0, n * cols);
        fill(src, scale);
        packRowsInto(p, r, src, n);
      }
      t.pack(p);
    } else {
      fill(t.f32, scale);
    }
  }
  return model;
}

/** Value of `--flag V`; throws when the flag is last. */
function flagValue(args: readonly string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new AgainstError(`bench model: ${flag} needs a value`);
  return v;
}

/** `--against CMD`: this bench (same flags, in a child process) against CMD, N alternating pairs. */
async function runAgainst(args: string[]): Promise<void> {
  const json = args.includes('--json');
  const cmd = flagValue(args, '--against')!;
  const pairs = Number(flagValue(args, '--pairs') ?? '3');
  const timeoutS = Number(flagValue(args, '--timeout-s') ?? '1800');
  if (!(timeoutS > 0)) throw new AgainstError(`bench model: --timeout-s must be a positive number of seconds`);
  const own: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--against' || args[i] === '--pairs' || args[i] === '--timeout-s') { i++; continue; }
    if (args[i] === '--json') continue;
    own.push(args[i]!);
  }
  const main = fileURLToPath(new URL('./main.ts', import.meta.url));
  const report = await runPairs({
    ours: { argv: [process.execPath, ...process.execArgv, main, 'model', ...own, '--json'] },
    theirs: { shell: cmd },
    pairs,
    timeoutS,
    log: (s) => process.stderr.write(s + '\n'),
  });
  process.stdout.write(json ? JSON.stringify(report) + '\n' : formatReport(report) + '\n');
}

export async function run(args: string[]): Promise<void> {
  if (args.includes('--against')) return runAgainst(args);
  const json = args.includes('--json');
  const dtIdx = args.indexOf('--dtype');
  const dtype = parseWeightDType(dtIdx >= 0 ? args[dtIdx + 1] : 'fp32', '--dtype');
  const name = args[args.indexOf('--config') + 1] && args.includes('--config') ? args[args.indexOf('--config') + 1]! : 'tiny';
  const repIdx = args.indexOf('--repeats');
  const all = JSON.parse(readFileSync(CONFIGS, 'utf8')) as { configs: Record<string, BenchConfig> };
  const bc = all.configs[name];
  if (!bc) throw new Error(`unknown bench config '${name}' (available: ${Object.keys(all.configs).join(', ')})`);
  const repeats = repIdx >= 0 ? Number(args[repIdx + 1]) : name === 'tiny' ? 5 : 3;
  const log = (s: string) => { if (!json) process.stderr.write(s + '\n'); };
  const cfg: FlamingoConfig = { vision: bc.vision, resampler: bc.resampler, xattn: bc.xattn, lm: bc.lm, flamingo: bc.flamingo };
  const k = backend();
  const t0 = performance.now();
  const model = dtype === 'fp32' ? new Flamingo(cfg, 0) : buildQuantized(cfg, dtype, bc.workloads.train !== undefined);
  // non-zero gates so the visual path is exercised as after training
  for (const g of model.lang_encoder.gated.values()) { g.attn_gate!.f32[0] = 0.5; g.ff_gate!.f32[0] = 0.5; }
  const loadMs = performance.now() - t0;
  const weightsMb = modelBytes(model) / 2 ** 20;
  const rssAfterLoad = process.memoryUsage().rss / 2 ** 20;
  log(`built ${name} in ${dtype} (${(model.numParameters() / 1e6).toFixed(1)}M params, ${(model.numParameters(true) / 1e6).toFixed(1)}M trainable, ${weightsMb.toFixed(0)} MB of weights) in ${(loadMs / 1000).toFixed(1)} s; kernels: ${k.description}`);
  const rng = new Rng(1);
  const result: Record<string, unknown> = {
    config: name, dtype, load_ms: loadMs, weights_mb: weightsMb, rss_after_load_mb: rssAfterLoad, kernel_backend: k.description,
  };

  if (bc.workloads.train) {
    const w = bc.workloads.train;
    const o = w.optimizer!;
    const opt = new AdamW(model.trainableParameters(), { lr: o.lr, betas: o.betas, eps: o.eps, weightDecay: o.weight_decay });
    const batch = makeBatch(cfg, w, rng);
    const V = cfg.lm.vocab_size;
    const times: number[] = [];
    const losses: number[] = [];
    // As the training loop does (src/train/loop.ts): one pool across steps, so the gradients a
    // backward pass frees become the next forward's activations.
    const pool = new E.BufferPool();
    const step = (begin: (p: Phase) => void): void => E.withBufferPool(() => stepIn(begin), pool);
    const stepIn = (begin: (p: Phase) => void): void => {
      pool.nextStep();
      begin('forward');
      const logits = model.forward({ inputIds: batch.ids, attentionMask: batch.mask, visionX: batch.visionX });
      const loss = E.crossEntropy(E.reshape(logits, [-1, V]), E.reshape(batch.targets, [-1]), { ignoreIndex: -100 });
      begin('backward');
      E.backward(loss);
      begin('optimizer');
      opt.update();
      opt.zeroGrad();
      losses.push(loss.item());
    };
    for (let i = 0; i < repeats + 1; i++) {
      const s = performance.now();
      step(() => {});
      const ms = performance.now() - s;
      if (i > 0) times.push(ms); // first step warms up allocations
      log(`train step ${i}: ${ms.toFixed(0)} ms (loss ${losses[losses.length - 1]!.toFixed(3)})`);
    }
    result.train_step_ms = median(times);
    result.train_losses = losses;
    const gf = trainFlops(cfg, w) / 1e9;
    result.train_gflop_per_step = gf;
    result.train_achieved_gflops = gf / (median(times) / 1000);
    if (args.includes('--profile') || args.includes('--profile-shapes')) {
      const prof = await profileSteps(repeats, step, { shapes: args.includes('--profile-shapes') });
      result.profile = prof;
      process.stderr.write(formatProfile(prof, args.includes('--profile-shapes') ? 60 : 25) + '\n');
    }
  }
  if (args.includes('--train-only')) {
    result.peak_rss_mb = process.resourceUsage().maxRSS / 1024;
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }

  let decodeToProfile: { prompt: { inputIds: Tensor; visionX: Tensor }; steps: number } | null = null;
  E.noGrad(() => {
    const w = bc.workloads.prefill;
    const batch = makeBatch(cfg, w, rng);
    const times: number[] = [];
    for (let i = 0; i < repeats + 1; i++) {
      const s = performance.now();
      prefill(model, { inputIds: batch.ids, visionX: batch.visionX });
      if (i > 0) times.push(performance.now() - s);
    }
    result.prefill_ms = median(times);
    log(`prefill: ${median(times).toFixed(1)} ms`);

    const d = bc.workloads.decode;
    const db = makeBatch(cfg, d, rng);
    const rates: number[] = [];
    const gens: number[] = [];
    for (let i = 0; i < repeats + 1; i++) {
      const s = performance.now();
      const out = generate(model, { inputIds: db.ids, visionX: db.visionX }, { maxNewTokens: d.new_tokens!, stopAtEoc: false });
      const total = performance.now() - s;
      if (i > 0) {
        rates.push(out.timing.decodeSteps / out.timing.decodeS);
        gens.push(total);
      }
    }
    result.decode_tokens_per_s = median(rates);
    result.generate_ms = median(gens);
    log(`decode: ${median(rates).toFixed(1)} tokens/s, generate ${median(gens).toFixed(1)} ms`);
    if (args.includes('--profile-decode')) decodeToProfile = { prompt: { inputIds: db.ids, visionX: db.visionX }, steps: d.new_tokens! - 1 };
  });
  if (decodeToProfile) {
    // one profile step = one single-token KV-cached step, as decode_tokens_per_s counts them
    const { prompt, steps } = decodeToProfile;
    const { state, lastLogits } = E.noGrad(() => prefill(model, prompt));
    let tok = argmax(lastLogits, 0, lastLogits.length);
    const prof = await profileSteps(steps, (begin) => {
      begin('forward');
      const logits = E.noGrad(() => decodeStep(model, state, [tok]));
      tok = argmax(logits, 0, logits.length);
    }, { shapes: args.includes('--profile-shapes') });
    result.decode_profile = prof;
    process.stderr.write(formatProfile(prof, 30) + '\n');
  }
  result.peak_rss_mb = process.resourceUsage().maxRSS / 1024;
  result.repeats = repeats;
  const order = ['config', 'dtype', 'load_ms', 'train_step_ms', 'prefill_ms', 'decode_tokens_per_s', 'peak_rss_mb', 'train_gflop_per_step'];
  const out: Record<string, unknown> = {};
  for (const key of order) if (key in result) out[key] = result[key];
  Object.assign(out, result);
  process.stdout.write(JSON.stringify(out) + (json ? '\n' : '\n'));
}
