/**
 * What one LM family file provides (src/model/lm/<family>.ts, listed in registry.ts): how to read
 * its Hugging Face config.json (real field names), build the decoder with Hugging Face state-dict
 * names, count its parameters, and where OpenFlamingo's FlamingoLayer wrappers sit in its names.
 */
import type { Rng } from '../../engine/rng.ts';
import type { LMConfigBase } from '../config.ts';
import type { DecoderLM } from './types.ts';

export interface LMFamily {
  /** `lm.family` in a Flamingo config. */
  readonly name: string;
  /** Hugging Face `model_type` values this family reads. */
  readonly hfModelTypes: readonly string[];
  /** Decoder layers' name prefix (OpenFlamingo's `decoder_layers_attr_name`), e.g. `transformer.blocks`. */
  readonly layersPrefix: string;
  /** HF name of the input embedding (resized to the tokenizer's length by OpenFlamingo). */
  readonly inputEmbedding: string;
  /** HF name of an untied output embedding (also resized), or null when tied. */
  outputEmbedding(cfg: LMConfigBase): string | null;
  /** Check `lm` of a Flamingo config (unknown keys and bad values are errors naming `where`). */
  validate(raw: Record<string, unknown>, where: string): LMConfigBase;
  /**
   * The `lm` section for an HF config.json (`file` names it in errors) with the embeddings resized to
   * `vocabSize` rows (OpenFlamingo's resize_token_embeddings(len(tokenizer))).
   */
  fromHF(hf: Record<string, unknown>, file: string, vocabSize: number): LMConfigBase;
  /** The HF config.json describing this LM (vocab_size = the resized embedding rows). */
  toHF(cfg: LMConfigBase): Record<string, unknown>;
  create(cfg: LMConfigBase, rng: Rng): DecoderLM;
  countParameters(cfg: LMConfigBase): number;
  /** Tensors of the family's HF files that are buffers, not parameters (ignored when loading). */
  isBuffer(name: string): boolean;
}
