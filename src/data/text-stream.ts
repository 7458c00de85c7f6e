/**
 * Token ids → text as they arrive, for one choice: decodes the ids so far and hands out only the new
 * part, holding back an incomplete UTF-8 sequence (a trailing U+FFFD) and any tail that could still
 * become a stop string, and cuts the text at the first stop string.
 */
import type { BpeTokenizer } from './tokenizer.ts';

export class TextStream {
  private readonly ids: number[] = [];
  private emitted = 0;
  private text = '';
  /** Set once a stop string was found: the text ends before it. */
  stopped = false;
  private readonly hold: number;

  constructor(private readonly tokenizer: BpeTokenizer, private readonly stops: string[] = [], private readonly trimStart = false) {
    this.hold = Math.max(0, ...stops.map((s) => s.length - 1));
  }

  /** Number of tokens taken (up to a stop string). */
  get tokenCount(): number {
    return this.ids.length;
  }

  /** Add a token; returns the text that can be shown now (maybe ''). */
  push(token: number): string {
    if (this.stopped) return '';
    this.ids.push(token);
    let full = this.tokenizer.decode(this.ids, { skipSpecial: true });
    if (this.trimStart) full = full.replace(/^\s+/, '');
    for (const s of this.stops) {
      const at = full.indexOf(s);
      if (at >= 0 && (!this.stopped || at < this.text.length)) { this.stopped = true; this.text = full.slice(0, at); }
    }
    if (this.stopped) return this.take(this.text.length);
    this.text = full;
    let upto = full.length - this.hold;
    if (full.endsWith('\uFFFD')) upto = Math.min(upto, full.length - 1);
    return this.take(upto);
  }

  /** The rest of the text once the choice is finished. */
  flush(): string {
    return this.take(this.text.length);
  }

  /** The whole text so far. */
  get value(): string {
    return this.text;
  }

  private take(upto: number): string {
    if (upto <= this.emitted) return '';
    const piece = this.text.slice(this.emitted, upto);
    this.emitted = upto;
    return piece;
  }
}
