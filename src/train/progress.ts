/**
 * A one-line progress bar on stderr: step, bar, loss, throughput and ETA. On a terminal the line is redrawn
 * in place with \r; otherwise (logs, CI) a full line is printed every `every` steps and at the end.
 */
export interface ProgressOptions {
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Lines printed every this many steps when not a terminal (default 10). */
  every?: number;
  enabled?: boolean;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

function rate(x: number): string {
  return x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(x >= 100 ? 0 : 1);
}

export class ProgressBar {
  private readonly stream: NonNullable<ProgressOptions['stream']>;
  private readonly tty: boolean;
  private readonly every: number;
  private readonly enabled: boolean;
  private readonly t0 = performance.now();
  private lastLen = 0;

  constructor(readonly label: string, readonly total: number, readonly startStep = 0, opts: ProgressOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = this.stream.isTTY === true;
    this.every = Math.max(1, opts.every ?? 10);
    this.enabled = opts.enabled ?? true;
  }

  /** `step` = completed steps; tokens/images per second are the caller's smoothed rates. */
  update(step: number, f: { loss: number; tokensPerS: number; imagesPerS: number }): void {
    if (!this.enabled) return;
    const done = step - this.startStep;
    const elapsed = (performance.now() - this.t0) / 1000;
    const eta = done > 0 ? (elapsed / done) * (this.total - step) : NaN;
    const width = 20;
    const filled = Math.round((width * step) / Math.max(1, this.total));
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    const img = f.imagesPerS > 0 ? ` ${rate(f.imagesPerS)} img/s` : '';
    const line = `${this.label} ${String(step).padStart(String(this.total).length)}/${this.total} [${bar}] loss ${f.loss.toFixed(4)} | ${rate(f.tokensPerS)} tok/s${img} | ${formatDuration(elapsed)} ETA ${formatDuration(eta)}`;
    if (this.tty) {
      const pad = Math.max(0, this.lastLen - line.length);
      this.stream.write(`\r${line}${' '.repeat(pad)}`);
      this.lastLen = line.length;
    } else if (step % this.every === 0 || step === this.total) {
      this.stream.write(`${line}\n`);
    }
  }

  done(): void {
    if (this.enabled && this.tty) this.stream.write('\n');
  }
}
