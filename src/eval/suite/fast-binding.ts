/**
 * Suite task family (a): fast concept binding on Fashion-MNIST — invented names bound to classes by the
 * examples in the prompt, for classes seen and not seen in training (src/eval/fast-binding.ts runs the episodes).
 */
import { Rng } from '../../engine/rng.ts';
import type { NameInventory } from '../../data/synthetic/inventories.ts';
import { bindingEpisode, evaluateBinding, type BindingClass } from '../fast-binding.ts';
import { BATCH, PROMPTS_KEPT, doesNotFit, keepOutputs, keepPrompts, mediaLimitNote, noteUnfit, pct, type SuiteContext } from './context.ts';
import { BUILTIN_METRICS, type TaskReport } from './plan.ts';

/**
 * Name inventories fast binding is measured with (src/data/synthetic/inventories.ts): the project's generator,
 * `unseen` (onsets and vowels that no training inventory uses), random letter strings and rare real words
 * (never drawn in training). All inventories get the same episodes (classes, images, order; bindingEpisode draws
 * names from their own stream), so the differences between inventories are the names' alone, not the images'.
 */
export const BINDING_INVENTORIES: readonly NameInventory[] = ['generator', 'unseen', 'letters', 'rare'];

export function fastBindingTask(ctx: SuiteContext, task: 'fast_binding_seen' | 'fast_binding_heldout', classes: BindingClass[]): TaskReport {
  const ways = Math.min(5, classes.length);
  const rep: TaskReport = { task, metric: BUILTIN_METRICS[task], shots: {}, items: ctx.plan.items[task], settings: { ways } };
  if (ways < 2) return { ...rep, shots: {}, items: 0, skipped: `only ${classes.length} class(es) in this split; fast binding needs 2` };
  rep.by_inventory = {};
  for (const shots of ctx.plan.shots[task]) {
    const limit = mediaLimitNote(ctx.model, ways * shots + 1);
    if (limit) {
      noteUnfit(rep, shots, limit);
      continue;
    }
    const byInv: Record<string, number | null> = (rep.by_inventory[String(shots)] = {});
    for (const inventory of BINDING_INVENTORIES) {
      if (ctx.inventories && !ctx.inventories.includes(inventory)) continue;
      const seed = ctx.seed * 1000 + (task === 'fast_binding_seen' ? 0 : 100) + shots;
      const key = inventory === 'generator' ? task : `${task}/${inventory}`;
      // evaluateBinding draws its episodes from one Rng(seed) in order, so these are its first prompts.
      const rng = new Rng(seed);
      keepPrompts(ctx, key, shots, Array.from({ length: Math.min(PROMPTS_KEPT, rep.items) }, () => bindingEpisode(rng, classes, ways, shots, inventory).prompt));
      try {
        const r = evaluateBinding(ctx.model, ctx.processor, classes, { ways, shots, episodes: rep.items, seed, batchSize: BATCH, inventory });
        byInv[inventory] = pct(100 * r.accuracy);
        keepOutputs(ctx, key, shots, r.examples.map((x) => ({ output: x.predicted, expected: x.answer })));
      } catch (e) {
        if (!doesNotFit(e)) throw e;
        byInv[inventory] = null;
        (rep.notes ??= []).push(`${shots} shots, ${inventory} names: ${e.message}`);
      }
    }
    rep.shots[String(shots)] = byInv.generator ?? null;
  }
  return rep;
}
