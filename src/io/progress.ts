/**
 * The one progress line of every long command (training steps, evaluation queries) on stderr:
 * `label done/total [bar] detail | elapsed ETA eta`. On a terminal the line is redrawn in place with \r
 * and ended by done(); otherwise (logs, CI) a full line is printed every `every` steps and at the end.
 */
export interface ProgressOptions {
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Lines printed every this many steps when not a terminal (default: about ten lines per run). */
  every?: number;
  enabled?: boolean;
  /** Steps already done before this run (a resumed training run): the ETA counts only this run's rate. */
  startStep?: number;
}

/** h:mm:ss or m:ss; '--:--' for an unknown (NaN, infinite, negative) duration. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** A rate for a progress line: 1.5k, 150, 15.0. */
export function formatRate(x: number): string {
  return x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(x >= 100 ? 0 : 1);
}

export class ProgressBar {
  private readonly stream: NonNullable<ProgressOptions['stream']>;
  private readonly tty: boolean;
  private readonly every: number;
  private readonly enabled: boolean;
  private readonly startStep: number;
  private readonly t0 = performance.now();
  private lastLen = 0;
  private open = false;

  constructor(readonly label: string, readonly total: number, opts: ProgressOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = this.stream.isTTY === true;
    this.every = Math.max(1, opts.every ?? Math.ceil(total / 10));
    this.enabled = opts.enabled ?? true;
    this.startStep = opts.startStep ?? 0;
  }

  /** Seconds since the bar was made. */
  elapsed(): number {
    return (performance.now() - this.t0) / 1000;
  }

  /** `step` = completed steps; `detail` = what the caller measures (loss, throughput, the trial …). */
  update(step: number, detail: string): void {
    if (!this.enabled) return;
    const done = step - this.startStep;
    const elapsed = this.elapsed();
    const eta = done > 0 ? (elapsed / done) * (this.total - step) : NaN;
    const width = 20;
    const filled = Math.min(width, Math.round((width * step) / Math.max(1, this.total)));
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    const line = `${this.label} ${String(step).padStart(String(this.total).length)}/${this.total} [${bar}] ${detail} | ${formatDuration(elapsed)} ETA ${formatDuration(eta)}`;
    if (this.tty) {
      const pad = Math.max(0, this.lastLen - line.length);
      this.stream.write(`\r${line}${' '.repeat(pad)}`);
      this.lastLen = line.length;
      this.open = true;
    } else if (step % this.every === 0 || step === this.total) {
      this.stream.write(`${line}\n`);
    }
  }

  /** Ends the redrawn line on a terminal. */
  done(): void {
    if (this.enabled && this.tty && this.open) this.stream.write('\n');
    this.open = false;
  }
}
