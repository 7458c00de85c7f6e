/**
 * VQA accuracy exactly as OpenFlamingo's vqa_metric.py (VQAEval, n = 2) reports it. OpenFlamingo
 * normalizes unconditionally (the original VQA code skips normalization when all 10 answers agree).
 */
import { MetricInputError } from './errors.ts';
import { pyRound } from './py-round.ts';
import { normalizeVqaAnswer } from './vqa-normalize.ts';

export interface VqaItem {
  readonly prediction: string;
  /** The human answers (10 in VQAv2); any number ≥ 1 is scored the same way. */
  readonly answers: readonly string[];
  readonly answerType: string;
}

export interface VqaEvaluation {
  /** Python round(100 · Σacc / N, 2): the number OpenFlamingo reports. */
  readonly overall: number;
  readonly overallUnrounded: number;
  /** Σacc / N as a fraction. */
  readonly mean: number;
  /** Rounded percentage per answer type, in first-seen order. */
  readonly perAnswerType: Record<string, number>;
  /** Unrounded fraction per item, aligned with the input. */
  readonly perItem: number[];
  readonly perItemPercent: number[];
}

/** Round digits used by the official code (VQAEval's n). */
const DIGITS = 2;

/**
 * Leave-one-out accuracy: for each human answer, min(1, matches among the others / 3); averaged.
 * Answers are distinguished by position, so a duplicate removes only itself.
 */
export function vqaItemAccuracy(prediction: string, answers: readonly string[]): number {
  if (answers.length === 0) throw new MetricInputError('VQA accuracy', 'question has no human answers');
  const pred = normalizeVqaAnswer(prediction);
  const norm = answers.map(normalizeVqaAnswer);
  const totalMatches = norm.filter((a) => a === pred).length;
  let sum = 0;
  for (const a of norm) {
    const others = totalMatches - (a === pred ? 1 : 0);
    sum += Math.min(1, others / 3);
  }
  return sum / norm.length;
}

/** 100 · Σ / N with a plain left-to-right sum, as upstream's `100 * float(sum(acc)) / len(acc)`. */
function percent(accs: readonly number[]): number {
  let s = 0;
  for (const a of accs) s += a;
  return (100 * s) / accs.length;
}

export function vqaAccuracy(items: readonly VqaItem[]): VqaEvaluation {
  if (items.length === 0) throw new MetricInputError('VQA accuracy', 'no questions to score');
  const perItem = items.map((it) => vqaItemAccuracy(it.prediction, it.answers));
  const byType = new Map<string, number[]>();
  items.forEach((it, i) => {
    const list = byType.get(it.answerType) ?? [];
    list.push(perItem[i]!);
    byType.set(it.answerType, list);
  });
  let sum = 0;
  for (const a of perItem) sum += a;
  const overallUnrounded = percent(perItem);
  const perAnswerType: Record<string, number> = {};
  for (const [t, accs] of byType) perAnswerType[t] = pyRound(percent(accs), DIGITS);
  return {
    overall: pyRound(overallUnrounded, DIGITS),
    overallUnrounded,
    mean: sum / perItem.length,
    perAnswerType,
    perItem,
    perItemPercent: perItem.map((a) => pyRound(100 * a, DIGITS)),
  };
}
