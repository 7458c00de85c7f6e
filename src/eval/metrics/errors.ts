/** Raised when a metric receives input it cannot score (empty set, no references, one-class labels, ...). */
export class MetricInputError extends Error {
  constructor(metric: string, detail: string) {
    super(`${metric}: ${detail}`);
    this.name = 'MetricInputError';
  }
}
