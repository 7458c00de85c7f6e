/**
 * What loading a pretrained model gives, and what a source of pretrained models implements.
 * A source reads one on-disk layout (this project's model directory; an OpenFlamingo release …);
 * `loadPretrained` picks the source, then applies the checks every source shares.
 */
import type { Flamingo } from '../model/flamingo.ts';
import type { BpeTokenizer } from '../data/tokenizer.ts';
import type { FlamingoProcessor } from '../data/processor.ts';
import { FlamingoError } from '../errors.ts';
import type { WeightDType } from '../engine/quant.ts';

/** A released OpenFlamingo's three sources as downloaded (see src/pretrained/release.ts). */
export interface ReleaseLocation {
  /** open_clip weight file (`open_clip_pytorch_model.bin` / `.safetensors`). */
  openClip: string;
  /** Hugging Face LM directory (config.json, weights, tokenizer.json). */
  lm: string;
  /** OpenFlamingo `checkpoint.pt` (or `.safetensors`). */
  checkpoint: string;
}

/** Where a model is: a directory (a model directory, an exported release …) or a release's three files. */
export type PretrainedLocation = string | ReleaseLocation;

/** A model location that does not exist or that no source can read, or a model and tokenizer that disagree. */
export class PretrainedError extends FlamingoError {}

export interface LoadPretrainedOptions {
  /** Read with this source (by name) instead of the first source whose `check` accepts the location. */
  source?: string;
  /** Added to the error when the location is missing or unreadable (e.g. how to get the bundled model). */
  hint?: string;
  /** Progress lines (which source, parameter count); nothing is logged without it. */
  log?: (line: string) => void;
  /** Storage of the linear weights: fp32, bf16 or int8 (packed at load, tensor by tensor; default: as saved). */
  dtype?: WeightDType;
  // Options that change how weights are held (dtype, mmap …) belong here; every source receives them.
}

/** The model directory's meta.json: the Fashion-MNIST classes seen in Flamingo training and the held-out rest. */
export interface ModelMeta {
  seen_classes: number[];
  heldout_classes: number[];
  [k: string]: unknown;
}

export interface Pretrained {
  model: Flamingo;
  tokenizer: BpeTokenizer;
  /** Text + images → model inputs, sized from the model's config (image size, max positions). */
  processor: FlamingoProcessor;
  /** The location as given, and the source that read it. */
  location: PretrainedLocation;
  source: string;
  /** meta.json when the location has one, else null. */
  meta: ModelMeta | null;
}

/** What a source returns; `loadPretrained` adds the shared checks, the processor and meta.json. */
export interface LoadedWeights {
  model: Flamingo;
  tokenizer: BpeTokenizer;
}

/**
 * One on-disk layout of a pretrained Flamingo. To support another layout, implement this and add it to
 * `SOURCES` in src/pretrained/sources.ts; `loadPretrained` and every command then read it.
 */
export interface PretrainedSource {
  readonly name: string;
  /** The files this source reads, for the message when no source accepts a location. */
  readonly describe: string;
  /** null when `location` holds this source's files; otherwise what is missing (e.g. "no tokenizer.json"). */
  check(location: PretrainedLocation): string | null;
  load(location: PretrainedLocation, options: LoadPretrainedOptions): LoadedWeights;
}
