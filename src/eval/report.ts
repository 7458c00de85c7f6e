/**
 * Evaluation reports: the summary JSON (per shot count: mean, std and every seed's score, as
 * OpenFlamingo's results file with np.nanmean / np.nanstd) and a score-vs-shots picture as a small,
 * dependency-free SVG (mean line, ±std error bars, each seed as a dot).
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export interface TrialRecord {
  readonly seed: number;
  readonly score: number;
  readonly details: Record<string, unknown>;
  readonly resultsFile: string;
  readonly items: number;
  readonly seconds: number;
  readonly itemsPerS: number;
}

export interface ShotSummary {
  readonly shots: number;
  readonly mean: number | null;
  readonly std: number | null;
  readonly trials: TrialRecord[];
}

export interface EvalSummary {
  readonly task: string;
  readonly dataset: string;
  readonly metric: string;
  readonly selection: string;
  readonly model: string;
  readonly items: number;
  readonly skipped: number;
  readonly settings: Record<string, unknown>;
  readonly results: ShotSummary[];
  readonly seconds: number;
  readonly itemsPerS: number;
}

/** np.nanmean / np.nanstd (population, ddof 0); null when every value is NaN. */
export function nanMeanStd(xs: readonly number[]): { mean: number | null; std: number | null } {
  const v = xs.filter((x) => !Number.isNaN(x));
  if (v.length === 0) return { mean: null, std: null };
  const mean = v.reduce((s, x) => s + x, 0) / v.length;
  const varc = v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length;
  return { mean, std: Math.sqrt(varc) };
}

export function summarizeShots(shots: number, trials: TrialRecord[]): ShotSummary {
  return { shots, ...nanMeanStd(trials.map((t) => t.score)), trials };
}

export function writeSummary(file: string, summary: EvalSummary): void {
  mkdirSync(dirname(file), { recursive: true });
  // NaN is not JSON: scores that are undefined (e.g. one-class ROC-AUC) are written as null.
  writeFileSync(file, `${JSON.stringify(summary, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/**
 * Score vs number of shots. Shots are placed at equal spacing (0, 4, 8, 16, 32 are the usual,
 * roughly geometric, values); the y range covers every seed's score and the error bars.
 */
export function scoreVsShotsSvg(summary: Pick<EvalSummary, 'results' | 'metric' | 'dataset' | 'selection'>): string {
  const W = 480;
  const H = 320;
  const m = { l: 60, r: 20, t: 40, b: 50 };
  const pts = summary.results;
  const values: number[] = [];
  for (const r of pts) {
    for (const t of r.trials) if (Number.isFinite(t.score)) values.push(t.score);
    if (r.mean !== null && r.std !== null) values.push(r.mean - r.std, r.mean + r.std);
  }
  let lo = values.length ? Math.min(...values) : 0;
  let hi = values.length ? Math.max(...values) : 1;
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.1;
  lo -= pad;
  hi += pad;
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const x = (i: number) => m.l + (pts.length === 1 ? pw / 2 : (i * pw) / (pts.length - 1));
  const y = (v: number) => m.t + ph - ((v - lo) / (hi - lo)) * ph;
  const f = (v: number) => v.toFixed(1);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${esc(`${summary.dataset}: ${summary.metric} vs shots (${summary.selection})`)}</text>`);
  out.push(`<line x1="${m.l}" y1="${m.t + ph}" x2="${m.l + pw}" y2="${m.t + ph}" stroke="black"/>`);
  out.push(`<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${m.t + ph}" stroke="black"/>`);
  for (const t of niceTicks(lo, hi)) {
    out.push(`<line x1="${m.l - 4}" y1="${f(y(t))}" x2="${m.l + pw}" y2="${f(y(t))}" stroke="#ddd"/>`);
    out.push(`<text x="${m.l - 6}" y="${f(y(t) + 4)}" text-anchor="end">${esc(String(t))}</text>`);
  }
  pts.forEach((r, i) => out.push(`<text x="${f(x(i))}" y="${m.t + ph + 18}" text-anchor="middle">${r.shots}</text>`));
  out.push(`<text x="${m.l + pw / 2}" y="${H - 10}" text-anchor="middle">shots</text>`);
  out.push(`<text x="16" y="${m.t + ph / 2}" text-anchor="middle" transform="rotate(-90 16 ${m.t + ph / 2})">${esc(summary.metric)}</text>`);
  const line = pts.map((r, i) => (r.mean === null ? null : `${f(x(i))},${f(y(r.mean))}`)).filter((s) => s !== null);
  if (line.length > 1) out.push(`<polyline points="${line.join(' ')}" fill="none" stroke="#1f77b4" stroke-width="2"/>`);
  pts.forEach((r, i) => {
    if (r.mean === null) return;
    if (r.std !== null && r.std > 0) {
      out.push(`<line x1="${f(x(i))}" y1="${f(y(r.mean - r.std))}" x2="${f(x(i))}" y2="${f(y(r.mean + r.std))}" stroke="#1f77b4"/>`);
    }
    out.push(`<circle cx="${f(x(i))}" cy="${f(y(r.mean))}" r="4" fill="#1f77b4"><title>${r.shots} shots: ${r.mean.toFixed(2)} ± ${(r.std ?? 0).toFixed(2)}</title></circle>`);
    for (const t of r.trials) if (Number.isFinite(t.score)) out.push(`<circle cx="${f(x(i) + 8)}" cy="${f(y(t.score))}" r="2" fill="#ff7f0e"><title>seed ${t.seed}: ${t.score.toFixed(2)}</title></circle>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
