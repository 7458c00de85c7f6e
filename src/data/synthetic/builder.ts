// Small accumulator for interleaved documents: renders scenes into image chunks with stable ids.

import type { SyntheticWorldConfig } from './config.ts';
import { SyntheticDataError } from './errors.ts';
import type { Chunk, InterleavedDocument } from './interleaved.ts';
import { renderScene } from './render.ts';
import type { RgbImage, Scene } from './types.ts';

export class DocumentBuilder {
  readonly chunks: Chunk[] = [];
  readonly scenes: Record<string, Scene> = {};
  private images = 0;

  constructor(
    readonly id: string,
    /** Needed only to render scenes; documents of caller-supplied images can omit it. */
    private readonly cfg?: Pick<SyntheticWorldConfig, 'imageSize' | 'supersample'>,
  ) {}

  get imageCount(): number {
    return this.images;
  }

  scene(scene: Scene): this {
    if (!this.cfg) throw new SyntheticDataError('DocumentBuilder.scene', `document ${this.id} was built without a render config`);
    const id = `${this.id}/img${this.images}`;
    this.scenes[id] = scene;
    return this.push(renderScene(scene, this.cfg.imageSize, { supersample: this.cfg.supersample }), id);
  }

  image(image: RgbImage, id = `${this.id}/img${this.images}`): this {
    return this.push(image, id);
  }

  text(text: string): this {
    this.chunks.push({ type: 'text', text });
    return this;
  }

  build(kind: string, extra: Partial<InterleavedDocument> = {}): InterleavedDocument {
    return { id: this.id, kind, chunks: this.chunks, scenes: this.scenes, ...extra };
  }

  private push(image: RgbImage, id: string): this {
    this.chunks.push({ type: 'image', image, id });
    this.images++;
    return this;
  }
}
