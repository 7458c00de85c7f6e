/** Errors of the tokenizer: its files, its vocabulary, its inputs. */
import { FlamingoError } from '../errors.ts';

export class TokenizerError extends FlamingoError {
  constructor(message: string) {
    super(`tokenizer: ${message}`);
  }
}

/** Role → literal token text. The defaults are the ones the Flamingo data pipeline uses. */
