/**
 * Suite task family (b, d): captioning, VQA and video QA on the synthetic world's scenes and videos. Items are
 * drawn from seeded forks per split, so support and query sets never share a scene and every run is the same.
 */
import { Rng } from '../../engine/rng.ts';
import type { Flamingo } from '../../model/flamingo.ts';
import {
  balancedQuestion, captionInStyle, renderScene, sampleSceneWith, sampleVideo, type CaptionStyle, type Scene,
} from '../../data/synthetic/index.ts';
import type { CaptionItem, MediaRef, VqaItem } from '../datasets/types.ts';
import { memRef, type SuiteContext } from './context.ts';

type Split = 'support' | 'query';

function sceneRef(ctx: SuiteContext, key: string, scene: Scene): MediaRef {
  return memRef(key, () => [renderScene(scene, ctx.S, { supersample: ctx.world.supersample })]);
}

/**
 * The synthetic captioning set's house style, as a captioning dataset has one (COCO's annotators write short
 * declarative sentences): "There are two red circles and a blue star on a sand background." It is one of the
 * world's caption templates; the model learns which from the examples.
 */
export const SUITE_CAPTION_STYLE: CaptionStyle = { template: 3, digits: false };

/** The first `max` orderings of the scene's objects: rotations, then reversed rotations (the same order can recur). */
function objectOrders(scene: Scene, max: number): Scene[] {
  const n = scene.objects.length;
  const orders: Scene[] = [];
  for (const rev of [false, true]) {
    for (let k = 0; k < n; k++) {
      const objs = [...scene.objects.slice(k), ...scene.objects.slice(0, k)];
      orders.push({ ...scene, objects: rev ? objs.reverse() : objs });
    }
  }
  return orders.slice(0, max);
}

export function syntheticCaptionItems(ctx: SuiteContext, split: Split, n: number): CaptionItem[] {
  const root = new Rng(ctx.seed).fork('builtin:captioning').fork(split);
  return Array.from({ length: n }, (_, i) => {
    const scene = sampleSceneWith(root.fork(i), ctx.world);
    // References as five annotators in the house style would write them: the same sentence listing the objects
    // in different orders. The first (scene order) is the demonstration caption.
    const captions = [...new Set(objectOrders(scene, 5).map((s) => captionInStyle(s, SUITE_CAPTION_STYLE)))];
    return { kind: 'captioning', id: split === 'support' ? 100000 + i : i, captions, media: sceneRef(ctx, `cap:${split}:${i}`, scene) };
  });
}

/**
 * One known answer as 10 identical human answers (VQAv2 has 10): VQA accuracy's leave-one-out rule
 * would score a match against a single answer as 0.
 */
export const tenfold = (a: string): string[] => new Array<string>(10).fill(a);

export function syntheticVqaItems(ctx: SuiteContext, split: Split, n: number): (VqaItem & { answerType: string })[] {
  const root = new Rng(ctx.seed).fork('builtin:vqa').fork(split);
  return Array.from({ length: n }, (_, i) => {
    const r = root.fork(i);
    const scene = sampleSceneWith(r, ctx.world);
    const q = balancedQuestion(r, scene, { shapes: ctx.world.shapes, colours: ctx.world.colours });
    return {
      kind: 'vqa', id: split === 'support' ? 100000 + i : i, question: q.question, answers: tenfold(q.answer),
      answerType: q.kind, media: sceneRef(ctx, `vqa:${split}:${i}`, scene),
    };
  });
}

/** Frames per video: the model's resampler.max_num_frames, at most 8. */
export function videoFrames(model: Flamingo): number {
  return Math.min(8, model.config.resampler.max_num_frames ?? 8);
}

export function syntheticVideoItems(ctx: SuiteContext, split: Split, n: number, frames: number): (VqaItem & { answerType: string })[] {
  const root = new Rng(ctx.seed).fork('builtin:video').fork(split);
  return Array.from({ length: n }, (_, i) => {
    const r = root.fork(i);
    const video = sampleVideo(r, { frames, size: ctx.S, world: { imageSize: ctx.S } });
    const q = video.qa[r.int(video.qa.length)]!;
    return {
      kind: 'video_qa', id: split === 'support' ? 100000 + i : i, question: q.question, answers: tenfold(q.answer),
      answerType: q.kind, media: memRef(`video:${split}:${i}`, () => video.frames),
    };
  });
}
