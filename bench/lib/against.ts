/**
 * Side-by-side measurement: the project's bench and an external command that prints the same JSON
 * object (e.g. the PyTorch baseline) run alternately, each in a fresh process, for N pairs. Every
 * numeric figure both print is compared per pair as ours / theirs, and the median of those ratios is
 * the result: on a shared machine the load drifts between runs, so only ratios of back-to-back runs
 * mean anything.
 *
 * Pair i runs ours first when i is even and theirs first when it is odd (ABBA), so a load that
 * rises or falls steadily biases neither side.
 */
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { FlamingoError } from '../../src/errors.ts';

/** A run failed, printed no JSON object, or timed out. */
export class AgainstError extends FlamingoError {}

/** How to start one side: argv (no shell) or a shell command line. */
export type Command = { argv: readonly string[] } | { shell: string };

export interface PairOptions {
  ours: Command;
  theirs: Command;
  pairs: number;
  /** Kill a run after this many seconds (default 1800). */
  timeoutS?: number;
  /** Progress lines (stderr) — silent when absent. */
  log?: (line: string) => void;
  env?: NodeJS.ProcessEnv;
}

export interface RunRecord {
  side: 'ours' | 'theirs';
  pair: number;
  wall_s: number;
  /** 1-minute load average just before the run started. */
  load_before: number;
  result: Record<string, unknown>;
}

export interface FigureComparison {
  ours: number[];
  theirs: number[];
  /** ours / theirs per pair. */
  ratios: number[];
  median_ratio: number;
}

export interface PairsReport {
  date: string;
  pairs: number;
  ours_command: string;
  against: string;
  /** os.loadavg() (1, 5, 15 min) at start and end. */
  load_start: number[];
  load_end: number[];
  /** Figures both sides printed as finite numbers, by name. */
  figures: Record<string, FigureComparison>;
  runs: RunRecord[];
}

export function describe(c: Command): string {
  return 'shell' in c ? c.shell : c.argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The last line of stdout that parses as a JSON object. */
export function lastJsonObject(stdout: string): Record<string, unknown> | null {
  const lines = stdout.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const l = lines[i]!.trim();
    if (!l.startsWith('{')) continue;
    try {
      const v = JSON.parse(l) as unknown;
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch {
      // not JSON: keep looking upwards
    }
  }
  return null;
}

const OUTPUT_LIMIT = 16 << 20; // a bench prints one line; anything near this is a runaway command

/** Runs one command to completion; resolves with its last JSON object. */
export function runOnce(c: Command, timeoutS: number, env?: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const what = describe(c);
  return new Promise((resolve, reject) => {
    const child = 'shell' in c
      ? spawn('/bin/sh', ['-c', c.shell], { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env, detached: true })
      : spawn(c.argv[0]!, c.argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env, detached: true });
    let out = '';
    let err = '';
    let killedWhy = '';
    // detached: the command is a process group, so a shell's children are stopped with it
    const kill = (why: string) => {
      if (killedWhy) return;
      killedWhy = why;
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { child.kill('SIGKILL'); }
    };
    const timer = setTimeout(() => kill(`timed out after ${timeoutS} s`), timeoutS * 1000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.length > OUTPUT_LIMIT) kill(`printed more than ${OUTPUT_LIMIT >> 20} MiB`);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err = (err + d).slice(-4000); });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new AgainstError(`bench --against: cannot start '${what}': ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const tail = err.trim().split('\n').slice(-5).join('\n');
      if (killedWhy) return reject(new AgainstError(`bench --against: '${what}' ${killedWhy}`));
      if (code !== 0) return reject(new AgainstError(`bench --against: '${what}' exited with ${code ?? signal}${tail ? `:\n${tail}` : ''}`));
      const obj = lastJsonObject(out);
      if (!obj) return reject(new AgainstError(`bench --against: '${what}' printed no JSON object on a line of its own`));
      resolve(obj);
    });
  });
}

/** Numeric figures of one run (finite numbers only; nested values and strings are not figures). */
function figuresOf(r: Record<string, unknown>): Map<string, number> {
  const m = new Map<string, number>();
  for (const [k, v] of Object.entries(r)) if (typeof v === 'number' && Number.isFinite(v)) m.set(k, v);
  return m;
}

export function compare(runs: readonly RunRecord[], pairs: number): Record<string, FigureComparison> {
  const per = (side: 'ours' | 'theirs') => Array.from({ length: pairs }, (_, i) => figuresOf(runs.find((r) => r.side === side && r.pair === i)!.result));
  const ours = per('ours');
  const theirs = per('theirs');
  const names = [...ours[0]!.keys()].filter((k) => ours.every((m) => m.has(k)) && theirs.every((m) => m.has(k)));
  const out: Record<string, FigureComparison> = {};
  for (const k of names) {
    const a = ours.map((m) => m.get(k)!);
    const b = theirs.map((m) => m.get(k)!);
    const ratios = a.map((x, i) => x / b[i]!);
    out[k] = { ours: a, theirs: b, ratios, median_ratio: median(ratios) };
  }
  return out;
}

export async function runPairs(o: PairOptions): Promise<PairsReport> {
  if (!Number.isInteger(o.pairs) || o.pairs < 1 || o.pairs > 100) throw new AgainstError(`bench --against: --pairs must be an integer in [1, 100], got ${o.pairs}`);
  const timeoutS = o.timeoutS ?? 1800;
  const log = o.log ?? (() => {});
  const loadStart = loadavg();
  const runs: RunRecord[] = [];
  for (let pair = 0; pair < o.pairs; pair++) {
    const order: ('ours' | 'theirs')[] = pair % 2 === 0 ? ['ours', 'theirs'] : ['theirs', 'ours'];
    for (const side of order) {
      const load = loadavg()[0]!;
      const t0 = performance.now();
      const result = await runOnce(side === 'ours' ? o.ours : o.theirs, timeoutS, o.env);
      const wall = (performance.now() - t0) / 1000;
      runs.push({ side, pair, wall_s: wall, load_before: load, result });
      // the figures as they come, so an interrupted series still leaves its pairs in the log
      const figs = [...figuresOf(result)].map(([k, v]) => `${k}=${+v.toPrecision(6)}`).join(' ');
      log(`pair ${pair + 1}/${o.pairs} ${side}: ${wall.toFixed(1)} s (load ${load.toFixed(1)}) ${figs}`);
    }
  }
  const figures = compare(runs, o.pairs);
  return {
    date: new Date().toISOString(),
    pairs: o.pairs,
    ours_command: describe(o.ours),
    against: describe(o.theirs),
    load_start: loadStart,
    load_end: loadavg(),
    figures,
    runs,
  };
}

/** One line per figure: the median ratio and the per-pair ratios with both absolute values. */
export function formatReport(r: PairsReport): string {
  const lines = [`${r.pairs} alternating pairs, ratio = ours / theirs (load ${r.load_start.map((x) => x.toFixed(1)).join(' ')} → ${r.load_end.map((x) => x.toFixed(1)).join(' ')})`];
  for (const [k, f] of Object.entries(r.figures)) {
    const each = f.ratios.map((x, i) => `${x.toFixed(3)} (${fmt(f.ours[i]!)} / ${fmt(f.theirs[i]!)})`).join(', ');
    lines.push(`  ${k}: median ${f.median_ratio.toFixed(3)}x — ${each}`);
  }
  return lines.join('\n');
}

function fmt(x: number): string {
  return Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3);
}
