/** Suite task family: captioning the Tux Paint stamps (real drawings with their captions), when installed. */
import { Rng } from '../../engine/rng.ts';
import { loadImage } from '../../data/image.ts';
import { TuxpaintMissingError, loadTuxpaint } from '../../data/tuxpaint.ts';
import type { CaptionItem } from '../datasets/types.ts';
import type { SuiteContext } from './context.ts';
import { BUILTIN_METRICS, type TaskReport } from './plan.ts';
import { protocolTask } from './protocol.ts';

export function tuxpaintTask(ctx: SuiteContext, dir: string | undefined): TaskReport {
  const task = 'captioning_tuxpaint';
  let all;
  try {
    all = loadTuxpaint(dir);
  } catch (e) {
    if (!(e instanceof TuxpaintMissingError)) throw e;
    return { task, metric: BUILTIN_METRICS[task], shots: {}, items: 0, skipped: e.message };
  }
  const need = Math.max(...ctx.plan.shots[task]) + 2;
  if (all.length < need + 1) {
    return { task, metric: BUILTIN_METRICS[task], shots: {}, items: 0, skipped: `only ${all.length} captioned Tux Paint stamps (need ${need + 1})` };
  }
  const order = new Rng(ctx.seed).fork('builtin:tuxpaint').shuffle(Array.from({ length: all.length }, (_, i) => i));
  const nq = Math.min(ctx.plan.items[task], all.length - need);
  const np = Math.min(ctx.plan.supportPool, all.length - nq);
  const item = (i: number, id: number): CaptionItem => {
    const t = all[i]!;
    return { kind: 'captioning', id, captions: [t.caption], media: { key: `tux:${t.path}`, files: [t.path], load: () => [loadImage(t.path)] } };
  };
  const queries = order.slice(0, nq).map((i, j) => item(i, j));
  const support = order.slice(nq, nq + np).map((i, j) => item(i, 100000 + j));
  return protocolTask(ctx, task, 'captioning', support, queries, { support_pool: np });
}
