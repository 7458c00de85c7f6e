/**
 * The package's public API (`import { … } from 'flamingo-ts'`): the high-level pipeline, the model and
 * its parts, loading and saving, the processor and tokenizer, generation and scoring, images, the
 * metrics, and the HTTP server. Everything else under src/ is internal and may change.
 */
// High level
export { pipeline, FlamingoPipeline, PipelineInputError, type PromptPart, type ImageSource, type PipelineGenerateOptions } from './pipeline.ts';
export { loadPretrained, readModelMeta, BUNDLED_MODEL_DIR, PretrainedError, type Pretrained, type LoadPretrainedOptions, type PretrainedSource, type ModelMeta, type PretrainedLocation, type ReleaseLocation } from './pretrained/index.ts';

// Model
export { Flamingo, FlamingoInputError, type FlamingoState, type ForwardOptions } from './model/flamingo.ts';
export { validateFlamingoConfig, ConfigError, type FlamingoConfig, type VisionConfig, type ResamplerConfig, type XAttnConfig, type LMConfig } from './model/config.ts';
export { PRESETS, getPreset, countParameters } from './model/presets.ts';
export { generate, type GenerationConfig, type GenerationOutput, type PromptInput } from './model/generate.ts';
export { prefill, decodeStep } from './model/decode-state.ts';
export { scoreContinuations } from './model/score.ts';
export { BatchDecoder, type DecodeRow, type StepToken } from './model/batch-decode.ts';

// Checkpoints
export { loadFlamingo, saveFlamingo, readFlamingoConfig, loadFlamingoWeights, CheckpointError } from './io/checkpoint.ts';
export { readSafetensors } from './io/safetensors-read.ts';
export { writeSafetensors } from './io/safetensors-write.ts';
export { SafetensorsError } from './io/safetensors.ts';

// Data
export { FlamingoProcessor, ProcessorError, type ProcessorConfig, type BatchEncoding } from './data/processor.ts';
export { BpeTokenizer } from './data/tokenizer.ts';
export { TokenizerError } from './data/tokenizer-error.ts';
export { TextStream } from './data/text-stream.ts';
export { decodeImage, loadImage, encodePng, makeImage, ImageDecodeError, type RgbImage } from './data/image.ts';
export { preprocessClip, CLIP_MEAN, CLIP_STD } from './data/image-tensor.ts';

// Engine
export { Tensor, intTensor } from './engine/tensor.ts';
export { noGrad } from './engine/autograd.ts';
export { Rng } from './engine/rng.ts';

// Metrics
export { ciderD } from './eval/metrics/cider.ts';
export { vqaAccuracy, vqaItemAccuracy } from './eval/metrics/vqa.ts';
export { evaluateCaptions } from './eval/metrics/caption.ts';

// Server
export { startServer, buildApp, createContext, type ServeOptions } from './serve/app.ts';
export { DEFAULT_LIMITS, type ServeLimits } from './serve/limits.ts';
export type { RoutePlugin, ServeContext } from './serve/context.ts';
