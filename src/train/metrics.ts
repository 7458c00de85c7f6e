/** Per-step metrics as JSONL (append-only, trimmed back to the checkpoint on resume) and a loss-curve SVG. */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { atomicWrite } from './checkpoint.ts';

export interface StepMetrics {
  step: number;
  loss: number;
  /** Unweighted loss of each dataset's batch this step. */
  losses: Record<string, number>;
  lr: number;
  grad_norm: number;
  tokens: number;
  images: number;
  step_ms: number;
  tokens_per_s: number;
  images_per_s: number;
}

export class MetricsLog {
  constructor(readonly file: string) {}

  /** Keep only records of steps ≤ upTo (a resumed run repeats nothing and loses nothing). */
  truncate(upTo: number): void {
    if (!existsSync(this.file)) return;
    const keep = this.read().filter((m) => m.step <= upTo);
    writeFileSync(this.file, keep.map((m) => JSON.stringify(m) + '\n').join(''));
  }

  append(m: StepMetrics): void {
    appendFileSync(this.file, JSON.stringify(m) + '\n');
  }

  read(): StepMetrics[] {
    if (!existsSync(this.file)) return [];
    const out: StepMetrics[] = [];
    for (const line of readFileSync(this.file, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as StepMetrics);
      } catch {
        // a line torn by a kill: ignore it
      }
    }
    return out;
  }
}

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceTicks(lo: number, hi: number, n: number): number[] {
  const span = hi - lo || 1;
  const raw = span / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) out.push(Number(v.toPrecision(6)));
  return out;
}

/** Loss against step: the total (weighted) loss and, when several, each dataset's loss. */
export function lossCurveSvg(metrics: StepMetrics[], title: string): string {
  const W = 720;
  const H = 400;
  const m = { l: 64, r: 150, t: 36, b: 48 };
  const series: { name: string; pts: [number, number][] }[] = [{ name: 'loss', pts: metrics.map((x) => [x.step, x.loss]) }];
  const names = [...new Set(metrics.flatMap((x) => Object.keys(x.losses ?? {})))];
  if (names.length > 1) for (const n of names) series.push({ name: n, pts: metrics.filter((x) => x.losses?.[n] !== undefined).map((x) => [x.step, x.losses[n]!]) });
  const all = series.flatMap((s) => s.pts).filter(([, y]) => Number.isFinite(y));
  const x0 = Math.min(0, ...all.map((p) => p[0]));
  const x1 = Math.max(1, ...all.map((p) => p[0]));
  const y0 = Math.min(...all.map((p) => p[1]), Infinity);
  const y1 = Math.max(...all.map((p) => p[1]), -Infinity);
  const ylo = Number.isFinite(y0) ? Math.max(0, y0 - 0.05 * (y1 - y0)) : 0;
  const yhi = Number.isFinite(y1) ? y1 + 0.05 * (y1 - y0 || 1) : 1;
  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
  const sy = (y: number) => H - m.b - ((y - ylo) / (yhi - ylo || 1)) * (H - m.t - m.b);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.l}" y="22" font-size="15">${esc(title)}</text>`,
    `<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`,
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 10}" text-anchor="middle">step</text>`,
  ];
  for (const t of niceTicks(x0, x1, 6)) parts.push(`<line x1="${sx(t)}" y1="${H - m.b}" x2="${sx(t)}" y2="${H - m.b + 4}" stroke="black"/><text x="${sx(t)}" y="${H - m.b + 17}" text-anchor="middle">${t}</text>`);
  for (const t of niceTicks(ylo, yhi, 6)) parts.push(`<line x1="${m.l - 4}" y1="${sy(t)}" x2="${W - m.r}" y2="${sy(t)}" stroke="#ddd"/><text x="${m.l - 7}" y="${sy(t) + 4}" text-anchor="end">${t}</text>`);
  series.forEach((s, i) => {
    const c = COLOURS[i % COLOURS.length]!;
    const d = s.pts.filter(([, y]) => Number.isFinite(y)).map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${c}" stroke-width="${i === 0 ? 2 : 1.2}" points="${d}"/>`);
    parts.push(`<line x1="${W - m.r + 12}" y1="${m.t + 10 + 18 * i}" x2="${W - m.r + 32}" y2="${m.t + 10 + 18 * i}" stroke="${c}" stroke-width="2"/><text x="${W - m.r + 38}" y="${m.t + 14 + 18 * i}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

export function writeLossCurve(file: string, metrics: StepMetrics[], title: string): void {
  atomicWrite(file, lossCurveSvg(metrics, title));
}
