// Public surface of the synthetic multimodal world (see docs/SYNTHETIC.md).
export * from './vocab.ts';
export type { RgbImage, Scene, SceneObject, SceneBackground } from './types.ts';
export { SyntheticDataError } from './errors.ts';
export type { Random } from './random.ts';
export { createRandom, STREAMS } from './seeded.ts';
export { DEFAULT_SYNTHETIC_CONFIG, DOCUMENT_KINDS, resolveConfig } from './config.ts';
export type { DocumentKind, SyntheticWorldConfig, SyntheticWorldOptions } from './config.ts';
export { renderScene, insideShape, objectRadius, type RenderOptions } from './render.ts';
export { sampleScene, sampleSceneWith, placeInCell, type ObjectConstraint, type SampleSceneOptions } from './scene.ts';
export {
  altText, longDescription, caption, captionVariants, captionInStyle, phrasedAnswer, qaPairs, balancedQuestion, joinList, CAPTION_TEMPLATES, SCENE_QA_KINDS,
  type CaptionStyle, type QAPair, type QAKind,
} from './text.ts';
export { inventNames, nonsenseWord, isReservedName } from './names.ts';
export {
  IMAGE_TOKEN, END_OF_CHUNK_TOKEN, interleavedToPrompt, withoutAnswer, queryPrompt,
  type Chunk, type DocumentQuery, type FlamingoPrompt, type InterleavedDocument,
} from './interleaved.ts';
export { namesDocument, formatDocument, OUTPUT_FORMATS, FORMAT_FIELDS, fieldValue, type BindingKind, type FormatField } from './incontext.ts';
export {
  fastBindingEpisode, fastBindingEpisodes, episodeToDocument, shapeCategories,
  type ImageCategory, type FastBindingOptions, type FastBindingEpisode, type EpisodeItem,
} from './fastbinding.ts';
export { documents, documentAt, CAPTION_LABELS, QUESTION_LABELS, ANSWER_LABELS, imageTextPairs, imageTextPairAt, shapeVariantPairAt, type DocumentStreamOptions, type ImageTextPair } from './documents.ts';
export { sampleVideo, videoAt, videos, MOTIONS, type ObjectMotion, type SyntheticVideo, type VideoOptions, type MotionKind, type Direction } from './video.ts';
