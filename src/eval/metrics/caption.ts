/** The COCO caption metric set OpenFlamingo reports (CIDEr-D, BLEU-1..4, ROUGE-L) over one evaluated set. */
import { bleu } from './bleu.ts';
import { ciderD } from './cider.ts';
import { rougeL } from './rouge.ts';
import type { CaptionSample } from './types.ts';

export interface CaptionScores {
  CIDEr: number;
  Bleu_1: number;
  Bleu_2: number;
  Bleu_3: number;
  Bleu_4: number;
  ROUGE_L: number;
}

export interface CaptionEvaluation {
  readonly scores: CaptionScores;
  /** Per-sample values, aligned with the input order. */
  readonly perImage: { CIDEr: number[]; Bleu: number[][]; ROUGE_L: number[] };
}

/** Samples must already be PTB-tokenized (lowercase, punctuation removed, single spaces). */
export function evaluateCaptions(samples: readonly CaptionSample[]): CaptionEvaluation {
  const c = ciderD(samples);
  const b = bleu(samples, 4);
  const r = rougeL(samples);
  return {
    scores: {
      CIDEr: c.score,
      Bleu_1: b.corpus[0]!,
      Bleu_2: b.corpus[1]!,
      Bleu_3: b.corpus[2]!,
      Bleu_4: b.corpus[3]!,
      ROUGE_L: r.score,
    },
    perImage: { CIDEr: c.perImage, Bleu: b.perImage, ROUGE_L: r.perImage },
  };
}
