/** Raised when a metric receives input it cannot score (empty set, no references, one-class labels, ...). */
import { FlamingoError } from '../../errors.ts';
export class MetricInputError extends FlamingoError {
  constructor(metric: string, detail: string) {
    super(`${metric}: ${detail}`);
  }
}
