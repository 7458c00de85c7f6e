import type { BackgroundName, ColourName, PositionName, ShapeName, SizeName, TextureName } from './vocab.ts';

/** RGB raster, row-major, 3 bytes per pixel: the project's image type (type-only import, no runtime coupling). */
export type { RgbImage } from '../image.ts';

/** One object on the canvas. x, y are the centre in [0, 1] image coordinates (y grows downwards). */
export interface SceneObject {
  shape: ShapeName;
  colour: ColourName;
  size: SizeName;
  position: PositionName;
  x: number;
  y: number;
  /** Radius as a fraction of the image side; overrides the radius implied by `size` (videos grow and shrink). */
  radius?: number;
}

export interface SceneBackground {
  colour: BackgroundName;
  texture: TextureName;
  /** Seeds the noise texture so rendering depends only on the scene JSON. */
  seed: number;
}

/** Plain JSON: a scene can be stored, diffed and re-rendered at any resolution. */
export interface Scene {
  background: SceneBackground;
  objects: SceneObject[];
}
