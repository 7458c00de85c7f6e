/**
 * The train-step profile of `npm run bench -- model --profile`: runs steps under the engine's
 * Profiler with timed kernels, and adds what the engine cannot see itself: garbage collection (from
 * the `gc` performance entries), and page faults / kernel CPU time (getrusage: fresh pages of large
 * buffers are cleared by the kernel on first touch).
 */
import { PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { Profiler, profileKernels, withProfiler, type Phase } from '../../src/engine/profile.ts';
import { backend, withBackend } from '../../src/engine/backend.ts';
import { loadNativeAddon } from '../../src/engine/kernels/native.ts';

export interface StepProfile {
  steps: number;
  /** Per step (ms): wall time of each phase. */
  phases: Record<string, number>;
  /** Per step, by op kind, sorted by forward + backward time. */
  ops: { op: string; forward_ms: number; backward_ms: number; forward_calls: number; backward_calls: number }[];
  /** Per step, by phase/kernel (GEMM by size class), sorted by time. */
  kernels: { kernel: string; ms: number; calls: number; gflops?: number; gbps?: number }[];
  summary: {
    step_ms: number;
    gemm_ms: number;
    gemm_gflop: number;
    gemm_gflops: number;
    /** Packed (bf16 / int8) products: time and the weight bytes they streamed per second. */
    packed_ms: number;
    packed_gbps: number;
    other_kernels_ms: number;
    /** Step time outside every kernel: TypeScript loops in ops, buffer allocation, model code, GC. */
    outside_kernels_ms: number;
    gc_ms: number;
    gc_count: number;
    /** gc_ms split by V8's collection kind (minor = scavenge, major = mark-compact, incremental marking steps, weak callbacks). */
    gc_by_kind: Record<string, { ms: number; count: number }>;
    minor_page_faults: number;
    /** Kernel-mode CPU time (page clearing, mmap/munmap) summed over threads. */
    system_cpu_ms: number;
    user_cpu_ms: number;
    /** Native thread-pool jobs handed to the workers / run inline on the caller (null: TypeScript kernels). */
    pool_dispatches: number | null;
    pool_inline: number | null;
  };
}

/** The native pool's counters, or null when the kernels are not native (or the addon predates them). */
function poolStats(): { dispatched: number; inline: number } | null {
  if (backend().name !== 'native') return null;
  const a = loadNativeAddon();
  return typeof a.poolStats === 'function' ? a.poolStats() : null;
}

/** step(phase) runs one training step, calling phase() at each phase boundary. */
export type StepFn = (begin: (p: Phase) => void) => void;

/** `shapes`: GEMM time by exact shape (gemmShape) instead of by size class. */
export async function profileSteps(steps: number, step: StepFn, opts: { shapes?: boolean } = {}): Promise<StepProfile> {
  const prof = new Profiler();
  const gc: PerformanceEntry[] = [];
  const obs = new PerformanceObserver((list) => { gc.push(...list.getEntries()); });
  obs.observe({ entryTypes: ['gc'] });
  const phaseMs = new Map<string, number>();
  const timed = profileKernels(backend(), opts);
  const pool0 = poolStats();
  const ru0 = process.resourceUsage();
  const t0 = performance.now();
  withBackend(timed, () => withProfiler(prof, () => {
    for (let i = 0; i < steps; i++) {
      let cur: Phase | null = null;
      let since = 0;
      const begin = (p: Phase) => {
        const now = performance.now();
        if (cur) phaseMs.set(cur, (phaseMs.get(cur) ?? 0) + now - since);
        cur = p;
        since = now;
        prof.begin(p);
      };
      step(begin);
      begin('other');
    }
  }));
  const t1 = performance.now();
  const ru1 = process.resourceUsage();
  const pool1 = poolStats();
  await new Promise((r) => setTimeout(r, 100)); // gc entries are delivered later, on the event loop
  obs.disconnect();
  const inWindow = gc.filter((e) => e.startTime >= t0 && e.startTime <= t1);
  const per = (x: number) => x / steps;
  const ops = [...prof.ops].map(([op, o]) => ({ op, forward_ms: per(o.forward_ms), backward_ms: per(o.backward_ms), forward_calls: per(o.forward_calls), backward_calls: per(o.backward_calls) }))
    .sort((a, b) => b.forward_ms + b.backward_ms - a.forward_ms - a.backward_ms);
  const kernels = [...prof.kernels].map(([kernel, k]) => ({ kernel, ms: per(k.ms), calls: per(k.calls), ...(k.gflop !== undefined ? { gflops: k.gflop / (k.ms / 1000) } : {}), ...(k.gbyte !== undefined ? { gbps: k.gbyte / (k.ms / 1000) } : {}) }))
    .sort((a, b) => b.ms - a.ms);
  let gemmMs = 0, gemmGf = 0, packedMs = 0, packedGb = 0, otherMs = 0;
  for (const k of prof.kernels.values()) {
    if (k.gflop !== undefined) { gemmMs += k.ms; gemmGf += k.gflop; } else if (k.gbyte !== undefined) { packedMs += k.ms; packedGb += k.gbyte; } else otherMs += k.ms;
  }
  const stepMs = per(t1 - t0);
  phaseMs.delete('other');
  const kindName: Record<number, string> = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };
  const gcByKind: Record<string, { ms: number; count: number }> = {};
  for (const e of inWindow) {
    const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind ?? 0;
    const g = (gcByKind[kindName[kind] ?? `kind ${kind}`] ??= { ms: 0, count: 0 });
    g.ms += per(e.duration);
    g.count += per(1);
  }
  return {
    steps,
    phases: Object.fromEntries([...phaseMs].map(([k, v]) => [`${k}_ms`, per(v)])),
    ops,
    kernels,
    summary: {
      step_ms: stepMs,
      gemm_ms: per(gemmMs),
      gemm_gflop: per(gemmGf),
      gemm_gflops: gemmGf / (gemmMs / 1000),
      packed_ms: per(packedMs),
      packed_gbps: packedMs > 0 ? packedGb / (packedMs / 1000) : 0,
      other_kernels_ms: per(otherMs),
      outside_kernels_ms: stepMs - per(gemmMs + packedMs + otherMs),
      gc_ms: per(inWindow.reduce((s, e) => s + e.duration, 0)),
      gc_count: per(inWindow.length),
      gc_by_kind: gcByKind,
      minor_page_faults: per(ru1.minorPageFault - ru0.minorPageFault),
      system_cpu_ms: per((ru1.systemCPUTime - ru0.systemCPUTime) / 1000),
      user_cpu_ms: per((ru1.userCPUTime - ru0.userCPUTime) / 1000),
      pool_dispatches: pool0 && pool1 ? per(pool1.dispatched - pool0.dispatched) : null,
      pool_inline: pool0 && pool1 ? per(pool1.inline - pool0.inline) : null,
    },
  };
}

/** Human-readable tables (top rows) of a profile. */
export function formatProfile(p: StepProfile, top = 25): string {
  const s = p.summary;
  const pct = (x: number) => `${((100 * x) / s.step_ms).toFixed(1)}%`;
  const lines = [
    `profile over ${p.steps} step(s), per step: ${s.step_ms.toFixed(1)} ms (${Object.entries(p.phases).map(([k, v]) => `${k.replace(/_ms$/, '')} ${v.toFixed(1)}`).join(', ')})`,
    `  GEMM ${s.gemm_ms.toFixed(1)} ms (${pct(s.gemm_ms)}, ${s.gemm_gflops.toFixed(1)} GFLOP/s), packed products ${s.packed_ms.toFixed(1)} ms (${pct(s.packed_ms)}, ${s.packed_gbps.toFixed(1)} GB/s of weights), other kernels ${s.other_kernels_ms.toFixed(1)} ms (${pct(s.other_kernels_ms)}), outside kernels ${s.outside_kernels_ms.toFixed(1)} ms (${pct(s.outside_kernels_ms)})`,
    `  GC ${s.gc_ms.toFixed(1)} ms in ${s.gc_count.toFixed(1)} pauses (${pct(s.gc_ms)}${Object.entries(s.gc_by_kind).map(([k, g]) => `; ${k} ${g.ms.toFixed(1)} ms / ${g.count.toFixed(1)}`).join('')}); ${s.minor_page_faults.toFixed(0)} minor page faults, system CPU ${s.system_cpu_ms.toFixed(1)} ms, user CPU ${s.user_cpu_ms.toFixed(1)} ms`,
    `  native pool: ${s.pool_dispatches === null ? 'n/a' : `${s.pool_dispatches.toFixed(0)} jobs dispatched, ${s.pool_inline!.toFixed(0)} run inline`}`,
    '  op                      forward ms  backward ms   calls',
  ];
  for (const o of p.ops.slice(0, top)) {
    lines.push(`  ${o.op.padEnd(22)} ${o.forward_ms.toFixed(1).padStart(10)} ${o.backward_ms.toFixed(1).padStart(12)} ${o.forward_calls.toFixed(0).padStart(7)}`);
  }
  lines.push('  kernel                                   ms    calls  GFLOP/s (GB/s of packed weights)');
  for (const k of p.kernels.slice(0, top)) {
    const rate = k.gflops !== undefined ? k.gflops.toFixed(1).padStart(8) : k.gbps !== undefined ? `(${k.gbps.toFixed(1)} GB/s)`.padStart(14) : '';
    lines.push(`  ${k.kernel.padEnd(36)} ${k.ms.toFixed(1).padStart(8)} ${k.calls.toFixed(0).padStart(8)} ${rate}`);
  }
  return lines.join('\n');
}
