/**
 * Prometheus text exposition (format 0.0.4) of the server's counters, gauges and latency histograms.
 * Written by hand: a few metric families, no dependency.
 */
import { InternalError } from '../errors.ts';

type Labels = Record<string, string>;

function key(labels: Labels): string {
  const parts = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

interface Family { help: string; type: 'counter' | 'gauge' | 'histogram' }

export class Metrics {
  private readonly families = new Map<string, Family>();
  private readonly values = new Map<string, Map<string, number>>();
  private readonly histograms = new Map<string, { buckets: number[]; series: Map<string, { counts: number[]; sum: number; count: number }> }>();
  private readonly gauges = new Map<string, () => number>();

  counter(name: string, help: string): void {
    this.families.set(name, { help, type: 'counter' });
    this.values.set(name, new Map());
  }

  /** A gauge read when /metrics is scraped. */
  gauge(name: string, help: string, read: () => number): void {
    this.families.set(name, { help, type: 'gauge' });
    this.gauges.set(name, read);
  }

  histogram(name: string, help: string, buckets: number[]): void {
    this.families.set(name, { help, type: 'histogram' });
    this.histograms.set(name, { buckets, series: new Map() });
  }

  inc(name: string, labels: Labels = {}, by = 1): void {
    const m = this.values.get(name);
    if (!m) throw new InternalError('serve/metrics inc', `metric ${name} is not a registered counter`);
    const k = key(labels);
    m.set(k, (m.get(k) ?? 0) + by);
  }

  observe(name: string, value: number, labels: Labels = {}): void {
    const h = this.histograms.get(name);
    if (!h) throw new InternalError('serve/metrics observe', `metric ${name} is not a registered histogram`);
    const k = key(labels);
    let s = h.series.get(k);
    if (!s) { s = { counts: new Array<number>(h.buckets.length).fill(0), sum: 0, count: 0 }; h.series.set(k, s); }
    h.buckets.forEach((b, i) => { if (value <= b) s.counts[i]!++; });
    s.sum += value;
    s.count++;
  }

  render(): string {
    const lines: string[] = [];
    for (const [name, f] of this.families) {
      lines.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`);
      if (f.type === 'counter') for (const [k, v] of this.values.get(name)!) lines.push(`${name}${k} ${v}`);
      if (f.type === 'gauge') lines.push(`${name} ${this.gauges.get(name)!()}`);
      if (f.type === 'histogram') {
        const h = this.histograms.get(name)!;
        for (const [k, s] of h.series) {
          const inner = k ? k.slice(1, -1) + ',' : '';
          h.buckets.forEach((b, i) => lines.push(`${name}_bucket{${inner}le="${b}"} ${s.counts[i]}`));
          lines.push(`${name}_bucket{${inner}le="+Inf"} ${s.count}`, `${name}_sum${k} ${s.sum}`, `${name}_count${k} ${s.count}`);
        }
      }
    }
    return lines.join('\n') + '\n';
  }
}
