// Rasterises a Scene into an RgbImage. Shapes are point-in-shape tests in object-local units (1 = radius);
// anti-aliasing is coverage from an ss×ss grid of sub-samples per pixel. Rendering depends only on the scene JSON.

import { SyntheticDataError } from './errors.ts';
import type { RgbImage, Scene, SceneBackground, SceneObject } from './types.ts';
import { BACKGROUNDS, COLOURS, SIZE_RADIUS, TEXTURE_AMPLITUDE, type ShapeName } from './vocab.ts';

export interface RenderOptions {
  /** Sub-samples per pixel side (1 = no anti-aliasing). */
  supersample?: number;
}

const STAR: Array<[number, number]> = Array.from({ length: 10 }, (_, i) => {
  const a = -Math.PI / 2 + (i * Math.PI) / 5;
  const r = i % 2 === 0 ? 1.05 : 0.45;
  return [r * Math.cos(a), r * Math.sin(a)];
});
// Near-equilateral with its centroid at the object centre, so "where" and centroids agree for every shape.
const TRIANGLE: Array<[number, number]> = [
  [0, -1.1],
  [0.95, 0.55],
  [-0.95, 0.55],
];

function inPolygon(u: number, v: number, poly: Array<[number, number]>): boolean {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i]!;
    const [xj, yj] = poly[j]!;
    if (yi > v !== yj > v && u < ((xj - xi) * (v - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Is the point (u, v), in units of the object's radius relative to its centre, inside the shape? */
export function insideShape(shape: ShapeName, u: number, v: number): boolean {
  switch (shape) {
    case 'circle':
      return u * u + v * v <= 1;
    case 'square':
      return Math.abs(u) <= 0.82 && Math.abs(v) <= 0.82;
    case 'triangle':
      return inPolygon(u, v, TRIANGLE);
    case 'star':
      return inPolygon(u, v, STAR);
    case 'cross':
      return (Math.abs(u) <= 0.34 && Math.abs(v) <= 1) || (Math.abs(v) <= 0.34 && Math.abs(u) <= 1);
    case 'ring': {
      const d = u * u + v * v;
      return d <= 1 && d >= 0.55 * 0.55;
    }
    case 'diamond':
      return Math.abs(u) + Math.abs(v) <= 1.08;
  }
}

export function objectRadius(obj: SceneObject): number {
  return obj.radius ?? SIZE_RADIUS[obj.size];
}

/** Integer hash of a pixel and a seed, mapped to [0, 1). Stateless so any pixel can be rendered alone. */
function hash01(x: number, y: number, seed: number): number {
  let h = Math.imul(x + 0x9e3779b9, 0x85ebca6b) ^ Math.imul(y + 0x7f4a7c15, 0xc2b2ae35) ^ Math.imul(seed, 0x27d4eb2f);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  h = Math.imul(h, 0x297a2d39);
  h ^= h >>> 15;
  return (h >>> 0) / 4294967296;
}

function textureOffset(bg: SceneBackground, x: number, y: number, size: number): number {
  const period = Math.max(2, Math.round(size / 8));
  switch (bg.texture) {
    case 'plain':
      return 0;
    case 'stripes':
      return Math.floor((x + y) / period) % 2 === 0 ? TEXTURE_AMPLITUDE : -TEXTURE_AMPLITUDE;
    case 'checker':
      return (Math.floor(x / period) + Math.floor(y / period)) % 2 === 0 ? TEXTURE_AMPLITUDE : -TEXTURE_AMPLITUDE;
    case 'noise':
      return Math.round((hash01(x, y, bg.seed) * 2 - 1) * TEXTURE_AMPLITUDE);
  }
}

const clamp8 = (v: number): number => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));

export function renderScene(scene: Scene, size = 32, opts: RenderOptions = {}): RgbImage {
  const ss = opts.supersample ?? 3;
  if (!Number.isInteger(size) || size < 4 || size > 4096) {
    throw new SyntheticDataError('renderScene', `image size must be an integer in [4, 4096], got ${size}`);
  }
  if (!Number.isInteger(ss) || ss < 1 || ss > 8) {
    throw new SyntheticDataError('renderScene', `supersample must be an integer in [1, 8], got ${ss}`);
  }
  const base = BACKGROUNDS[scene.background.colour];
  if (!base) throw new SyntheticDataError('renderScene', `unknown background colour "${scene.background.colour}"`);
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const off = textureOffset(scene.background, x, y, size);
      const i = (y * size + x) * 3;
      data[i] = clamp8(base[0] + off);
      data[i + 1] = clamp8(base[1] + off);
      data[i + 2] = clamp8(base[2] + off);
    }
  }
  // Painter's order: later objects cover earlier ones (scenes from sampleScene never overlap anyway).
  for (const obj of scene.objects) drawObject(data, size, obj, ss);
  return { width: size, height: size, data };
}

function drawObject(data: Uint8Array, size: number, obj: SceneObject, ss: number): void {
  const colour = COLOURS[obj.colour];
  if (!colour) throw new SyntheticDataError('renderScene', `unknown object colour "${obj.colour}"`);
  const r = objectRadius(obj) * size;
  const cx = obj.x * size;
  const cy = obj.y * size;
  const x0 = Math.max(0, Math.floor(cx - 1.1 * r));
  const x1 = Math.min(size - 1, Math.ceil(cx + 1.1 * r));
  const y0 = Math.max(0, Math.floor(cy - 1.1 * r));
  const y1 = Math.min(size - 1, Math.ceil(cy + 1.1 * r));
  const total = ss * ss;
  for (let py = y0; py <= y1; py++) {
    for (let px = x0; px <= x1; px++) {
      let hits = 0;
      for (let sy = 0; sy < ss; sy++) {
        const v = (py + (sy + 0.5) / ss - cy) / r;
        for (let sx = 0; sx < ss; sx++) {
          if (insideShape(obj.shape, (px + (sx + 0.5) / ss - cx) / r, v)) hits++;
        }
      }
      if (hits === 0) continue;
      const a = hits / total;
      const i = (py * size + px) * 3;
      for (let c = 0; c < 3; c++) data[i + c] = clamp8(data[i + c]! * (1 - a) + colour[c]! * a);
    }
  }
}
