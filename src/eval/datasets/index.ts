/** Evaluation dataset loaders (official file formats) and their common item types. */
export * from './types.ts';
export { formatPattern, imageRef, frameFolderRef } from './common.ts';
export { loadKarpathyCaptions, cocoStyle, type KarpathyOptions } from './karpathy.ts';
export { loadVqaDataset, defaultImagePattern, vqaStyleFiles, type VqaOptions, type VqaSplitFiles, type VqaDatasetName } from './vqa.ts';
export { loadHatefulMemes, HM_CLASS_NAMES, type HatefulMemesOptions } from './hateful-memes.ts';
export { loadMsrvttQa, DEFAULT_FRAMES, type MsrvttQaOptions } from './msrvtt-qa.ts';
