/**
 * An ablation's outputs for people: the text table (the baseline's scores, every other variant's difference
 * from them) and the training-loss curves as SVG.
 */
import type { StepMetrics } from '../train/metrics.ts';
import { formatDuration } from '../io/progress.ts';
import type { SuiteReport } from './suite/index.ts';

export interface AblationRow {
  variant: string;
  /**
   * "task/shots" → score (%, CIDEr × 100), plus `train_loss` (mean of the last tenth of the steps) and `mean`;
   * with several training seeds, the mean of each over the seeds.
   */
  metrics: Record<string, number | null>;
  /** Wall time of all its trainings and evaluations. */
  wall_s: number;
  /** The training seeds. */
  seeds: number[];
  /** Each seed's own row, when there are several. */
  per_seed?: SeedRow[];
}

/** One training of a variant. */
export interface SeedRow {
  seed: number;
  metrics: Record<string, number | null>;
  wall_s: number;
}

/** A variant's row from its trainings: every metric averaged over the seeds (null where any seed has none). */
export function meanOverSeeds(variant: string, runs: readonly SeedRow[]): AblationRow {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))];
  const metrics: Record<string, number | null> = {};
  for (const k of keys) {
    const vs = runs.map((r) => r.metrics[k]);
    metrics[k] = vs.every((v): v is number => typeof v === 'number') ? round(vs.reduce((a, b) => a + b, 0) / vs.length, k === 'train_loss' ? 4 : 2) : null;
  }
  return {
    variant, metrics, wall_s: round(runs.reduce((a, r) => a + r.wall_s, 0), 1), seeds: runs.map((r) => r.seed),
    ...(runs.length > 1 ? { per_seed: runs.map((r) => ({ ...r })) } : {}),
  };
}

/** Sample standard deviation (0 for one value). */
function sd(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

/** A variant's row values: every task/shots score, their mean, and the mean loss of the last tenth of the steps. */
export function metricsOf(suite: SuiteReport, loss: StepMetrics[]): Record<string, number | null> {
  const m: Record<string, number | null> = {};
  const scores: number[] = [];
  for (const t of suite.tasks) {
    for (const [k, v] of Object.entries(t.shots)) {
      m[`${t.task}/${k}`] = v;
      if (v !== null) scores.push(v);
    }
  }
  m.mean = scores.length ? round(scores.reduce((a, b) => a + b, 0) / scores.length) : null;
  const tail = loss.slice(-Math.max(1, Math.floor(loss.length / 10)));
  m.train_loss = tail.length ? round(tail.reduce((a, x) => a + x.loss, 0) / tail.length, 4) : null;
  return m;
}

/** x rounded to d decimals (the table's and result files' precision). */
export const round = (x: number, d = 2): number => Number(x.toFixed(d));

/** The text table: one row per variant, the baseline's values and every other row's delta against them. */
export function ablationTable(rows: readonly AblationRow[], title: string): string {
  if (rows.length === 0) return `${title}\n(no variant finished)\n`;
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))];
  const order = (k: string) => (k === 'mean' ? 1 : k === 'train_loss' ? 2 : 0);
  keys.sort((a, b) => order(a) - order(b));
  const base = rows[0]!;
  const nameW = Math.max(8, ...rows.map((r) => r.variant.length));
  const colW = Math.max(9, ...keys.map((k) => short(k).length));
  const head = ['variant'.padEnd(nameW), ...keys.map((k) => short(k).padStart(colW)), 'wall'.padStart(8)].join(' ');
  const lines = [title, head, '-'.repeat(head.length)];
  rows.forEach((r, i) => {
    const cells = keys.map((k) => {
      const v = r.metrics[k];
      if (v === undefined || v === null) return 'n/a'.padStart(colW);
      if (i === 0) return fmt(v, k).padStart(colW);
      const b = base.metrics[k];
      return (b === undefined || b === null ? 'n/a' : `${v - b >= 0 ? '+' : ''}${fmt(v - b, k)}`).padStart(colW);
    });
    lines.push([r.variant.padEnd(nameW), ...cells, formatDuration(r.wall_s).padStart(8)].join(' '));
  });
  lines.push(`first row: scores (%, CIDEr x100; fast binding: accuracy at 1/3/5 shots per class); other rows: difference from it`);
  if (rows.some((r) => (r.per_seed?.length ?? 0) > 1)) lines.push('', ...seedLines(rows));
  return `${lines.join('\n')}\n`;
}

/**
 * The mean score of each seed, its mean ± standard deviation, and for the others the difference from the
 * baseline ± its standard error (sqrt(sd_a²/n_a + sd_b²/n_b)): a difference within about twice that is noise.
 */
function seedLines(rows: readonly AblationRow[]): string[] {
  const scores = (r: AblationRow) => (r.per_seed ?? [{ seed: r.seeds[0], metrics: r.metrics }]).map((s) => ({ seed: s.seed, mean: s.metrics.mean }));
  const base = rows[0]!;
  const bs = scores(base).flatMap((s) => (typeof s.mean === 'number' ? [s.mean] : []));
  const nameW = Math.max(8, ...rows.map((r) => r.variant.length));
  const out = ['mean score by training seed:'];
  rows.forEach((r, i) => {
    const ss = scores(r);
    const xs = ss.flatMap((s) => (typeof s.mean === 'number' ? [s.mean] : []));
    if (xs.length === 0) return;
    const m = xs.reduce((a, b) => a + b, 0) / xs.length;
    const each = ss.map((s) => `seed ${s.seed}: ${typeof s.mean === 'number' ? s.mean.toFixed(1) : 'n/a'}`).join(', ');
    let line = `${r.variant.padEnd(nameW)}  ${each}  ->  ${m.toFixed(1)} ± ${sd(xs).toFixed(1)} (n=${xs.length})`;
    if (i > 0 && bs.length > 0) {
      const bm = bs.reduce((a, b) => a + b, 0) / bs.length;
      const se = Math.sqrt(sd(xs) ** 2 / xs.length + sd(bs) ** 2 / bs.length);
      line += `, ${m - bm >= 0 ? '+' : ''}${(m - bm).toFixed(1)} ± ${se.toFixed(1)} against the baseline`;
    }
    out.push(line);
  });
  return out;
}

function short(k: string): string {
  return k.replace('fast_binding_seen', 'bind_seen').replace('fast_binding_heldout', 'bind_held').replace('captioning', 'cap');
}

function fmt(v: number, k: string): string {
  return k === 'train_loss' ? v.toFixed(3) : v.toFixed(1);
}

const CURVE_COLOURS = ['#000000', '#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f', '#aec7e8'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Training loss of every variant against step, one picture (a moving average over `window` steps). */
export function lossCurvesSvg(curves: readonly { name: string; metrics: StepMetrics[] }[], title: string, window = 10): string {
  const W = 820;
  const H = 460;
  const m = { l: 60, r: 230, t: 36, b: 44 };
  const series = curves.map((c) => {
    const pts: [number, number][] = [];
    let acc = 0;
    c.metrics.forEach((x, i) => {
      acc += x.loss;
      if (i >= window) acc -= c.metrics[i - window]!.loss;
      pts.push([x.step, acc / Math.min(i + 1, window)]);
    });
    return { name: c.name, pts: pts.filter(([, y]) => Number.isFinite(y)) };
  });
  const all = series.flatMap((s) => s.pts);
  const x1 = Math.max(1, ...all.map((p) => p[0]));
  const ylo = Math.min(...all.map((p) => p[1]), Infinity);
  const yhi = Math.max(...all.map((p) => p[1]), -Infinity);
  const [y0, y1] = Number.isFinite(ylo) ? [Math.max(0, ylo - 0.05 * (yhi - ylo)), yhi + 0.05 * (yhi - ylo || 1)] : [0, 1];
  const sx = (x: number) => m.l + (x / x1) * (W - m.l - m.r);
  const sy = (y: number) => H - m.b - ((y - y0) / (y1 - y0 || 1)) * (H - m.t - m.b);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.l}" y="22" font-size="15">${esc(title)}</text>`,
    `<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`,
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 8}" text-anchor="middle">step (loss: weighted sum over the datasets, mean of ${window} steps)</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const y = y0 + ((y1 - y0) * i) / 5;
    out.push(`<line x1="${m.l - 4}" y1="${sy(y).toFixed(1)}" x2="${W - m.r}" y2="${sy(y).toFixed(1)}" stroke="#ddd"/><text x="${m.l - 7}" y="${(sy(y) + 4).toFixed(1)}" text-anchor="end">${y.toFixed(2)}</text>`);
  }
  // step ticks: whole steps, each once (a short run has fewer than six)
  for (const x of new Set(Array.from({ length: 6 }, (_, i) => Math.round((x1 * i) / 5)))) {
    out.push(`<text x="${sx(x).toFixed(1)}" y="${H - m.b + 16}" text-anchor="middle">${x}</text>`);
  }
  series.forEach((s, i) => {
    const c = CURVE_COLOURS[i % CURVE_COLOURS.length]!;
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="${i === 0 ? 2.2 : 1.3}" points="${s.pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`);
    out.push(`<line x1="${W - m.r + 10}" y1="${m.t + 10 + 18 * i}" x2="${W - m.r + 30}" y2="${m.t + 10 + 18 * i}" stroke="${c}" stroke-width="2"/><text x="${W - m.r + 36}" y="${m.t + 14 + 18 * i}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
