// Short clips of 1–2 objects that move, grow, shrink or change colour, with a motion description and QA.
// Two objects get separate halves of the frame so their paths never cross and each centroid stays measurable.

import { resolveConfig, type SyntheticWorldConfig, type SyntheticWorldOptions } from './config.ts';
import { SyntheticDataError } from './errors.ts';
import { chance, intBetween, pick, sample, type Random } from './random.ts';
import { renderScene } from './render.ts';
import { createRandom, STREAMS } from './seeded.ts';
import { joinList, type QAPair } from './text.ts';
import type { RgbImage, Scene, SceneObject } from './types.ts';
import { POSITIONS, article, type ColourName, type PositionName, type ShapeName } from './vocab.ts';

export const MOTIONS = ['move', 'grow', 'shrink', 'recolour'] as const;
export type MotionKind = (typeof MOTIONS)[number];
export type Direction = 'left' | 'right' | 'up' | 'down';

export interface ObjectMotion {
  shape: ShapeName;
  kind: MotionKind;
  /** Set for 'move'. */
  direction?: Direction;
  /** Colour in the first frame; for 'recolour' it switches to toColour halfway through. */
  colour: ColourName;
  toColour?: ColourName;
  /** Centre (x, y) and radius in the first and last frame, fractions of the image side. */
  start: { x: number; y: number; r: number };
  end: { x: number; y: number; r: number };
  /** "a red circle moves to the right". */
  description: string;
}

export interface SyntheticVideo {
  frames: RgbImage[];
  /** The scene behind each frame. */
  scenes: Scene[];
  motions: ObjectMotion[];
  description: string;
  qa: QAPair[];
}

export interface VideoOptions {
  frames?: number;
  size?: number;
  world?: SyntheticWorldOptions;
}

interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

const MARGIN = 0.03;
const MOVE_R = 0.11;
const SMALL_R = 0.09;
const BIG_R = 0.19;

function positionOf(x: number, y: number): PositionName {
  const col = Math.min(2, Math.max(0, Math.floor(x * 3)));
  const row = Math.min(2, Math.max(0, Math.floor(y * 3)));
  return (Object.keys(POSITIONS) as PositionName[]).find((p) => POSITIONS[p][0] === col && POSITIONS[p][1] === row)!;
}

function between(rng: Random, lo: number, hi: number): number {
  return lo + rng.uniform() * Math.max(0, hi - lo);
}

function directionPhrase(d: Direction): string {
  return d === 'left' || d === 'right' ? `moves to the ${d}` : `moves ${d}`;
}

function planMotion(rng: Random, cfg: SyntheticWorldConfig, shape: ShapeName, box: Box): ObjectMotion {
  const kind = pick(rng, MOTIONS);
  const colour = pick(rng, cfg.colours);
  const noun = `${colour} ${shape}`;
  const lead = `${article(noun)} ${noun}`;
  const cx = (box.x0 + box.x1) / 2;
  const cy = (box.y0 + box.y1) / 2;
  if (kind === 'move') {
    const direction = pick(rng, ['left', 'right', 'up', 'down'] as const);
    const r = MOVE_R;
    const lo = { x: box.x0 + r + MARGIN, y: box.y0 + r + MARGIN };
    const hi = { x: box.x1 - r - MARGIN, y: box.y1 - r - MARGIN };
    const horizontal = direction === 'left' || direction === 'right';
    // Fixed coordinate across the motion, travelling coordinate from one side of the box to the other.
    const fixed = horizontal ? between(rng, lo.y, hi.y) : between(rng, lo.x, hi.x);
    const forward = direction === 'right' || direction === 'down';
    const [a, b] = horizontal ? [lo.x, hi.x] : [lo.y, hi.y];
    const [from, to] = forward ? [a, b] : [b, a];
    const start = horizontal ? { x: from, y: fixed, r } : { x: fixed, y: from, r };
    const end = horizontal ? { x: to, y: fixed, r } : { x: fixed, y: to, r };
    return { shape, kind, direction, colour, start, end, description: `${lead} ${directionPhrase(direction)}` };
  }
  if (kind === 'recolour') {
    const toColour = pick(rng, cfg.colours.filter((c) => c !== colour));
    const r = MOVE_R;
    const p = { x: between(rng, box.x0 + r + MARGIN, box.x1 - r - MARGIN), y: between(rng, box.y0 + r + MARGIN, box.y1 - r - MARGIN), r };
    return { shape, kind, colour, toColour, start: p, end: p, description: `${lead} turns ${toColour}` };
  }
  const maxR = Math.min(BIG_R, (box.x1 - box.x0) / 2 - MARGIN, (box.y1 - box.y0) / 2 - MARGIN);
  const [r0, r1] = kind === 'grow' ? [SMALL_R, maxR] : [maxR, SMALL_R];
  return {
    shape, kind, colour,
    start: { x: cx, y: cy, r: r0 },
    end: { x: cx, y: cy, r: r1 },
    description: `${lead} ${kind === 'grow' ? 'grows' : 'shrinks'}`,
  };
}

function videoQA(motions: readonly ObjectMotion[]): QAPair[] {
  const qa: QAPair[] = [{ kind: 'count', question: 'how many objects are there?', answer: String(motions.length) }];
  for (const m of motions) {
    const s = m.shape;
    qa.push({ kind: 'motion', question: `does the ${s} move?`, answer: m.kind === 'move' ? 'yes' : 'no' });
    if (m.kind === 'move') qa.push({ kind: 'motion', question: `which way does the ${s} move?`, answer: m.direction! });
    if (m.kind === 'grow' || m.kind === 'shrink') {
      qa.push({ kind: 'motion', question: `does the ${s} grow or shrink?`, answer: m.kind });
    }
    if (m.kind === 'recolour') {
      qa.push({ kind: 'colour', question: `what colour is the ${s} at the start?`, answer: m.colour });
      qa.push({ kind: 'colour', question: `what colour does the ${s} turn?`, answer: m.toColour! });
    } else {
      qa.push({ kind: 'colour', question: `what colour is the ${s}?`, answer: m.colour });
    }
  }
  return qa;
}

function frameObject(m: ObjectMotion, t: number): SceneObject {
  const x = m.start.x + (m.end.x - m.start.x) * t;
  const y = m.start.y + (m.end.y - m.start.y) * t;
  const r = m.start.r + (m.end.r - m.start.r) * t;
  // A hard switch at the midpoint keeps every frame in the named palette (no in-between colours).
  const colour = m.kind === 'recolour' && t >= 0.5 ? m.toColour! : m.colour;
  return { shape: m.shape, colour, size: r >= (SMALL_R + BIG_R) / 2 ? 'large' : 'small', position: positionOf(x, y), x, y, radius: r };
}

export function sampleVideo(rng: Random, opts: VideoOptions = {}): SyntheticVideo {
  const cfg = resolveConfig(opts.world);
  const frames = opts.frames ?? cfg.video.frames;
  const size = opts.size ?? cfg.imageSize;
  if (!Number.isInteger(frames) || frames < 2) throw new SyntheticDataError('sampleVideo', `frames must be an integer >= 2, got ${frames}`);
  const n = intBetween(rng, 1, cfg.video.maxObjects);
  const shapes = sample(rng, cfg.shapes, n);
  const boxes: Box[] =
    n === 1
      ? [{ x0: 0, y0: 0, x1: 1, y1: 1 }]
      : chance(rng, 0.5)
        ? [{ x0: 0, y0: 0, x1: 1, y1: 0.5 }, { x0: 0, y0: 0.5, x1: 1, y1: 1 }]
        : [{ x0: 0, y0: 0, x1: 0.5, y1: 1 }, { x0: 0.5, y0: 0, x1: 1, y1: 1 }];
  const motions = shapes.map((s, i) => planMotion(rng, cfg, s, boxes[i]!));
  const background = { colour: pick(rng, cfg.backgrounds), texture: pick(rng, cfg.textures), seed: rng.int(0x7fffffff) };
  const scenes: Scene[] = [];
  const images: RgbImage[] = [];
  for (let f = 0; f < frames; f++) {
    const t = f / (frames - 1);
    const scene: Scene = { background, objects: motions.map((m) => frameObject(m, t)) };
    scenes.push(scene);
    images.push(renderScene(scene, size, { supersample: cfg.supersample }));
  }
  return { frames: images, scenes, motions, description: joinList(motions.map((m) => m.description)), qa: videoQA(motions) };
}

export function videoAt(seed: number, index: number, opts: VideoOptions = {}): SyntheticVideo {
  return sampleVideo(createRandom(seed).fork(STREAMS.videos).fork(index), opts);
}

export function* videos(seed: number, opts: VideoOptions & { count?: number; start?: number } = {}): Generator<SyntheticVideo> {
  const start = opts.start ?? 0;
  for (let i = start; opts.count === undefined || i < start + opts.count; i++) yield videoAt(seed, i, opts);
}
