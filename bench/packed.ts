/**
 * `npm run bench -- packed [--json] [--rows 1,128] [--shape 2048x5632]`
 *
 * The packed-weight products alone: for each (rows, out × in) shape, the time of x · Wᵀ with W in
 * fp32 (the engine's gemm), bf16 and int8 (packedLinear), the weight bytes streamed per second and
 * the GFLOP/s. Calls alternate between the dtypes so a busy machine slows all of them alike.
 */
import { Rng } from '../src/engine/rng.ts';
import { backend } from '../src/engine/backend.ts';
import { packMatrix } from '../src/nn/quantize.ts';
import { packedBytes } from '../src/engine/quant.ts';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function run(args: string[]): Promise<void> {
  const json = args.includes('--json');
  const arg = (flag: string, def: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1]! : def);
  const rowsList = arg('--rows', '1,128').split(',').map(Number);
  const shapes = arg('--shape', '2048x2048,2048x5632,5632x2048').split(',').map((s) => s.split('x').map(Number) as [number, number]);
  const iters = Number(arg('--iters', '7'));
  const k = backend();
  const rng = new Rng(0);
  for (const [outF, inF] of shapes) {
    const W = new Float32Array(outF * inF);
    rng.fillNormal(W, 0, 0.02);
    const packed = { bf16: packMatrix(W, outF, inF, 'bf16'), int8: packMatrix(W, outF, inF, 'int8') };
    for (const rows of rowsList) {
      const x = new Float32Array(rows * inF);
      rng.fillNormal(x);
      const out = new Float32Array(rows * outF);
      const times: Record<string, number[]> = { fp32: [], bf16: [], int8: [] };
      for (let i = 0; i < iters + 1; i++) {
        for (const dt of ['fp32', 'bf16', 'int8'] as const) {
          const s = performance.now();
          if (dt === 'fp32') k.gemm(false, true, rows, outF, inF, 1, x, W, 0, out);
          else k.packedLinear(x, packed[dt], out, rows, 0);
          if (i > 0) times[dt]!.push(performance.now() - s);
        }
      }
      for (const dt of ['fp32', 'bf16', 'int8'] as const) {
        const ms = median(times[dt]!);
        const bytes = dt === 'fp32' ? W.byteLength : packedBytes(packed[dt]);
        const r = {
          rows, out: outF, in: inF, dtype: dt, ms, weight_gb_per_s: bytes / (ms / 1000) / 1e9,
          gflops: (2 * rows * outF * inF) / (ms / 1000) / 1e9, kernel_backend: k.description,
        };
        if (json) process.stdout.write(JSON.stringify(r) + '\n');
        else process.stdout.write(`${rows}×${inF}→${outF} ${dt}: ${ms.toFixed(2)} ms, ${r.weight_gb_per_s.toFixed(1)} GB/s of weights, ${r.gflops.toFixed(1)} GFLOP/s\n`);
      }
    }
  }
}
