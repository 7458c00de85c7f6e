/**
 * Runs the built-in few-shot suite on a loaded model: every task family in turn, each skipped with a
 * reason when its data is absent or the model cannot take it. Deterministic in the seed.
 */
import { noGrad } from '../../engine/index.ts';
import type { Flamingo } from '../../model/flamingo.ts';
import type { FlamingoProcessor } from '../../data/processor.ts';
import { fashionMnistAvailable, fashionMnistByClass } from '../../data/fashion-mnist.ts';
import { resolveConfig } from '../../data/synthetic/index.ts';
import { MediaEncoder } from '../media.ts';
import type { TextCodec } from '../tasks.ts';
import type { SuiteContext } from './context.ts';
import { fastBindingTask } from './fast-binding.ts';
import { formatTask } from './format.ts';
import { BUILTIN_METRICS, suitePlan, type BuiltinTaskName, type SuiteOptions, type SuiteOutput, type TaskReport } from './plan.ts';
import { protocolTask } from './protocol.ts';
import { syntheticCaptionItems, syntheticVideoItems, syntheticVqaItems, videoFrames } from './scenes.ts';
import { tuxpaintTask } from './tuxpaint.ts';

/** Run the whole suite on a loaded model. */
export function runSuite(
  model: Flamingo, processor: FlamingoProcessor, codec: TextCodec, modelName: string, opts: SuiteOptions,
): SuiteOutput {
  const t0 = performance.now();
  const plan = suitePlan(opts.quick, { items: opts.items, numBeams: opts.numBeams });
  const S = model.config.vision.image_size;
  const ctx: SuiteContext = {
    model, codec, media: new MediaEncoder(model), processor, S, plan, seed: opts.seed,
    world: resolveConfig({ imageSize: S }), log: opts.onLog ?? (() => {}), prompts: {}, outputs: {}, inventories: opts.bindingInventories ?? null,
  };
  const tasks: TaskReport[] = [];
  const wanted = (name: BuiltinTaskName): boolean => opts.tasks === undefined || opts.tasks.includes(name);
  const timed = (name: BuiltinTaskName, f: () => TaskReport): void => {
    if (!wanted(name)) return;
    const t = performance.now();
    const r = f();
    tasks.push(r);
    ctx.log(r.skipped ? `${name}: skipped (${r.skipped})` : `${name}: done in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  };
  noGrad(() => {
    // (a) fast binding on Fashion-MNIST classes seen / not seen in training.
    let fm: string | null = null;
    if (!opts.classes) fm = 'no class split (meta.json with seen_classes / heldout_classes) in the model directory';
    else if (!fashionMnistAvailable()) fm = 'Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)';
    for (const [task, ids] of [['fast_binding_seen', opts.classes?.seen], ['fast_binding_heldout', opts.classes?.heldout]] as const) {
      if (!wanted(task)) continue;
      if (fm !== null) {
        tasks.push({ task, metric: BUILTIN_METRICS[task], shots: {}, items: 0, skipped: fm });
        continue;
      }
      const maxShots = Math.max(...plan.shots[task]);
      // Enough images per class that episodes rarely reuse one.
      timed(task, () => fastBindingTask(ctx, task, fashionMnistByClass([...ids!], Math.max(40, 4 * (maxShots + 1)))));
    }
    // (b) synthetic captioning and VQA, Tux Paint captioning.
    timed('captioning', () => protocolTask(ctx, 'captioning', 'captioning',
      syntheticCaptionItems(ctx, 'support', plan.supportPool), syntheticCaptionItems(ctx, 'query', plan.items.captioning)));
    timed('vqa', () => protocolTask(ctx, 'vqa', 'vqa', syntheticVqaItems(ctx, 'support', plan.supportPool), syntheticVqaItems(ctx, 'query', plan.items.vqa)));
    timed('captioning_tuxpaint', () => tuxpaintTask(ctx, opts.tuxpaintDir));
    // (c) output format from the examples only.
    timed('format', () => formatTask(ctx));
    // (d) video QA: each video is one media item of F frames.
    const F = videoFrames(model);
    if (!wanted('video_qa')) {
      // not asked for
    } else if (F < 2) {
      tasks.push({ task: 'video_qa', metric: BUILTIN_METRICS.video_qa, shots: {}, items: 0, skipped: `the model takes ${F} frame(s) per video (resampler.max_num_frames)` });
    } else {
      timed('video_qa', () => protocolTask(ctx, 'video_qa', 'video_qa',
        syntheticVideoItems(ctx, 'support', plan.supportPool, F), syntheticVideoItems(ctx, 'query', plan.items.video_qa, F), { frames: F }));
    }
  });
  return { report: { model: modelName, tasks, seconds: (performance.now() - t0) / 1000 }, prompts: ctx.prompts, outputs: ctx.outputs };
}
