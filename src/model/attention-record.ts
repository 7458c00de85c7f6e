/**
 * What generation can record of the gated cross-attention (GenerationConfig.recordAttention): per
 * position, each layer's attention mass on every media item and how strongly the images moved it.
 */
import { FlamingoInputError } from './flamingo.ts';
import type { XAttnTrace } from './gated-xattn.ts';

/** The gated blocks' view of one position: per layer (in `AttentionRecord.layers` order). */
export interface TokenAttention {
  /** [layer][media]: attention mass on each media item, averaged over heads. */
  weights: number[][];
  /** [layer]: ‖tanh(α_attn)·xattn‖ / ‖x‖ (how much the images moved this position). */
  strength: number[];
}

export interface AttentionRecord {
  /** LM layers that have a gated block, in order. */
  layers: number[];
  /** tanh(α_attn) and tanh(α_ff) per layer. */
  attnGates: number[];
  ffGates: number[];
  /** Media items per row (T of the batch). */
  media: number;
  /** Per row, per prompt position (left padding included). */
  prompt: TokenAttention[][];
  /** Per row, per generated token: the attention of the forward pass whose logits chose the token. */
  generated: TokenAttention[][];
}

export interface TokenEvent {
  row: number;
  step: number;
  token: number;
  attention?: TokenAttention;
}

/** Collects the XAttnTrace calls of one forward pass and slices them per position. */
export class AttentionCollector {
  private traces: XAttnTrace[] = [];
  record: AttentionRecord | null = null;
  readonly onXAttn = (t: XAttnTrace): void => { this.traces.push(t); };

  /** Per-row, per-position attention of the forward pass just run. */
  take(): TokenAttention[][] {
    const tr = this.traces;
    this.traces = [];
    if (tr.length === 0) throw new FlamingoInputError('recordAttention needs media: the prompt has no images, so no gated block ran');
    if (!this.record) {
      this.record = { layers: tr.map((t) => t.layer), attnGates: tr.map((t) => t.attnGate), ffGates: tr.map((t) => t.ffGate), media: tr[0]!.media, prompt: [], generated: [] };
    }
    const { batch: B, length: L, media: T } = tr[0]!;
    return Array.from({ length: B }, (_, b) => Array.from({ length: L }, (_, p) => ({
      weights: tr.map((t) => Array.from(t.mediaWeights.subarray((b * L + p) * T, (b * L + p + 1) * T))),
      strength: tr.map((t) => t.strength[b * L + p]!),
    })));
  }
}
