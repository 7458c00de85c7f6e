/**
 * Packed frozen weights (bf16, int8 blocks of 32): the formats' rounding, the packed linear kernels
 * against the float32 product of the dequantised weights (TypeScript oracle and native), gradients
 * through packed weights, and training a model whose frozen layers are packed.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../src/engine/index.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { Rng } from '../src/engine/rng.ts';
import type { PerceiverResampler } from '../src/model/resampler.ts';
import { withBackend } from '../src/engine/backend.ts';
import { getTsKernels, tryNativeKernels } from '../src/engine/kernels/index.ts';
import type { Kernels } from '../src/engine/kernels/types.ts';
import { openGates, pixels } from './helpers/tiny-flamingo.ts';
import { loadNativeAddon } from '../src/engine/kernels/native.ts';
import {
  type PackedWeight, Q8_BLOCK, blocksPerRow, dequantize, fromBf16Bits, quantize, toBf16Bits, parseWeightDType,
} from '../src/engine/quant.ts';
import { Linear } from '../src/nn/layers.ts';
import { Module } from '../src/nn/module.ts';
import { linearWeightNames, logWeights, modelBytes, packMatrix, quantizeFrozen, storedDType } from '../src/nn/quantize.ts';
import { Flamingo } from '../src/model/flamingo.ts';
import type { FlamingoConfig, LMConfig } from '../src/model/config.ts';
import { AdamW } from '../src/train/optim.ts';
import { mkdtempSync, copyFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DECODE_SHAPES, checkDecodeKernels } from './helpers/decode-kernels.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadFlamingo, saveFlamingo } from '../src/io/checkpoint.ts';
import { lowPrecisionStats, runParityCase } from '../src/io/parity.ts';
import { run as runVerify } from '../src/cli/verify.ts';
import { run as runGenerate } from '../src/cli/generate.ts';
import { BUNDLED_MODEL_DIR, loadPretrained } from '../src/pretrained/index.ts';
import { readSafetensors } from '../src/io/safetensors-read.ts';
import { writeSafetensors } from '../src/io/safetensors-write.ts';
import { type TensorToWrite } from '../src/io/safetensors.ts';

const ts = getTsKernels();
const { kernels: nativeOrNull, reason } = tryNativeKernels();
const stale = nativeOrNull && typeof (loadNativeAddon() as { packedLinear?: unknown }).packedLinear !== 'function';
const skipNative = !nativeOrNull ? `native addon unavailable: ${reason}` : stale ? 'native addon predates the packed kernels (npm run build:native)' : false;
const nat = nativeOrNull as Kernels;

function randn(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  new Rng(seed).fillNormal(a, 0, scale);
  return a;
}

/** float64 reference of x (rows × cols) · Wᵀ with W = dequant(p). */
function reference(x: Float32Array, p: PackedWeight, rows: number): Float64Array {
  const W = dequantize(p);
  const out = new Float64Array(rows * p.rows);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < p.rows; o++) {
      let s = 0;
      for (let j = 0; j < p.cols; j++) s += x[r * p.cols + j]! * W[o * p.cols + j]!;
      out[r * p.rows + o] = s;
    }
  }
  return out;
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    if (!(err <= rel * (scale + 1e-30))) assert.fail(`${what}: element ${i} is ${got[i]}, expected ${want[i]} (|err| ${err} > ${rel}·${scale})`);
  }
}

describe('formats', () => {
  test('bf16 rounds to nearest even and keeps specials', () => {
    const one = 1;
    const halfUlp = 2 ** -8; // bf16 has 7 fraction bits: 1 + 2^-8 is exactly between 1 and 1 + 2^-7
    assert.equal(fromBf16Bits(toBf16Bits(one + halfUlp)), 1, 'tie rounds to even (down)');
    assert.equal(fromBf16Bits(toBf16Bits(1 + 3 * halfUlp)), 1 + 4 * halfUlp, 'tie rounds to even (up)');
    assert.equal(fromBf16Bits(toBf16Bits(1 + 1.5 * halfUlp)), 1 + 2 * halfUlp, 'above the tie rounds up');
    assert.equal(fromBf16Bits(toBf16Bits(-0)), -0);
    assert.equal(fromBf16Bits(toBf16Bits(Infinity)), Infinity);
    assert.ok(Number.isNaN(fromBf16Bits(toBf16Bits(NaN))));
    const x = randn(1000, 1);
    const p = quantize(x, 10, 100, 'bf16');
    const d = dequantize(p);
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(d[i]! - x[i]!) <= Math.abs(x[i]!) * 2 ** -8, `element ${i}`);
  });

  test('int8: one scale per block of 32 (max|w|/127), error at most half a step, short last block', () => {
    const rows = 3;
    const cols = 2 * Q8_BLOCK + 7;
    const x = randn(rows * cols, 2);
    x[5] = 10; // an outlier only affects its own block
    const p = quantize(x, rows, cols, 'int8');
    assert.equal(p.kind, 'int8');
    if (p.kind !== 'int8') return;
    assert.equal(blocksPerRow(cols), 3);
    assert.equal(p.scales.length, rows * 3);
    const d = dequantize(p);
    for (let r = 0; r < rows; r++) {
      for (let b = 0; b < 3; b++) {
        const c0 = b * Q8_BLOCK;
        const c1 = Math.min(cols, c0 + Q8_BLOCK);
        let amax = 0;
        for (let j = c0; j < c1; j++) amax = Math.max(amax, Math.abs(x[r * cols + j]!));
        const s: number = p.scales[r * 3 + b]!;
        assert.equal(s, Math.fround(amax / 127));
        for (let j = c0; j < c1; j++) {
          const i = r * cols + j;
          assert.ok(Math.abs(p.qs[i]!) <= 127);
          assert.ok(Math.abs(d[i]! - x[i]!) <= s / 2 + 1e-7, `row ${r} col ${j}: ${d[i]} vs ${x[i]}`);
        }
      }
    }
    assert.equal(p.scales[0], Math.fround(10 / 127));
    assert.ok(p.scales[1]! < 0.1, 'the outlier does not coarsen the next block');
    // an all-zero block has scale 0 and decodes to zeros
    const z = quantize(new Float32Array(64), 1, 64, 'int8');
    assert.deepEqual(Array.from(dequantize(z)), new Array(64).fill(0));
    assert.throws(() => quantize(Float32Array.from([NaN, 1]), 1, 2, 'int8'), /non-finite/);
  });

  test('dtype names are validated', () => {
    assert.equal(parseWeightDType('bf16'), 'bf16');
    assert.throws(() => parseWeightDType('fp16', '--dtype'), /--dtype must be one of fp32, bf16, int8, got "fp16"/);
  });

  test('native packing is bit-identical to the TypeScript oracle', { skip: skipNative }, () => {
    for (const [rows, cols] of [[5, 70], [64, 256], [3, 31]] as const) {
      const x = randn(rows * cols, rows + cols, 0.3);
      x[7] = 1e-30; // subnormal-scale values
      for (const kind of ['bf16', 'int8'] as const) {
        const want = quantize(x, rows, cols, kind);
        const got = withBackend(nat, () => packMatrix(x, rows, cols, kind));
        if (want.kind === 'bf16' && got.kind === 'bf16') assert.deepEqual(got.bits, want.bits);
        if (want.kind === 'int8' && got.kind === 'int8') {
          assert.deepEqual(got.qs, want.qs);
          assert.deepEqual(got.scales, want.scales);
        }
      }
    }
    assert.throws(() => withBackend(nat, () => packMatrix(Float32Array.from([NaN, 1, 2]), 1, 3, 'int8')), /non-finite/);
  });
});

describe('packed linear kernels', () => {
  // rows 1..4 take the register (decode) path natively, larger ones the panel (prefill) path;
  // widths with a short last block and out sizes past one panel of 64 rows
  const shapes: [number, number, number][] = [[1, 70, 40], [2, 64, 96], [3, 33, 130], [4, 256, 65], [5, 40, 70], [17, 96, 200], [64, 300, 129]];
  const sets: [string, Kernels, boolean | string][] = [['typescript', ts, false], ['native', nat, skipNative]];
  for (const [name, k, skip] of sets) {
    for (const kind of ['bf16', 'int8'] as const) {
      test(`${name} ${kind}: forward and backward equal the float32 product with the dequantised weight`, { skip }, () => {
        for (const [rows, outF, inF] of shapes) {
          if (name === 'typescript' && rows * outF * inF > 3e6) continue;
          const p = quantize(randn(outF * inF, outF + inF, 0.1), outF, inF, kind);
          const x = randn(rows * inF, rows);
          const want = reference(x, p, rows);
          const out = new Float32Array(rows * outF).fill(NaN); // beta = 0 ignores old contents
          k.packedLinear(x, p, out, rows, 0);
          assertClose(out, want, 1e-5, `${name} ${kind} ${rows}×${inF}→${outF}`);
          const bias = randn(rows * outF, 9);
          const acc = bias.slice();
          k.packedLinear(x, p, acc, rows, 1);
          assertClose(acc, want.map((v, i) => v + bias[i]!), 1e-5, `${name} ${kind} accumulate`);
          // dx = g · W
          const g = randn(rows * outF, 11);
          const W = dequantize(p);
          const dxWant = new Float64Array(rows * inF);
          for (let r = 0; r < rows; r++) for (let o = 0; o < outF; o++) for (let j = 0; j < inF; j++) dxWant[r * inF + j]! += g[r * outF + o]! * W[o * inF + j]!;
          const dx = new Float32Array(rows * inF).fill(NaN);
          k.packedLinearBackward(g, p, dx, rows);
          assertClose(dx, dxWant, 1e-5, `${name} ${kind} backward ${rows}×${outF}→${inF}`);
        }
      });
    }
  }

  test('native equals the TypeScript oracle on a decode-sized and a prefill-sized product', { skip: skipNative }, () => {
    for (const kind of ['bf16', 'int8'] as const) {
      for (const rows of [1, 9]) {
        const p = quantize(randn(160 * 544, 3, 0.05), 160, 544, kind);
        const x = randn(rows * 544, 4);
        const a = new Float32Array(rows * 160);
        const b = new Float32Array(rows * 160);
        ts.packedLinear(x, p, a, rows, 0);
        nat.packedLinear(x, p, b, rows, 0);
        assertClose(b, a, 1e-5, `${kind} rows ${rows}`);
      }
    }
  });

  test('native decode kernels: row groups, block tails, long rows and prefetch edges', { skip: skipNative }, () => {
    const r = checkDecodeKernels(nat);
    assert.deepEqual(r.failures, []);
    assert.ok(r.checked >= 4 * DECODE_SHAPES.length);
  });

  // In a child: FLAMINGO_SIMD=avx2 (the AVX2 kernels on an AVX-512 machine), and K split into pieces
  // of 64 elements (every width past one block takes the multi-pass path), or never split.
  const script = fileURLToPath(new URL('./helpers/decode-kernels.ts', import.meta.url));
  const envs: Record<string, string>[] = [{ FLAMINGO_SIMD: 'avx2' }, { FLAMINGO_GEMV_KC: '64' }, { FLAMINGO_SIMD: 'avx2', FLAMINGO_GEMV_KC: '64' }, { FLAMINGO_GEMV_KC: '0' }];
  for (const extra of envs) {
    test(`native decode kernels with ${Object.entries(extra).map(([k, v]) => `${k}=${v}`).join(' ')}`, { skip: skipNative }, () => {
      const child = spawnSync(process.execPath, ['--import', 'tsx', script], {
        encoding: 'utf8', env: { ...process.env, ...extra, FLAMINGO_KERNELS: 'native' }, timeout: 120_000,
      });
      assert.equal(child.status, 0, child.stderr);
      const r = JSON.parse(child.stdout.trim().split('\n').pop()!) as { simd: string; failures: string[]; checked: number };
      if (extra.FLAMINGO_SIMD) assert.ok(!r.simd.includes('avx512'), `FLAMINGO_SIMD=avx2 still reports ${r.simd}`);
      assert.deepEqual(r.failures, []);
      assert.ok(r.checked >= 4 * DECODE_SHAPES.length);
    });
  }

  test('argument checks name the problem', { skip: skipNative }, () => {
    const p = quantize(randn(64, 1), 2, 32, 'int8');
    assert.throws(() => nat.packedLinear(new Float32Array(31), p, new Float32Array(2), 1, 0), /x has 31 elements/);
    assert.throws(() => ts.packedLinear(new Float32Array(31), p, new Float32Array(2), 1, 0), /'x' has 31 elements/);
    const bad = { ...p, scales: new Float32Array(1) } as PackedWeight;
    assert.throws(() => nat.packedLinear(new Float32Array(32), bad, new Float32Array(2), 1, 0), /scales has 1 elements/);
  });
});

describe('packed weights in the engine and modules', () => {
  test('linear over a packed weight: values and input gradient match the dequantised float32 weight', () => {
    for (const kind of ['bf16', 'int8'] as const) {
      const lin = new Linear(48, 20, new Rng(3));
      lin.setTrainable(false);
      const ref = new Linear(48, 20, new Rng(3));
      ref.setTrainable(false);
      quantizeFrozen(lin, kind);
      assert.equal(lin.weight.dtype, kind);
      ref.weight.f32.set(dequantize(lin.weight.packed!));
      const x1 = new Tensor(randn(2 * 3 * 48, 5), [2, 3, 48], true);
      const x2 = new Tensor(x1.f32.slice(), [2, 3, 48], true);
      const y1 = lin.forward(x1);
      const y2 = ref.forward(x2);
      assertClose(y1.f32, y2.f32, 1e-5, `${kind} forward`);
      const w = randn(y1.size, 6);
      E.backward(E.sum(E.mul(y1, new Tensor(w, y1.shape))));
      E.backward(E.sum(E.mul(y2, new Tensor(w, y2.shape))));
      assertClose(x1.grad!, x2.grad!, 1e-5, `${kind} dx`);
      assert.equal(lin.weight.grad, null);
    }
  });

  test('packed tensors refuse float32 reads and gradients with a clear message', () => {
    const lin = new Linear(32, 4, new Rng(1));
    assert.throws(() => quantizeFrozenTrainable(lin), /only frozen weights can be packed/);
    lin.setTrainable(false);
    quantizeFrozen(lin, 'int8');
    assert.throws(() => lin.weight.f32, /expected a float32 tensor, got int8/);
    assert.throws(() => lin.setTrainable(true), /'weight' is int8 \[4, 32\]: only float32 tensors can require grad/);
    assert.throws(() => quantizeFrozen(lin, 'bf16'), /already stored as int8/);
  });

  test('which weights are packed: linear weights of frozen layers, never embeddings, norms, gates or the conv', () => {
    const m = new Flamingo(TINY, 2);
    const names = linearWeightNames(m);
    assert.ok(names.has('vision_encoder.transformer.resblocks.0.attn.in_proj_weight') || [...names].some((n) => n.endsWith('attn.in_proj_weight')));
    assert.ok(names.has('lang_encoder.lm_head.weight'));
    const before = modelBytes(m);
    const s = quantizeFrozen(m, 'int8'); // training mode 'flamingo': resampler and gated blocks stay float32
    assert.ok(s.tensors > 0 && s.bytes < before);
    for (const [name, t] of m.namedParameters()) {
      const trainablePart = name.startsWith('perceiver.') || name.includes('gated_cross_attn_layers');
      if (t.packed) {
        assert.ok(names.has(name) && !trainablePart, `${name} should not be packed`);
      } else if (names.has(name) && !trainablePart) {
        assert.fail(`${name} is a frozen linear weight but was not packed`);
      }
      if (/embed|norm|gate|conv1|latents|ln_/.test(name) && !name.endsWith('_proj.weight')) assert.equal(t.dtype, 'float32', name);
    }
  });

  test('training with packed frozen weights: the trainable parts get the gradients of the dequantised model and learn', () => {
    for (const kind of ['bf16', 'int8'] as const) {
      const m = new Flamingo(TINY, 4);
      openGates(m);
      quantizeFrozen(m, kind);
      // the same model with the dequantised weights in float32
      const ref = new Flamingo(TINY, 4);
      openGates(ref);
      const own = new Map(m.namedParameters());
      for (const [name, t] of ref.namedParameters()) {
        const q = own.get(name)!;
        t.f32.set(q.packed ? dequantize(q.packed) : q.f32);
      }
      const rng = new Rng(7);
      const ids = new Int32Array([38, 5, 6, 7, 39, 38, 8, 9, 10, 11]);
      const batch = { inputIds: new Tensor(ids, [1, 10]), visionX: pixels(rng, 1, 2) };
      const targets = new Tensor(Int32Array.from([5, 6, 7, 39, -100, 8, 9, 10, 11, -100]), [10]);
      const lossOf = (model: Flamingo) => E.crossEntropy(E.reshape(model.forward(batch), [-1, TINY.lm.vocab_size]), targets, { ignoreIndex: -100 });
      const l1 = lossOf(m);
      const l2 = lossOf(ref);
      assert.ok(Math.abs(l1.item() - l2.item()) < 1e-4, `${kind} loss ${l1.item()} vs ${l2.item()}`);
      E.backward(l1);
      E.backward(l2);
      const refGrads = new Map(ref.trainableParameters());
      let checked = 0;
      for (const [name, t] of m.trainableParameters()) {
        assertClose(t.grad!, refGrads.get(name)!.grad!, 2e-4, `${kind} grad ${name}`);
        checked++;
      }
      assert.ok(checked > 10);
      // and a few steps of AdamW lower the loss
      const opt = new AdamW(m.trainableParameters(), { lr: 1e-2 });
      opt.update();
      opt.zeroGrad();
      for (let i = 0; i < 5; i++) {
        const l = lossOf(m);
        E.backward(l);
        opt.update();
        opt.zeroGrad();
      }
      const after = lossOf(m).item();
      assert.ok(after < l1.item() - 0.05, `${kind}: loss ${l1.item()} → ${after}`);
    }
  });

  test('inference packing covers the resampler and gated blocks, and training mode then refuses', () => {
    const m = new Flamingo(TINY, 5);
    m.setTrainingMode('none');
    quantizeFrozen(m, 'bf16');
    assert.equal((m.perceiver as PerceiverResampler).layers[0]!.attn.to_q.weight.dtype, 'bf16');
    assert.throws(() => m.setTrainingMode('flamingo'), /only float32 tensors can require grad/);
  });
});

describe('quantised checkpoints', () => {
  const ids = new Tensor(Int32Array.from([38, 5, 6, 39, 7]), [1, 5]);
  const px = pixels(new Rng(30), 1, 1);
  const logits = (m: Flamingo) => E.noGrad(() => m.forward({ inputIds: ids, visionX: px })).f32;
  const saved = (): { m: Flamingo; dir: string } => {
    const m = new Flamingo(TINY, 31);
    openGates(m);
    const dir = mkdtempSync(join(tmpdir(), 'flamingo-quant-'));
    saveFlamingo(m, dir);
    return { m, dir };
  };

  test('quantising at load time equals quantising in memory; int8 saves as I8 + .q8_scales and reloads as is', () => {
    const { m, dir } = saved();
    for (const dtype of ['bf16', 'int8'] as const) {
      const loaded = loadFlamingo(dir, 'weights.safetensors', { dtype });
      assert.equal(storedDType(loaded), dtype);
      m.setTrainingMode('none');
      const ref = new Flamingo(TINY, 31);
      openGates(ref);
      ref.setTrainingMode('none');
      quantizeFrozen(ref, dtype);
      assert.deepEqual(Array.from(logits(loaded)), Array.from(logits(ref)), `${dtype}: load-time packing`);
      // save the packed model and reload it without re-quantising
      const dir2 = mkdtempSync(join(tmpdir(), 'flamingo-quant-saved-'));
      saveFlamingo(loaded, dir2);
      const f = readSafetensors(join(dir2, 'weights.safetensors'));
      assert.equal(f.metadata.weight_dtype, dtype);
      const w = 'lang_encoder.model.layers.0.mlp.up_proj.weight';
      assert.equal(f.entry(w).dtype, dtype === 'int8' ? 'I8' : 'BF16');
      if (dtype === 'int8') {
        assert.deepEqual(f.entry(w + '.q8_scales').shape, [TINY.lm.intermediate_size, TINY.lm.hidden_size / 32]);
        assert.equal(f.metadata.q8_block, '32');
      }
      assert.equal(f.entry('lang_encoder.model.embed_tokens.weight').dtype, 'F32');
      const again = loadFlamingo(dir2);
      assert.equal(storedDType(again), dtype);
      const a = new Map(again.namedParameters());
      for (const [name, t] of loaded.namedParameters()) {
        const u = a.get(name)!;
        if (t.packed) assert.deepEqual(dequantize(u.packed!), dequantize(t.packed), name);
        else assert.deepEqual(u.f32, t.f32, name);
      }
      assert.deepEqual(Array.from(logits(again)), Array.from(logits(loaded)), `${dtype}: reload`);
      if (dtype === 'int8') {
        // an int8 file loads as fp32 (dequantised) but not as bf16 (that would round twice)
        const f32 = loadFlamingo(dir2, 'weights.safetensors', { dtype: 'fp32' });
        assert.equal(storedDType(f32), 'fp32');
        const up = f32.namedParameters().find(([n]) => n === w)![1];
        assert.deepEqual(up.f32, dequantize(loaded.namedParameters().find(([n]) => n === w)![1].packed!));
        assert.throws(() => loadFlamingo(dir2, 'weights.safetensors', { dtype: 'bf16' }), /stored as int8; load it as int8 or fp32/);
      }
    }
  });

  test('a BF16 checkpoint loads into bf16 storage bit for bit, and into int8 through float32 rows', () => {
    const { m, dir } = saved();
    const tensors: Record<string, TensorToWrite> = {};
    for (const [n, t] of m.namedParameters()) tensors[n] = { dtype: 'BF16', shape: [...t.shape], data: t.f32 };
    writeSafetensors(join(dir, 'bf16.safetensors'), tensors);
    const b = loadFlamingo(dir, 'bf16.safetensors', { dtype: 'bf16' });
    const w = 'vision_encoder.transformer.resblocks.0.mlp.c_fc.weight';
    const src = m.namedParameters().find(([n]) => n.endsWith('mlp.c_fc.weight'))![1];
    const got = b.namedParameters().find(([n]) => n.endsWith('mlp.c_fc.weight'))![1];
    assert.ok(got.packed?.kind === 'bf16', w);
    assert.deepEqual(got.packed.bits, Uint16Array.from(src.f32, toBf16Bits));
    const q = loadFlamingo(dir, 'bf16.safetensors', { dtype: 'int8' });
    const gq = q.namedParameters().find(([n]) => n.endsWith('mlp.c_fc.weight'))![1];
    assert.deepEqual(gq.packed, quantize(dequantize(got.packed), got.packed.rows, got.packed.cols, 'int8'));
    assert.throws(() => loadFlamingo(dir, 'bf16.safetensors', { dtype: 'fp8' as never }), /dtype must be one of fp32, bf16, int8/);
  });

  test('training load keeps the trainable parts float32; a missing scale tensor is named', () => {
    const { dir } = saved();
    const t = loadFlamingo(dir, 'weights.safetensors', { dtype: 'int8', train: true });
    for (const [name, p] of t.trainableParameters()) assert.equal(p.dtype, 'float32', name);
    assert.ok(t.namedParameters().some(([n, p]) => n.startsWith('vision_encoder.') && p.dtype === 'int8'));
    const dir2 = mkdtempSync(join(tmpdir(), 'flamingo-quant-bad-'));
    saveFlamingo(loadFlamingo(dir, 'weights.safetensors', { dtype: 'int8' }), dir2);
    const f = readSafetensors(join(dir2, 'weights.safetensors'));
    const tensors: Record<string, TensorToWrite> = {};
    for (const e of f.entries()) {
      if (e.name === 'lang_encoder.lm_head.weight.q8_scales') continue;
      tensors[e.name] = { dtype: e.dtype, shape: e.shape, data: e.dtype === 'I8' ? new Int8Array(f.bytes(e.name).slice().buffer) : f.float32(e.name) };
    }
    writeSafetensors(join(dir2, 'weights.safetensors'), tensors, f.metadata);
    copyFileSync(join(dir, 'config.json'), join(dir2, 'config.json'));
    assert.throws(() => loadFlamingo(dir2), /'lang_encoder\.lm_head\.weight' is int8 but 'lang_encoder\.lm_head\.weight\.q8_scales' is missing/);
  });
});

describe('verify in low precision', () => {
  const PARITY = new URL('./fixtures/shared/parity/', import.meta.url).pathname;

  test('lowPrecisionStats: cosine and argmax agreement over the selected rows', () => {
    const want = Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]);
    const got = Float32Array.from([1, 0, 0, 0, 0.5, 1, 9, 9, 9]);
    const st = lowPrecisionStats(got, want, 3, (r) => r < 2);
    assert.equal(st.rows, 2);
    assert.equal(st.top1, 0.5);
    assert.ok(Math.abs(st.cosine - 1.5 / Math.sqrt(2 * 2.25)) < 1e-12);
  });

  test('flamingo verify --dtype int8 --json: one line per case with dtype, logits_cosine, top1_agreement', async () => {
    const lines: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => { lines.push(chunk); return true; }) as typeof process.stdout.write;
    let code: number;
    try {
      code = await runVerify(['--dtype', 'int8', '--json', join(PARITY, 'flamingo_logits'), join(PARITY, 'flamingo_generate')]);
    } finally {
      process.stdout.write = write;
    }
    assert.equal(code, 0);
    const rows = lines.join('').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(rows.map((r) => r.case), ['flamingo_logits', 'flamingo_generate']);
    for (const r of rows) {
      assert.equal(r.dtype, 'int8');
      const c = r.logits_cosine as number;
      assert.ok(c >= 0.995 && c < 1, `cosine ${c}: quantisation changes the logits a little`);
      assert.ok((r.top1_agreement as number) >= 0.9);
      assert.equal(r.pass, true);
    }
    // the fp32 verdict is unchanged: no low-precision fields
    const r32 = runParityCase(join(PARITY, 'flamingo_logits'));
    assert.equal(r32.lowPrecision, undefined);
    assert.ok(r32.pass);
    await assert.rejects(runVerify(['--dtype', 'fp8', PARITY]), /--dtype must be one of fp32, bf16, int8/);
  });
});

describe('--dtype on the commands', () => {
  test('the bundled model loads packed for generation and still answers; a bad --dtype is a usage error', async () => {
    const errs: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => { errs.push(chunk); return true; }) as typeof process.stderr.write;
    let fp: ReturnType<typeof loadPretrained>;
    let q: ReturnType<typeof loadPretrained>;
    try {
      fp = loadPretrained(BUNDLED_MODEL_DIR);
      q = loadPretrained(BUNDLED_MODEL_DIR, { dtype: 'int8' });
      logWeights(q.model, 'test');
      await assert.rejects(runGenerate(['--model', BUNDLED_MODEL_DIR, '--prompt', 'x', '--dtype', 'int4']), /--dtype must be one of fp32, bf16, int8, got "int4"/);
    } finally {
      process.stderr.write = write;
    }
    assert.ok(errs.some((l) => /weights int8 \(\d+ MB\); kernels /.test(l)), 'the dtype in use is logged');
    assert.equal(storedDType(fp.model), 'fp32');
    assert.equal(storedDType(q.model), 'int8');
    assert.ok(modelBytes(q.model) < 0.5 * modelBytes(fp.model));
    const ids = fp.processor.encodeText('The');
    const a = E.noGrad(() => fp.model.forward({ inputIds: new Tensor(Int32Array.from(ids), [1, ids.length]) })).f32;
    const b = E.noGrad(() => q.model.forward({ inputIds: new Tensor(Int32Array.from(ids), [1, ids.length]) })).f32;
    const st = lowPrecisionStats(b, a, q.model.config.lm.vocab_size);
    assert.ok(st.cosine > 0.99, `int8 logits cosine ${st.cosine}`);
  });
});

/** Packing a trainable weight is refused (the quantiser only ever packs frozen ones). */
function quantizeFrozenTrainable(m: Module): void {
  const t = m.namedParameters()[0]![1];
  t.pack(packMatrix(t.f32, t.shape[0]!, t.shape[1]!, 'int8'));
}

const TINY: FlamingoConfig & { lm: LMConfig } = {
  vision: { image_size: 16, patch_size: 8, width: 32, layers: 1, heads: 2, mlp_ratio: 2, output_dim: 8, act: 'quick_gelu', ln_eps: 1e-5, ln_post_on_tokens: true },
  resampler: { dim: 32, depth: 1, dim_head: 8, heads: 2, num_latents: 4, max_num_media: null, max_num_frames: null, ff_mult: 2, ln_eps: 1e-5 },
  xattn: { dim: 32, dim_visual: 32, dim_head: 8, heads: 2, ff_mult: 2, only_attend_immediate_media: true, ln_eps: 1e-5 },
  lm: { vocab_size: 40, hidden_size: 32, intermediate_size: 64, num_layers: 2, num_heads: 4, num_key_value_heads: 4, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, max_position_embeddings: 64 },
  flamingo: { cross_attn_every_n_layers: 1, media_token_id: 38, eoc_token_id: 39, pad_token_id: 0 },
};

