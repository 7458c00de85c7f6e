/** Errors raised by the synthetic world; the message names the file, the operation and the offending values. */
export class SyntheticDataError extends Error {
  constructor(op: string, detail: string) {
    super(`synthetic/${op}: ${detail}`);
    this.name = 'SyntheticDataError';
  }
}
