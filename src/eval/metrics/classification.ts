/**
 * Classification metrics as OpenFlamingo reports them: ROC-AUC identical to
 * sklearn.metrics.roc_auc_score (ROC curve with tied scores as one threshold, collinear points
 * dropped, trapezoid area), top-1 accuracy, and the Hateful Memes P(yes) score from log-probs.
 */
import { MetricInputError } from './errors.ts';

/** sklearn's _binary_clf_curve: cumulative (fps, tps) at each distinct score, highest first. */
function binaryClfCurve(labels: readonly number[], scores: readonly number[]): { fps: number[]; tps: number[] } {
  // Descending score; ties stay together, their internal order does not matter for the curve.
  const order = scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  const fps: number[] = [];
  const tps: number[] = [];
  let tp = 0;
  for (let j = 0; j < order.length; j++) {
    const i = order[j]!;
    tp += labels[i]!;
    const last = j === order.length - 1;
    if (last || scores[order[j + 1]!] !== scores[i]) {
      tps.push(tp);
      fps.push(j + 1 - tp);
    }
  }
  return { fps, tps };
}

/** np.trapz(y, x): Σ (x[i+1]−x[i]) · (y[i+1]+y[i]) / 2. */
function trapezoid(x: readonly number[], y: readonly number[]): number {
  let area = 0;
  for (let i = 1; i < x.length; i++) area += ((x[i]! - x[i - 1]!) * (y[i]! + y[i - 1]!)) / 2;
  return area;
}

/**
 * ROC-AUC of binary labels (0/1) against real-valued scores (higher = more positive).
 * Throws when only one class is present, as sklearn does.
 */
export function rocAuc(labels: readonly number[], scores: readonly number[]): number {
  if (labels.length !== scores.length) {
    throw new MetricInputError('ROC-AUC', `labels (${labels.length}) and scores (${scores.length}) differ in length`);
  }
  labels.forEach((l, i) => {
    if (l !== 0 && l !== 1) throw new MetricInputError('ROC-AUC', `label ${i} is ${l}, expected 0 or 1`);
    if (!Number.isFinite(scores[i])) throw new MetricInputError('ROC-AUC', `score ${i} is not a finite number`);
  });
  const nPos = labels.reduce((s, l) => s + l, 0);
  if (nPos === 0 || nPos === labels.length) {
    throw new MetricInputError('ROC-AUC', 'only one class present in the labels; ROC AUC is not defined');
  }
  let { fps, tps } = binaryClfCurve(labels, scores);
  // roc_curve(drop_intermediate=True): keep ends and points where the curve changes direction.
  if (fps.length > 2) {
    const keep: number[] = [0];
    for (let i = 1; i < fps.length - 1; i++) {
      const d2f = fps[i + 1]! - 2 * fps[i]! + fps[i - 1]!;
      const d2t = tps[i + 1]! - 2 * tps[i]! + tps[i - 1]!;
      if (d2f !== 0 || d2t !== 0) keep.push(i);
    }
    keep.push(fps.length - 1);
    fps = keep.map((i) => fps[i]!);
    tps = keep.map((i) => tps[i]!);
  }
  const fpsAll = [0, ...fps];
  const tpsAll = [0, ...tps];
  const fpr = fpsAll.map((v) => v / fpsAll[fpsAll.length - 1]!);
  const tpr = tpsAll.map((v) => v / tpsAll[tpsAll.length - 1]!);
  return trapezoid(fpr, tpr);
}

/** Index of the largest value; the first one on a tie (torch.topk's usual CPU behaviour). */
export function argmax(xs: readonly number[]): number {
  if (xs.length === 0) throw new MetricInputError('argmax', 'empty vector');
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

/** Fraction (not percent) of predictions equal to the ground truth. */
export function top1Accuracy<T>(predicted: readonly T[], truth: readonly T[]): number {
  if (predicted.length !== truth.length) {
    throw new MetricInputError('top-1 accuracy', `${predicted.length} predictions for ${truth.length} labels`);
  }
  if (truth.length === 0) throw new MetricInputError('top-1 accuracy', 'no items to score');
  let correct = 0;
  for (let i = 0; i < truth.length; i++) if (predicted[i] === truth[i]) correct++;
  return correct / truth.length;
}

/** Class name with the largest log-prob for each row (rank classification). */
export function predictClassNames(logprobs: readonly (readonly number[])[], classNames: readonly string[]): string[] {
  return logprobs.map((row, i) => {
    if (row.length !== classNames.length) {
      throw new MetricInputError('rank classification', `row ${i} has ${row.length} log-probs for ${classNames.length} classes`);
    }
    return classNames[argmax(row)]!;
  });
}

/** torch.logsumexp: max + log Σ exp(x − max). */
export function logSumExp(xs: readonly number[]): number {
  const m = Math.max(...xs);
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (const x of xs) s += Math.exp(x - m);
  return m + Math.log(s);
}

export interface BinaryPrediction {
  readonly predLabel: string;
  /** P(positive class). */
  readonly predScore: number;
}

/**
 * OpenFlamingo's Hateful Memes path: the top class's probability is exp(top − logsumexp(row));
 * pred_score is that probability when the top class is the positive one, else 1 − it, i.e. P(positive).
 * The positive class is the lexicographically greater name ("yes" of ["no", "yes"]), matching
 * sklearn's label ordering for string labels.
 */
export function binaryScoreFromLogprobs(row: readonly number[], classNames: readonly string[]): BinaryPrediction {
  if (classNames.length !== 2 || row.length !== 2) {
    throw new MetricInputError('binary score', `expected 2 classes and 2 log-probs, got ${classNames.length} and ${row.length}`);
  }
  const positive = [...classNames].sort()[1]!;
  const top = argmax(row);
  const prob = Math.exp(row[top]! - logSumExp(row));
  const predLabel = classNames[top]!;
  return { predLabel, predScore: predLabel === positive ? prob : 1 - prob };
}

/** roc_auc_score with string labels: the sorted-greatest label is the positive class. */
export function rocAucStringLabels(labels: readonly string[], scores: readonly number[]): number {
  const classes = [...new Set(labels)].sort();
  if (classes.length !== 2) {
    throw new MetricInputError('ROC-AUC', `expected exactly 2 distinct labels, found ${classes.length}`);
  }
  return rocAuc(labels.map((l) => (l === classes[1] ? 1 : 0)), scores);
}
