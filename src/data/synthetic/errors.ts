/** Errors raised by the synthetic world; the message names the file, the operation and the offending values. */
import { FlamingoError } from '../../errors.ts';
export class SyntheticDataError extends FlamingoError {
  constructor(op: string, detail: string) {
    super(`synthetic/${op}: ${detail}`);
  }
}
