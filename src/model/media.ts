/**
 * Visual tokens for one prompt whose media differ in frame count (still images are 1 frame, videos F):
 * the paper treats an image as a single-frame video, but one (B, T, F, …) pixel tensor needs a common
 * F. Items with equal frame counts go through encodeVision together; otherwise each item is resampled
 * on its own, which is exact only without a media-position embedding (resampler.max_num_media null).
 */
import { Tensor, concat, noGrad } from '../engine/index.ts';
import { type Flamingo, FlamingoInputError } from './flamingo.ts';

/** items[t][f]: preprocessed pixels (3·S·S) of frame f of media item t → media (1, T, n, D). */
export function encodeMediaItems(model: Flamingo, items: readonly (readonly Float32Array[])[]): Tensor {
  const S = model.config.vision.image_size;
  const per = 3 * S * S;
  if (items.length === 0) throw new FlamingoInputError('no media items to encode');
  items.forEach((frames, t) => {
    if (frames.length === 0) throw new FlamingoInputError(`media item ${t} has no frames`);
    frames.forEach((px, f) => {
      if (px.length !== per) throw new FlamingoInputError(`media item ${t} frame ${f} has ${px.length} values, expected 3×${S}×${S}`);
    });
  });
  const maxF = model.config.resampler.max_num_frames;
  items.forEach((frames, t) => {
    if (maxF !== null && frames.length > maxF) throw new FlamingoInputError(`media item ${t} has ${frames.length} frames; the model takes at most ${maxF} (resampler.max_num_frames)`);
  });
  const pack = (group: readonly (readonly Float32Array[])[]): Tensor => {
    const F = group[0]!.length;
    const data = new Float32Array(group.length * F * per);
    group.forEach((frames, t) => frames.forEach((px, f) => data.set(px, (t * F + f) * per)));
    return new Tensor(data, [1, group.length, F, 3, S, S]);
  };
  return noGrad(() => {
    if (items.every((f) => f.length === items[0]!.length)) return model.encodeVision(pack(items));
    if (model.config.resampler.max_num_media !== null) {
      throw new FlamingoInputError('this model embeds media positions (resampler.max_num_media), so all media of a prompt need the same frame count; give images and videos separately');
    }
    return concat(items.map((frames) => model.encodeVision(pack([frames]))), 1);
  });
}
