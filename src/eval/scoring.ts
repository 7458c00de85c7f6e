/**
 * Score a results file with exactly the readers and metrics `flamingo score` uses (formats.ts +
 * metrics/), reading the files back from disk so what is scored is what was written.
 * The headline number is the one the papers report: CIDEr × 100 (OpenFlamingo), VQA accuracy in %,
 * ROC-AUC × 100 (Flamingo Table 1).
 */
import { joinCaptions, readCaptionResults, readCocoCaptions } from './formats-captions.ts';
import { joinClassification, readClassificationAnnotations, readClassificationResults } from './formats-classification.ts';
import { joinVqa, readVqaAnnotations, readVqaQuestions, readVqaResults } from './formats-vqa.ts';
import { evaluateCaptions, ptbTokenize, rocAuc, vqaAccuracy } from './metrics/index.ts';
import type { ScoringSpec } from './datasets/types.ts';

export interface TrialScore {
  /** Name of the headline metric. */
  readonly metric: string;
  readonly value: number;
  /** Every number `flamingo score --json` prints for this file. */
  readonly details: Record<string, unknown>;
}

export function metricName(task: ScoringSpec['task']): string {
  return task === 'captioning' ? 'CIDEr (x100)' : task === 'vqa' ? 'VQA accuracy (%)' : 'ROC-AUC (x100)';
}

export function scoreResultsFile(spec: ScoringSpec, resultsFile: string): TrialScore {
  const metric = metricName(spec.task);
  switch (spec.task) {
    case 'captioning': {
      const ann = readCocoCaptions(spec.annotations);
      const joined = joinCaptions(ann, spec.annotations, readCaptionResults(resultsFile), resultsFile);
      const s = evaluateCaptions(joined.map((j) => ({ candidate: ptbTokenize(j.candidate), references: j.references.map(ptbTokenize) }))).scores;
      return { metric, value: 100 * s.CIDEr, details: { ...s } };
    }
    case 'vqa': {
      const joined = joinVqa(
        readVqaQuestions(spec.questions), spec.questions, readVqaAnnotations(spec.annotations), spec.annotations,
        readVqaResults(resultsFile), resultsFile,
      );
      const ev = vqaAccuracy(joined);
      return { metric, value: ev.overall, details: { accuracy: ev.overall, per_answer_type: ev.perAnswerType } };
    }
    case 'classification': {
      const j = joinClassification(readClassificationAnnotations(spec.annotations), spec.annotations, readClassificationResults(resultsFile), resultsFile);
      let correct = 0;
      j.scores.forEach((s, i) => { if ((s > 0.5 ? 1 : 0) === j.labels[i]) correct++; });
      const accuracy = correct / j.scores.length;
      const positives = j.labels.filter((l) => l === 1).length;
      // ROC-AUC is undefined with one class (tiny subsets): report NaN rather than failing the run.
      const roc = positives === 0 || positives === j.labels.length ? NaN : rocAuc(j.labels, j.scores);
      return { metric, value: 100 * roc, details: { roc_auc: Number.isNaN(roc) ? null : roc, accuracy } };
    }
  }
}
