/**
 * GEMM shapes of the models: `npm run bench -- gemm [--json] [--quick]`.
 *
 * Times `Kernels.gemm` (the engine's path, all pool threads) on the products that dominate the
 * `small` train step (from a shape log of one step: forward x·Wᵀ, input gradients g·W, weight
 * gradients gᵀ·x, per-head attention batches) and the openflamingo3b prefill (ViT over 3 images,
 * LM and cross-attention over 128 tokens, a packed-weight prefill panel). Best of a few rounds
 * (the host is shared). Compare the GEMM paths with `FLAMINGO_GEMM=openblas npm run bench -- gemm`.
 */
import { backend } from '../src/engine/backend.ts';

interface Shape {
  name: string;
  tA: boolean;
  tB: boolean;
  m: number;
  n: number;
  k: number;
  count?: number;
}

const SHAPES: Shape[] = [
  // small train step (tokens 4 × 256 = 1024; LM width 768, MLP 2048, vocab 32000; ViT 5 × 4 images × 197)
  { name: 'small lm mlp fwd', tA: false, tB: true, m: 1024, n: 2048, k: 768 },
  { name: 'small lm mlp dx', tA: false, tB: false, m: 1024, n: 768, k: 2048 },
  { name: 'small lm attn fwd', tA: false, tB: true, m: 1024, n: 768, k: 768 },
  { name: 'small lm dW', tA: true, tB: false, m: 768, n: 768, k: 1024 },
  { name: 'small lm head fwd', tA: false, tB: true, m: 1024, n: 32000, k: 768 },
  { name: 'small lm head dx', tA: false, tB: false, m: 1024, n: 768, k: 32000 },
  { name: 'small vit mlp fwd', tA: false, tB: true, m: 3940, n: 1536, k: 384 },
  { name: 'small vit mlp2 fwd', tA: false, tB: true, m: 3940, n: 384, k: 1536 },
  { name: 'small resampler dW', tA: true, tB: false, m: 768, n: 384, k: 5200 },
  { name: 'small attn scores ×48', tA: false, tB: true, m: 256, n: 256, k: 64, count: 48 },
  { name: 'small attn p·v ×48', tA: false, tB: false, m: 256, n: 64, k: 256, count: 48 },
  { name: 'small vit scores ×120', tA: false, tB: true, m: 197, n: 197, k: 64, count: 120 },
  // openflamingo3b prefill (3 images × 257 tokens, ViT-L width 1024; LM 128 tokens, width 2048)
  { name: '3b vit qkv', tA: false, tB: true, m: 771, n: 3072, k: 1024 },
  { name: '3b vit mlp', tA: false, tB: true, m: 771, n: 4096, k: 1024 },
  { name: '3b vit mlp2', tA: false, tB: true, m: 771, n: 1024, k: 4096 },
  { name: '3b lm proj', tA: false, tB: true, m: 128, n: 2048, k: 2048 },
  { name: '3b lm gate/up', tA: false, tB: true, m: 128, n: 5632, k: 2048 },
  { name: '3b lm down', tA: false, tB: true, m: 128, n: 2048, k: 5632 },
  { name: '3b lm head', tA: false, tB: true, m: 128, n: 50280, k: 2048 },
  { name: '3b packed-prefill panel', tA: false, tB: true, m: 128, n: 512, k: 2048 },
];

function fill(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
  return a;
}

export async function run(args: string[]): Promise<void> {
  const json = args.includes('--json');
  const rounds = args.includes('--quick') ? 2 : 5;
  const k = backend();
  const results: Record<string, number> = {};
  for (const s of SHAPES) {
    const count = s.count ?? 1;
    const a = fill(s.m * s.k * count), b = fill(s.k * s.n * count), c = new Float32Array(s.m * s.n * count);
    const batch = count > 1 ? { count, strideA: s.m * s.k, strideB: s.k * s.n, strideC: s.m * s.n } : undefined;
    const flop = 2 * s.m * s.n * s.k * count;
    const reps = Math.max(1, Math.round(2e9 / flop));
    k.gemm(s.tA, s.tB, s.m, s.n, s.k, 1, a, b, 0, c, batch);  // warm-up (packing buffers, pages)
    let best = Infinity;
    for (let r = 0; r < rounds; r++) {
      const t = performance.now();
      for (let i = 0; i < reps; i++) k.gemm(s.tA, s.tB, s.m, s.n, s.k, 1, a, b, 0, c, batch);
      best = Math.min(best, (performance.now() - t) / reps);
    }
    results[s.name] = Math.round((flop / best / 1e6) * 10) / 10;
    if (!json) {
      const shape = `${s.tA ? 'T' : 'N'}${s.tB ? 'T' : 'N'} ${s.m}×${s.n}×${s.k}${count > 1 ? ` ×${count}` : ''}`;
      process.stdout.write(`${s.name.padEnd(28)} ${shape.padEnd(26)} ${results[s.name]} GFLOP/s\n`);
    }
  }
  if (json) process.stdout.write(JSON.stringify({ backend: k.description, gemm_gflops: results }) + '\n');
  else process.stdout.write(`backend: ${k.description}\n`);
}
