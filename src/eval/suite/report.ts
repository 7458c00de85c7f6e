/** The built-in suite's outputs for people: a text table and one SVG of score-vs-shots panels. */
import { scoreVsShotsSvg } from '../report.ts';
import type { SuiteReport } from './plan.ts';

/** One score-vs-shots panel per task (report.ts's picture), tiled into a single SVG. */
export function suiteSvg(report: SuiteReport): string {
  const panels = report.tasks.filter((t) => !t.skipped && Object.keys(t.shots).length > 0).map((t) => {
    const results = Object.entries(t.shots).map(([k, v]) => ({
      shots: Number(k), mean: v, std: v === null ? null : 0,
      trials: v === null ? [] : [{ seed: 0, score: v, details: {}, resultsFile: '', items: t.items, seconds: 0, itemsPerS: 0 }],
    }));
    return scoreVsShotsSvg({ results, metric: t.metric, dataset: t.task, selection: t.task.startsWith('fast_binding') ? 'shots per class' : 'random demos' });
  });
  const W = 480;
  const H = 320;
  const cols = 2;
  const rows = Math.max(1, Math.ceil(panels.length / cols));
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${cols * W}" height="${rows * H + 30}" viewBox="0 0 ${cols * W} ${rows * H + 30}" font-family="sans-serif">`];
  out.push(`<rect width="${cols * W}" height="${rows * H + 30}" fill="white"/>`);
  out.push(`<text x="${(cols * W) / 2}" y="20" text-anchor="middle" font-size="15">${esc(`built-in few-shot suite: ${report.model}`)}</text>`);
  panels.forEach((p, i) => {
    // Nested <svg> keeps each panel's own coordinate system.
    out.push(p.trim().replace(/^<svg /, `<svg x="${(i % cols) * W}" y="${30 + Math.floor(i / cols) * H}" `));
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function suiteTable(report: SuiteReport): string {
  const allShots = [...new Set(report.tasks.flatMap((t) => Object.keys(t.shots).map(Number)))].sort((a, b) => a - b);
  const head = ['task'.padEnd(21), 'metric'.padEnd(13), 'items'.padStart(5), ...allShots.map((s) => `${s}-shot`.padStart(8))].join(' ');
  const lines = [`built-in few-shot suite — ${report.model} (scores in %, CIDEr x100; fast binding: shots per class)`, head, '-'.repeat(head.length)];
  for (const t of report.tasks) {
    const cells = allShots.map((s) => {
      const v = t.shots[String(s)];
      return (v === undefined ? '' : v === null ? 'n/a' : v.toFixed(1)).padStart(8);
    });
    lines.push([t.task.padEnd(21), t.metric.padEnd(13), String(t.items).padStart(5), ...cells].join(' ') + (t.skipped ? `  skipped: ${t.skipped}` : ''));
    // fast binding: one row per name inventory (the task's row is the generator's names)
    const invs = [...new Set(Object.values(t.by_inventory ?? {}).flatMap((r) => Object.keys(r)))].filter((i) => i !== 'generator');
    for (const inv of invs) {
      const row = allShots.map((s) => {
        const v = t.by_inventory?.[String(s)]?.[inv];
        return (v === undefined ? '' : v === null ? 'n/a' : v.toFixed(1)).padStart(8);
      });
      lines.push([`  names: ${inv}`.padEnd(21), ''.padEnd(13), String(t.items).padStart(5), ...row].join(' '));
    }
    for (const n of t.notes ?? []) lines.push(`  note: ${n}`);
  }
  lines.push(`${report.seconds.toFixed(1)} s`);
  return `${lines.join('\n')}\n`;
}
