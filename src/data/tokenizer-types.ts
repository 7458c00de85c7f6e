/** The tokenizer's option and role types, shared by the tokenizer and its file format. */

export interface SpecialTokenNames {
  image: string;
  eoc: string;
  pad: string;
  eos: string;
}

export const DEFAULT_SPECIAL_TOKENS: SpecialTokenNames = {
  image: '<image>',
  eoc: '<|endofchunk|>',
  pad: '<pad>',
  eos: '<|endoftext|>',
};

export interface TrainOptions {
  /** Target vocabulary size, special tokens and the 256 byte symbols included (smaller if pairs run out). */
  vocabSize: number;
  /**
   * Role names (defaults above) and extra special tokens; all get the lowest ids, roles first. A plain
   * array means "the default roles plus these".
   */
  specialTokens?: (Partial<SpecialTokenNames> & { extra?: string[] }) | string[];
  /** Pairs seen fewer times are not merged (default 2). */
  minFrequency?: number;
}

export interface EncodeOptions {
  /** Append the eos token (default false). */
  addSpecial?: boolean;
  /** Recognise special/added token text literally (default true); false encodes it as plain bytes. */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens from the output (default false). */
  skipSpecial?: boolean;
  /**
   * transformers' `clean_up_tokenization_spaces` (default false, as the `tokenizers` library):
   * " ." → ".", " ?" → "?", " !" → "!", " ," → ",", " ' " → "'", " n't" → "n't", " 'm", " 's", " 've", " 're".
   */
  cleanUpSpaces?: boolean;
}

/** Text normaliser of a tokenizer.json (only what byte-level BPE files use). */
export type NormalizerKind = 'none' | 'nfc';
