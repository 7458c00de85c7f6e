/** Evaluation metrics matching the official implementations OpenFlamingo reports with. */
export type { CaptionSample } from './types.ts';
export { MetricInputError } from './errors.ts';
export { bleu, closestRefLength, type BleuResult } from './bleu.ts';
export { ciderD, type CiderOptions } from './cider.ts';
export { rougeL, rougeLSample, lcsLength } from './rouge.ts';
export { evaluateCaptions, type CaptionScores, type CaptionEvaluation } from './caption.ts';
export { ptbTokenize, PTB_PUNCTUATION } from './ptb-tokenize.ts';
export { pyRound } from './py-round.ts';
export { normalizeVqaAnswer, processPunctuation, processDigitArticle, cleanWhitespace } from './vqa-normalize.ts';
export { vqaAccuracy, vqaItemAccuracy, type VqaItem, type VqaEvaluation } from './vqa.ts';
export {
  rocAuc, rocAucStringLabels, argmax, top1Accuracy, predictClassNames, logSumExp, binaryScoreFromLogprobs,
  type BinaryPrediction,
} from './classification.ts';
export { postprocessCaptionGeneration, postprocessVqaGeneration } from './postprocess.ts';
