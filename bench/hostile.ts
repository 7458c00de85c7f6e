/**
 * `npm run bench -- hostile [--json]`: how fast, and in how much memory, hostile checkpoint files are refused
 * (issue 19 target: a clear error within 2 s and a peak RSS below 512 MB). Each file is read in its own child
 * process; reported per file: time from opening to the error (in the child), the child's peak RSS, and the error.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildHostileCheckpoints } from '../test/helpers/hostile-files.ts';
import { REPO, runNode } from '../test/helpers/child-usage.ts';

export async function run(args: string[]): Promise<void> {
  const json = args.includes('--json');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-hostile-'));
  try {
    const reader = path.join(REPO, 'test/helpers/read-weights.ts');
    // Baseline: the same child reading nothing (Node + tsx + the reader modules).
    const idle = runNode(reader, []);
    const rows = buildHostileCheckpoints(dir).map((c) => {
      const r = runNode(reader, [c.file]);
      const res = JSON.parse(r.stdout.trim() || '{}') as { ok?: boolean; name?: string; message?: string; ms?: number };
      return {
        case: c.name, file_bytes: fs.statSync(c.file).size, refused_ms: Number((res.ms ?? NaN).toFixed(1)),
        child_cpu_ms: Math.round(r.cpuMs), peak_rss_mib: Number(r.peakRssMiB.toFixed(1)), clear_error: res.ok === false && c.expect.test(res.message ?? ''),
        error: `${res.name}: ${res.message}`,
      };
    });
    const out = {
      bench: 'hostile', date: new Date().toISOString(), load_average_1m: Number(os.loadavg()[0]!.toFixed(1)),
      baseline_rss_mib: Number(idle.peakRssMiB.toFixed(1)), baseline_cpu_ms: Math.round(idle.cpuMs), cases: rows,
    };
    if (json) {
      process.stdout.write(JSON.stringify(out) + '\n');
      return;
    }
    process.stdout.write(`load ${out.load_average_1m}; child baseline (start-up, nothing read): ${out.baseline_rss_mib} MiB, ${out.baseline_cpu_ms} ms CPU\n`);
    process.stdout.write('case                       file bytes  refused in  child CPU  peak RSS\n');
    for (const r of rows) {
      process.stdout.write(`${r.case.padEnd(26)} ${String(r.file_bytes).padStart(9)} B  ${String(r.refused_ms).padStart(7)} ms  ${String(r.child_cpu_ms).padStart(6)} ms  ${String(r.peak_rss_mib).padStart(6)} MiB  ${r.clear_error ? 'ok' : 'UNEXPECTED'}\n`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
