/**
 * Every op: finite-difference gradient check on both kernel sets, forward agreement between the
 * native and TypeScript kernels, and shape errors that name the op.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../src/engine/index.ts';
import { Tensor, intTensor } from '../src/engine/tensor.ts';
import { Rng } from '../src/engine/rng.ts';
import { withBackend } from '../src/engine/backend.ts';
import { gradcheck, kernelSets, randTensor } from './helpers/gradcheck.ts';

interface OpCase {
  name: string;
  make: (rng: Rng) => { f: (...xs: Tensor[]) => Tensor; inputs: Tensor[]; eps?: number; rtol?: number };
}

const u8 = (vals: number[]): Uint8Array => Uint8Array.from(vals);

const cases: OpCase[] = [
  { name: 'add (broadcast suffix)', make: (r) => ({ f: E.add, inputs: [randTensor(r, [3, 4]), randTensor(r, [4])] }) },
  { name: 'add (general broadcast)', make: (r) => ({ f: E.add, inputs: [randTensor(r, [2, 1, 3]), randTensor(r, [4, 1])] }) },
  { name: 'sub (prefix broadcast)', make: (r) => ({ f: E.sub, inputs: [randTensor(r, [3, 4]), randTensor(r, [3, 1])] }) },
  { name: 'mul (broadcast)', make: (r) => ({ f: E.mul, inputs: [randTensor(r, [2, 3, 4]), randTensor(r, [1, 3, 1])] }) },
  { name: 'mul (scalar factor, both orders)', make: (r) => ({ f: (x, s) => E.add(E.mul(x, s), E.mul(s, x)), inputs: [randTensor(r, [2, 3, 4]), randTensor(r, [])] }) },
  { name: 'mul (same tensor twice)', make: (r) => { const a = randTensor(r, [5]); return { f: (x) => E.mul(x, x), inputs: [a] }; } },
  { name: 'div', make: (r) => { const b = randTensor(r, [4]); b.f32.forEach((v, i) => { b.f32[i] = 1.5 + Math.abs(v); }); return { f: E.div, inputs: [randTensor(r, [3, 4]), b] }; } },
  { name: 'affine', make: (r) => ({ f: (x) => E.affine(x, 1.7, 0.3), inputs: [randTensor(r, [6])] }) },
  { name: 'clamp', make: (r) => { const a = randTensor(r, [13]); a.f32.forEach((v, i) => { a.f32[i] = Math.abs(Math.abs(v) - 0.5) < 0.05 ? v + 0.2 : v; }); return { f: (x) => E.clamp(x, -0.5, 0.5), inputs: [a] }; } },
  { name: 'exp', make: (r) => ({ f: E.exp, inputs: [randTensor(r, [6], 0.5)] }) },
  { name: 'log', make: (r) => { const a = randTensor(r, [6]); a.f32.forEach((v, i) => { a.f32[i] = 1 + Math.abs(v); }); return { f: E.log, inputs: [a] }; } },
  ...(['gelu', 'gelu_tanh', 'quick_gelu', 'silu', 'tanh', 'sigmoid'] as const).map((k) => ({
    name: `activation ${k}`, make: (r: Rng) => ({ f: (x: Tensor) => E.activation(k, x), inputs: [randTensor(r, [13])] }),
  })),
  { name: 'relu', make: (r) => { const a = randTensor(r, [13]); a.f32.forEach((v, i) => { a.f32[i] = v + Math.sign(v) * 0.1; }); return { f: E.relu, inputs: [a] }; } },
  { name: 'swiglu', make: (r) => ({ f: E.swiglu, inputs: [randTensor(r, [3, 5]), randTensor(r, [3, 5])] }) },
  { name: 'matmul', make: (r) => ({ f: (a, b) => E.matmul(a, b), inputs: [randTensor(r, [3, 4]), randTensor(r, [4, 5])] }) },
  { name: 'matmul transA', make: (r) => ({ f: (a, b) => E.matmul(a, b, true), inputs: [randTensor(r, [4, 3]), randTensor(r, [4, 5])] }) },
  { name: 'matmul transB', make: (r) => ({ f: (a, b) => E.matmul(a, b, false, true), inputs: [randTensor(r, [3, 4]), randTensor(r, [5, 4])] }) },
  { name: 'matmul transA transB batched', make: (r) => ({ f: (a, b) => E.matmul(a, b, true, true), inputs: [randTensor(r, [2, 4, 3]), randTensor(r, [2, 5, 4])] }) },
  { name: 'matmul batched × shared 2-D', make: (r) => ({ f: (a, b) => E.matmul(a, b), inputs: [randTensor(r, [2, 3, 4]), randTensor(r, [4, 5])] }) },
  { name: 'matmul batched transA × shared transB', make: (r) => ({ f: (a, b) => E.matmul(a, b, true, true), inputs: [randTensor(r, [2, 4, 3]), randTensor(r, [5, 4])] }) },
  { name: 'linear with bias', make: (r) => ({ f: (x, w, b) => E.linear(x, w, b), inputs: [randTensor(r, [2, 3, 4]), randTensor(r, [5, 4]), randTensor(r, [5])] }) },
  { name: 'linear no bias', make: (r) => ({ f: (x, w) => E.linear(x, w), inputs: [randTensor(r, [3, 4]), randTensor(r, [5, 4])] }) },
  { name: 'sum all', make: (r) => ({ f: (x) => E.sum(x), inputs: [randTensor(r, [3, 4])] }) },
  { name: 'sum axis', make: (r) => ({ f: (x) => E.sum(x, 1), inputs: [randTensor(r, [2, 3, 4])] }) },
  { name: 'mean axis keepdim', make: (r) => ({ f: (x) => E.mean(x, -1, true), inputs: [randTensor(r, [2, 3, 4])] }) },
  { name: 'softmax', make: (r) => ({ f: E.softmax, inputs: [randTensor(r, [3, 7])] }) },
  { name: 'logSoftmax', make: (r) => ({ f: E.logSoftmax, inputs: [randTensor(r, [3, 7])] }) },
  { name: 'crossEntropy mean with ignore', make: (r) => ({ f: (x) => E.crossEntropy(x, intTensor([2, -100, 0, 6], [4]), {}), inputs: [randTensor(r, [4, 7])] }) },
  { name: 'crossEntropy none', make: (r) => ({ f: (x) => E.crossEntropy(x, intTensor([1, 3, 5], [3]), { reduction: 'none', ignoreIndex: 3 }), inputs: [randTensor(r, [3, 6])] }) },
  { name: 'layerNorm affine', make: (r) => ({ f: (x, w, b) => E.layerNorm(x, w, b, 1e-5), inputs: [randTensor(r, [3, 8]), randTensor(r, [8]), randTensor(r, [8])] }) },
  { name: 'layerNorm no bias', make: (r) => ({ f: (x, w) => E.layerNorm(x, w, null, 1e-5), inputs: [randTensor(r, [3, 8]), randTensor(r, [8])] }) },
  { name: 'layerNorm no affine', make: (r) => ({ f: (x) => E.layerNorm(x, null, null, 1e-5), inputs: [randTensor(r, [3, 8])] }) },
  { name: 'rmsNorm', make: (r) => ({ f: (x, w) => E.rmsNorm(x, w, 1e-6), inputs: [randTensor(r, [3, 8]), randTensor(r, [8])] }) },
  { name: 'reshape', make: (r) => ({ f: (x) => E.mul(E.reshape(x, [4, -1]), E.reshape(x, [4, 3])), inputs: [randTensor(r, [2, 6])] }) },
  { name: 'permute', make: (r) => ({ f: (x) => E.permute(x, [2, 0, 1]), inputs: [randTensor(r, [2, 3, 4])] }) },
  { name: 'transpose', make: (r) => ({ f: (x) => E.transpose(x, 0, -1), inputs: [randTensor(r, [2, 3, 4])] }) },
  { name: 'concat', make: (r) => ({ f: (a, b) => E.concat([a, b, a], 1), inputs: [randTensor(r, [2, 3, 2]), randTensor(r, [2, 1, 2])] }) },
  { name: 'slice', make: (r) => ({ f: (x) => E.slice(x, 1, 1, 3), inputs: [randTensor(r, [2, 4, 3])] }) },
  { name: 'split', make: (r) => ({ f: (x) => { const [a, b] = E.split(x, [1, 3], -1); return E.concat([b!, a!], -1); }, inputs: [randTensor(r, [3, 4])] }) },
  { name: 'indexSelect (repeats)', make: (r) => ({ f: (x) => E.indexSelect(x, 1, intTensor([2, 0, 2])), inputs: [randTensor(r, [2, 3, 2])] }) },
  { name: 'embedding (repeated ids)', make: (r) => ({ f: (w) => E.embedding(w, intTensor([1, 3, 1, 0], [2, 2])), inputs: [randTensor(r, [5, 3])] }) },
  { name: 'maskedFill', make: (r) => ({ f: (x) => E.maskedFill(x, new Tensor(Int32Array.from([1, 0, 0, 1]), [1, 4]), -3), inputs: [randTensor(r, [3, 4])] }) },
  { name: 'broadcastTo', make: (r) => ({ f: (x) => E.broadcastTo(x, [2, 3, 4]), inputs: [randTensor(r, [3, 1])] }) },
  {
    name: 'attention (padding mask + causal offset)', make: (r) => ({
      f: (q, k, v) => E.attention(q, k, v, { mask: { data: u8([1, 1, 1, 0, 1, 1, 0, 1, 1, 1]), batchStride: 5, qStride: 0 }, causal: true, causalOffset: 2 }),
      inputs: [randTensor(r, [2, 2, 3, 4]), randTensor(r, [2, 2, 5, 4]), randTensor(r, [2, 2, 5, 3])],
    }),
  },
  {
    name: 'attention (per-query mask, fully masked row → zeros)', make: (r) => ({
      f: (q, k, v) => E.attention(q, k, v, { mask: { data: u8([0, 0, 0, 1, 1, 0, 0, 1, 1]), batchStride: 0, qStride: 3 } }),
      inputs: [randTensor(r, [1, 2, 3, 4]), randTensor(r, [1, 2, 3, 4]), randTensor(r, [1, 2, 3, 4])],
    }),
  },
  {
    name: 'attention (fully masked row → uniform)', make: (r) => ({
      f: (q, k, v) => E.attention(q, k, v, { mask: { data: u8([0, 0, 0, 1, 1, 0]), batchStride: 0, qStride: 3 }, uniformIfFullyMasked: true, scale: 0.7 }),
      inputs: [randTensor(r, [1, 1, 2, 4]), randTensor(r, [1, 1, 3, 4]), randTensor(r, [1, 1, 3, 2])],
    }),
  },
  {
    name: 'attention (ALiBi slopes + padding mask + causal offset)', make: (r) => ({
      f: (q, k, v, sl) => E.attention(q, k, v, { mask: { data: u8([1, 1, 1, 0, 1, 0, 1, 1, 1, 1]), batchStride: 5, qStride: 0 }, causal: true, causalOffset: 2, alibiSlopes: sl }),
      inputs: [randTensor(r, [2, 3, 3, 4]), randTensor(r, [2, 3, 5, 4]), randTensor(r, [2, 3, 5, 3]), randTensor(r, [3])],
    }),
  },
  { name: 'rope', make: (r) => ({ f: (x) => E.rope(x, intTensor([0, 1, 5, 2, 0, 9], [2, 3]), 10000), inputs: [randTensor(r, [2, 3, 2, 6])] }) },
  { name: 'patchEmbed', make: (r) => ({ f: E.patchEmbed, inputs: [randTensor(r, [2, 3, 4, 6]), randTensor(r, [5, 3, 2, 2])] }) },
  {
    name: 'dropout (fixed mask via seed)', make: (r) => {
      return { f: (x) => E.dropout(x, 0.3, new Rng(7), true), inputs: [randTensor(r, [20])] };
    },
  },
];

for (const { name: kname, k } of kernelSets()) {
  describe(`op gradients (${kname} kernels)`, () => {
    for (const c of cases) {
      test(c.name, () => {
        withBackend(k, () => {
          const { f, inputs, eps, rtol } = c.make(new Rng(c.name.length * 31 + 5));
          gradcheck(f, inputs, { eps, rtol });
        });
      });
    }
  });
}

test('native and TypeScript kernels agree on every op forward', (t) => {
  const sets = kernelSets();
  if (sets.length < 2) { t.skip('native addon unavailable'); return; }
  for (const c of cases) {
    const outs = sets.map(({ k }) => withBackend(k, () => E.noGrad(() => {
      const { f, inputs } = c.make(new Rng(c.name.length * 31 + 5));
      return f(...inputs).f32;
    })));
    const [a, b] = outs as [Float32Array, Float32Array];
    assert.equal(a.length, b.length, c.name);
    for (let i = 0; i < a.length; i++) {
      assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-5 + 1e-5 * Math.abs(a[i]!), `${c.name}: element ${i}: ${a[i]} vs ${b[i]}`);
    }
  }
});

describe('op semantics', () => {
  test('attention: fully masked query rows give zeros, or the mean of V when uniform', () => {
    const r = new Rng(3);
    const q = randTensor(r, [1, 1, 1, 4], 1, false);
    const k = randTensor(r, [1, 1, 3, 4], 1, false);
    const v = randTensor(r, [1, 1, 3, 2], 1, false);
    const mask = { data: u8([0, 0, 0]), batchStride: 0, qStride: 0 };
    assert.deepEqual([...E.attention(q, k, v, { mask }).f32], [0, 0]);
    const u = E.attention(q, k, v, { mask, uniformIfFullyMasked: true }).f32;
    for (let d = 0; d < 2; d++) {
      const m = (v.f32[d]! + v.f32[2 + d]! + v.f32[4 + d]!) / 3;
      assert.ok(Math.abs(u[d]! - m) < 1e-6);
    }
  });

  test('ALiBi: scores get −slope_h·(i + offset − j), checked against explicit attention', () => {
    const r = new Rng(3);
    const [B, H, Lq, Lk, D] = [1, 2, 2, 4, 3];
    const q = randTensor(r, [B, H, Lq, D]), k = randTensor(r, [B, H, Lk, D]), v = randTensor(r, [B, H, Lk, 2]);
    const slopes = new Tensor(Float32Array.from([0.5, 0.125]), [H]);
    const got = E.attention(q, k, v, { causal: true, causalOffset: 2, alibiSlopes: slopes }).f32;
    // reference: explicit softmax of scale·q·k − slope·(i + 2 − j) over j ≤ i + 2
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Lq; i++) {
        const s: number[] = [];
        for (let j = 0; j <= i + 2; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q.f32[(h * Lq + i) * D + d]! * k.f32[(h * Lk + j) * D + d]!;
          s.push(dot / Math.sqrt(D) - slopes.f32[h]! * (i + 2 - j));
        }
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let c = 0; c < 2; c++) {
          let o = 0;
          for (let j = 0; j < e.length; j++) o += (e[j]! / z) * v.f32[(h * Lk + j) * 2 + c]!;
          assert.ok(Math.abs(o - got[(h * Lq + i) * 2 + c]!) < 1e-5, `h${h} i${i} c${c}: ${o} vs ${got[(h * Lq + i) * 2 + c]}`);
        }
      }
    }
    const without = E.attention(q, k, v, { causal: true, causalOffset: 2 }).f32;
    assert.ok(got.some((x, i) => Math.abs(x - without[i]!) > 1e-3), 'the bias changes the output');
    assert.throws(() => E.attention(q, k, v, { alibiSlopes: new Tensor(new Float32Array(3), [3]) }), /alibiSlopes \[3\] must be \(2\)/);
  });

  test('causal attention: a query never sees future keys', () => {
    const r = new Rng(4);
    const q = randTensor(r, [1, 1, 3, 4], 1, false);
    const k = randTensor(r, [1, 1, 3, 4], 1, false);
    const v = randTensor(r, [1, 1, 3, 2], 1, false);
    const a = E.attention(q, k, v, { causal: true }).f32;
    const v2 = new Tensor(v.f32.slice(), v.shape);
    v2.f32[4] = 100; // change the last key's value: only the last query may change
    const b = E.attention(q, k, v2, { causal: true }).f32;
    assert.deepEqual([...a.subarray(0, 4)], [...b.subarray(0, 4)]);
    assert.notEqual(a[4], b[4]);
  });

  test('reshape is a view that shares the buffer', () => {
    const x = E.fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
    const y = E.reshape(x, [3, 2]);
    assert.equal(y.data, x.data);
  });

  test('noGrad records nothing and frozen parameters get no gradient', () => {
    const r = new Rng(5);
    const w = randTensor(r, [3, 3]);
    const frozen = randTensor(r, [3, 3], 1, false);
    const x = randTensor(r, [2, 3], 1, false);
    const y = E.noGrad(() => E.linear(x, w));
    assert.equal(y.node, null);
    assert.equal(y.requiresGrad, false);
    const z = E.linear(E.linear(x, frozen), w);
    E.backward(E.sum(z));
    assert.ok(w.grad);
    assert.equal(frozen.grad, null);
  });

  test('gradients accumulate across backward calls', () => {
    const w = E.fromArray([1, 2, 3]);
    w.requiresGrad = true;
    E.backward(E.sum(E.mul(w, w)));
    E.backward(E.sum(E.mul(w, w)));
    assert.deepEqual([...w.grad!], [4, 8, 12]);
  });

  test('shape errors name the op and the shapes', () => {
    const a = E.zeros([2, 3]);
    const b = E.zeros([4, 5]);
    assert.throws(() => E.matmul(a, b), /matmul: inner dimensions differ: \[2, 3\] × \[4, 5\]/);
    assert.throws(() => E.add(a, b), /add: shapes \[2, 3\] and \[4, 5\] cannot be broadcast/);
    assert.throws(() => E.linear(a, b), /linear: input \[2, 3\] does not end in in_features=5/);
    assert.throws(() => E.layerNorm(a, E.zeros([4]), null), /layer_norm: weight \[4\]/);
    assert.throws(() => E.embedding(b, intTensor([7])), /embedding: token id 7 .* outside the vocabulary \[0, 4\)/);
    assert.throws(() => E.crossEntropy(a, intTensor([0, 3])), /cross_entropy: target 3 at row 1/);
    assert.throws(() => E.reshape(a, [4, 2]), /reshape: cannot reshape \[2, 3\]/);
    assert.throws(() => E.attention(a, a, a), /attention: expects 4-D/);
    assert.throws(() => E.crossEntropy(E.zeros([2, 3]), E.zeros([2])), /expected an int32 tensor/);
  });
});

test('gradients through add/reshape with a shared output gradient; leaves get private buffers', () => {
  // loss = Σ (p + reshape(q)) + Σ 3p with p = 2x, q = 5y: add hands the same buffer to p and to reshape(q)
  // and p gets a second contribution, in either order of the two terms. (Whether the second contribution
  // would reach q depends on node order; the accumulateGrad test below pins the copy-on-write itself.)
  for (const order of ['shared first', 'shared last']) {
    const x = new Tensor(new Float32Array([1, 2, 3, 4]), [2, 2], true);
    const y = new Tensor(new Float32Array([1, 1, 1, 1]), [4], true);
    const p = E.scale(x, 2);
    const q = E.reshape(E.scale(y, 5), [2, 2]);
    const shared = E.sum(E.add(p, q));
    const own = E.sum(E.scale(p, 3));
    E.backward(order === 'shared first' ? E.add(shared, own) : E.add(own, shared));
    assert.deepEqual(Array.from(x.grad!), [8, 8, 8, 8], order);
    assert.deepEqual(Array.from(y.grad!), [5, 5, 5, 5], order);
  }
  // leaves own their gradient buffers (optimizers write into them)
  const z = new Tensor(new Float32Array([1, 2]), [2], true);
  const w = new Tensor(new Float32Array([3, 4]), [2], true);
  E.backward(E.sum(E.add(z, w)));
  assert.notEqual(z.grad, w.grad);
  z.grad![0] = 100;
  assert.equal(w.grad![0], 1);
});

test('accumulateGrad: a borrowed gradient is never written; the second contribution goes to a copy', async () => {
  const { accumulateGrad, writableGrad } = await import('../src/engine/autograd.ts');
  const inter = () => {
    const t = new Tensor(new Float32Array(3), [3], true);
    t.node = { op: 'test', inputs: [], backward: () => {} }; // an intermediate (has a node)
    return t;
  };
  const a = inter(), b = inter(), c = inter();
  const g = new Float32Array([1, 2, 3]);
  accumulateGrad(a, g, false);
  accumulateGrad(b, g, false);
  accumulateGrad(c, g, false);
  assert.equal(a.grad, g, 'borrowed without a copy');
  accumulateGrad(a, new Float32Array([10, 10, 10]));
  assert.deepEqual(Array.from(a.grad!), [11, 12, 13]);
  assert.deepEqual(Array.from(g), [1, 2, 3], 'the shared buffer is untouched');
  assert.deepEqual(Array.from(b.grad!), [1, 2, 3]);
  const w = writableGrad(c);
  assert.ok(!w.fresh && w.buf !== g, 'in-place writers get a copy');
  w.buf[0] = 7;
  assert.deepEqual(Array.from(g), [1, 2, 3]);
});

test('add / mul with a long repeated suffix (kernel per block) equal the elementwise loop exactly, gradients too', () => {
  for (const { name, k } of kernelSets()) {
    withBackend(k, () => {
      const r = new Rng(7);
      const inner = 4100; // ≥ KERNEL_ROW: the per-block kernel path
      const a = randTensor(r, [3, 2, inner]);
      const b = randTensor(r, [2, inner]);
      b.requiresGrad = true;
      for (const [op, f] of [['add', (x: number, y: number) => x + y], ['mul', (x: number, y: number) => Math.fround(x * y)]] as const) {
        b.grad = null;
        const out = op === 'add' ? E.add(a, b) : E.mul(a, b);
        const A = a.f32, B = b.f32;
        for (let i = 0; i < A.length; i++) assert.equal(out.f32[i], Math.fround(f(A[i]!, B[i % B.length]!)), `${name} ${op} forward at ${i}`);
        E.backward(E.sum(out));
        // d/db of Σ out: block sums in block order (add) or of a (mul)
        const want = new Float32Array(B.length);
        for (let o = 0; o < A.length; o += B.length) for (let j = 0; j < B.length; j++) want[j] = want[j]! + (op === 'add' ? 1 : A[o + j]!);
        assert.deepEqual(Array.from(b.grad!), Array.from(want), `${name} ${op} gradient`);
      }
    });
  }
});

test('slices of one tensor add into one gradient buffer: overlapping, disjoint, long rows (kernel) and short rows', () => {
  for (const k of kernelSets()) {
    withBackend(k.k, () => {
      for (const inner of [3, 4096]) {
        const x = E.zeros([2, 4, inner]);
        x.f32.forEach((_, i) => { x.f32[i] = Math.sin(i); });
        x.requiresGrad = true;
        // rows 0..1 weighted 1, rows 1..3 weighted 2 (row 1 in both), row 3 also on its own weighted 3
        const loss = E.add(E.add(E.sum(E.slice(x, 1, 0, 2)), E.sum(E.scale(E.slice(x, 1, 1, 4), 2))), E.sum(E.scale(E.slice(x, 1, 3, 4), 3)));
        E.backward(loss);
        const want = [1, 3, 2, 5];
        for (let i = 0; i < x.size; i++) {
          const row = Math.floor(i / inner) % 4;
          assert.equal(x.grad![i], want[row], `${k.name} inner=${inner} element ${i}`);
        }
      }
    });
  }
});

test('scalar broadcast (a gate): forward and both gradients equal the per-element arithmetic, float32 sum order kept', () => {
  const n = 10007;
  const x = E.zeros([7, n / 7 | 0, 1]);
  x.f32.forEach((_, i) => { x.f32[i] = Math.sin(i) * 3; });
  x.requiresGrad = true;
  const gate = E.fromArray([0.37]);
  gate.requiresGrad = true;
  for (const op of [E.add, E.sub, E.mul, E.div] as const) {
    const y = op(x, gate);
    const X = x.f32;
    for (let i = 0; i < X.length; i++) {
      const v = Math.fround(0.37);
      const want = op === E.add ? X[i]! + v : op === E.sub ? X[i]! - v : op === E.mul ? X[i]! * v : X[i]! / v;
      assert.equal(y.f32[i], Math.fround(want));
    }
  }
  const loss = E.sum(E.mul(E.mul(x, gate), x));
  E.backward(loss);
  // d/dgate = Σ x², summed in float32 element by element
  let s = 0;
  for (let i = 0; i < x.size; i++) s = Math.fround(s + Math.fround(Math.fround(x.f32[i]! * x.f32[i]!)));
  assert.ok(Math.abs(gate.grad![0]! - s) <= 1e-6 * Math.abs(s), `${gate.grad![0]} vs ${s}`);
  for (let i = 0; i < x.size; i += 997) assert.ok(Math.abs(x.grad![i]! - 2 * 0.37 * x.f32[i]!) < 1e-5);
});
