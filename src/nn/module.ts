/**
 * Modules own named parameters and child modules, PyTorch style, so state-dict names
 * (`layers.0.attn.to_q.weight`) fall out of the tree. Parameters are Tensors: trainable ones have
 * requiresGrad = true; frozen ones get no gradient buffers and keep no activations.
 */
import { Tensor, fmtShape } from '../engine/tensor.ts';
import { FlamingoError } from '../errors.ts';

export class StateDictError extends FlamingoError {}

export interface LoadReport {
  missing: string[];
  unexpected: string[];
  mismatched: { name: string; expected: readonly number[]; got: readonly number[] }[];
}

export class Module {
  private readonly _params = new Map<string, Tensor>();
  private readonly _children = new Map<string, Module>();

  /** Register a parameter (trainable by default). */
  protected param(name: string, t: Tensor, trainable = true): Tensor {
    t.requiresGrad = trainable;
    t.name = name;
    this._params.set(name, t);
    return t;
  }

  /** Register a child module under a name (its parameters get `name.` prefixed). */
  protected child<M extends Module>(name: string, m: M): M {
    this._children.set(name, m);
    return m;
  }

  /** Mount a module's parameters at this module's own level (no extra name segment). */
  protected mount<M extends Module>(m: M): M {
    this._children.set('', m);
    return m;
  }

  /** Register a list of children as `name.0`, `name.1`, … */
  protected childList<M extends Module>(name: string, ms: M[]): M[] {
    ms.forEach((m, i) => this._children.set(`${name}.${i}`, m));
    return ms;
  }

  /**
   * Names of this module's own 2-D parameters that only `linear()` reads (so they may be stored
   * packed as bf16 / int8 when frozen: quantize.ts). Layers that own such weights override this.
   */
  linearWeights(): string[] {
    return [];
  }

  /** Every module of the subtree with its name prefix ('' for this one), parents first. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, c] of this._children) out.push(...c.namedModules(n === '' ? prefix : `${prefix}${n}.`));
    return out;
  }

  /** Own parameter by its local name (undefined if absent). */
  ownParameter(name: string): Tensor | undefined {
    return this._params.get(name);
  }

  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this._params) out.push([prefix + n, t]);
    for (const [n, c] of this._children) out.push(...c.namedParameters(n === '' ? prefix : `${prefix}${n}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  trainableParameters(): [string, Tensor][] {
    return this.namedParameters().filter(([, t]) => t.requiresGrad);
  }

  /** Freeze (or unfreeze) every parameter of this subtree. */
  setTrainable(trainable: boolean): this {
    for (const t of this.parameters()) {
      t.requiresGrad = trainable;
      if (!trainable) t.grad = null;
    }
    return this;
  }

  zeroGrad(): void {
    for (const t of this.parameters()) t.grad = null;
  }

  numParameters(trainableOnly = false): number {
    return this.namedParameters().reduce((s, [, t]) => s + (trainableOnly && !t.requiresGrad ? 0 : t.size), 0);
  }

  stateDict(prefix = ''): Map<string, Tensor> {
    return new Map(this.namedParameters(prefix));
  }

  /**
   * Copy values from `get(name)` into every parameter. Collects every problem into one report;
   * with strict (default) throws a StateDictError listing missing, unexpected and mis-shaped names.
   */
  loadStateDict(
    source: Map<string, { shape: readonly number[]; data: Float32Array }>,
    opts: { strict?: boolean; prefix?: string } = {},
  ): LoadReport {
    const strict = opts.strict ?? true;
    const prefix = opts.prefix ?? '';
    const report: LoadReport = { missing: [], unexpected: [], mismatched: [] };
    const own = this.namedParameters(prefix);
    const seen = new Set<string>();
    for (const [name, t] of own) {
      const src = source.get(name);
      seen.add(name);
      if (!src) { report.missing.push(name); continue; }
      const same = src.shape.length === t.shape.length && src.shape.every((d, i) => d === t.shape[i]);
      if (!same) { report.mismatched.push({ name, expected: t.shape, got: src.shape }); continue; }
    }
    for (const name of source.keys()) if (name.startsWith(prefix) && !seen.has(name)) report.unexpected.push(name);
    if (strict && (report.missing.length || report.unexpected.length || report.mismatched.length)) {
      throw new StateDictError(formatLoadReport(report));
    }
    for (const [name, t] of own) {
      const src = source.get(name);
      if (!src || report.mismatched.some((m) => m.name === name)) continue;
      t.f32.set(src.data);
    }
    return report;
  }
}

export function formatLoadReport(r: LoadReport): string {
  const lines: string[] = ['state dict does not match the model:'];
  const list = (xs: string[]) => (xs.length > 12 ? [...xs.slice(0, 12), `… and ${xs.length - 12} more`] : xs).join(', ');
  if (r.missing.length) lines.push(`  missing (${r.missing.length}): ${list(r.missing)}`);
  if (r.unexpected.length) lines.push(`  unexpected (${r.unexpected.length}): ${list(r.unexpected)}`);
  for (const m of r.mismatched.slice(0, 20)) lines.push(`  shape mismatch ${m.name}: model ${fmtShape(m.expected)}, checkpoint ${fmtShape(m.got)}`);
  return lines.join('\n');
}
