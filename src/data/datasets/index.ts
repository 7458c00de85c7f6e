// Training datasets: formats, streams, samples and batches (see docs/TRAINING.md).
export * from './types.ts';
export { FORMATS, recordToDoc, type DataFormat, type MediaResolver } from './records.ts';
export { readTar, writeTar, groupByKey, type TarEntry } from './tar.ts';
export { fileSource, discoverShards, type FileSourceOptions } from './files.ts';
export {
  generatorSource, listSource, textListSource, syntheticDocuments, syntheticPairs, syntheticVideos, syntheticText, syntheticDocToRaw,
  type SyntheticDocOptions, type PairText,
} from './memory.ts';
export { buildSample, docToText, docPlainText, docPlainPieces, encodePieces, truncateTokens, limitMedia, type SampleOptions, type TextPiece } from './sample.ts';
export { collateSamples, makeLabels, IGNORE_INDEX, type TrainBatch } from './collate.ts';
export { sourceFromSpec, type SourceSpec } from './spec.ts';
