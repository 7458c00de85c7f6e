/**
 * Run a TypeScript entry point (the CLI, or a script) in a child Node process and report its exit code, output,
 * wall time, CPU time and peak RSS (read from the child's own resource usage at exit, see report-usage.ts).
 * Used by the hostile-input tests to check that bad input fails fast, in bounded memory, with one clear line.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = join(REPO, 'src/cli/main.ts');
const PRELOAD = fileURLToPath(new URL('./report-usage.ts', import.meta.url));

export interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  wallMs: number;
  cpuMs: number;
  /** Peak resident set size of the child in MiB (NaN if it died before reporting). */
  peakRssMiB: number;
}

export interface ChildOptions {
  input?: string | Buffer;
  env?: Record<string, string>;
  /** Kill the child after this long (default 60 s): a hang fails the test instead of stalling the suite. */
  timeoutMs?: number;
  cwd?: string;
}

/** `node --import tsx <entry> ...args`, with the usage reporter preloaded. */
export function runNode(entry: string, args: string[], o: ChildOptions = {}): ChildRun {
  const dir = mkdtempSync(join(tmpdir(), 'child-usage-'));
  const usageFile = join(dir, 'usage.json');
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', PRELOAD, entry, ...args], {
    cwd: o.cwd ?? REPO,
    input: o.input,
    encoding: 'utf8',
    timeout: o.timeoutMs ?? 60_000,
    maxBuffer: 16 * 1024 * 1024,
    env: { ...process.env, ...o.env, FLAMINGO_TEST_USAGE_FILE: usageFile },
  });
  const wallMs = performance.now() - t0;
  let usage = { maxRssKiB: NaN, cpuMs: NaN };
  try { usage = JSON.parse(readFileSync(usageFile, 'utf8')); } catch { /* killed before exit */ }
  rmSync(dir, { recursive: true, force: true });
  return {
    code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', wallMs,
    cpuMs: usage.cpuMs, peakRssMiB: usage.maxRssKiB / 1024,
  };
}

/** The flamingo CLI with the given arguments. */
export function runCli(args: string[], o: ChildOptions = {}): ChildRun {
  return runNode(CLI, args, o);
}
