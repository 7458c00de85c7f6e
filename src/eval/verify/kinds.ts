/** The fixture formats `flamingo verify` knows; a new format is one file plus one line here. */
import type { VerifyKind } from './types.ts';
import { parityKind } from './parity.ts';
import { preprocessKind } from './preprocess.ts';
import { tokenizerKind } from './tokenizer.ts';

export const VERIFY_KINDS: readonly VerifyKind[] = [
  parityKind,
  preprocessKind,
  tokenizerKind,
];
