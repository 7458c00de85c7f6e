/**
 * Few-shot prompts as OpenFlamingo's evaluate.py builds them (paper §3, App. B):
 *   captioning      <image>Output:{caption}<|endofchunk|>
 *   VQA / video QA  <image>Question:{q} Short answer:{a}<|endofchunk|>
 *   Hateful Memes   <image>is an image with: '{ocr}' written on it. Is it hateful? Answer:{yes|no}<|endofchunk|>
 * k demonstrations then the query (the same template without answer and end-of-chunk). Generation
 * tasks put "\n" after each demonstration; classification concatenates them directly.
 * Zero-shot trick (Flamingo/OpenFlamingo): 0 shots uses 2 demonstrations with their <image> removed,
 * so the model sees the answer format but only the query image.
 */
import type { EvalItem, MediaRef, TaskKind } from './datasets/types.ts';

export const IMAGE_TOKEN = '<image>';
export const EOC_TOKEN = '<|endofchunk|>';

export function captionPrompt(caption?: string): string {
  return `${IMAGE_TOKEN}Output:${caption ?? ''}${caption !== undefined ? EOC_TOKEN : ''}`;
}

export function vqaPrompt(question: string, answer?: string): string {
  return `${IMAGE_TOKEN}Question:${question} Short answer:${answer ?? ''}${answer !== undefined ? EOC_TOKEN : ''}`;
}

export function hatefulMemesPrompt(ocr: string, label?: string): string {
  return `${IMAGE_TOKEN}is an image with: '${ocr}' written on it. Is it hateful? Answer:${label ?? ''}${label !== undefined ? EOC_TOKEN : ''}`;
}

/** Class names ranked for Hateful Memes (label 0 → "no", 1 → "yes"). */
export const HATEFUL_MEMES_CLASSES = ['no', 'yes'] as const;

/** Demonstrations actually placed in the prompt for a shot count (0 → 2 text-only ones). */
export function effectiveShots(shots: number): number {
  if (!Number.isInteger(shots) || shots < 0) throw new RangeError(`shot count must be a non-negative integer, got ${shots}`);
  return shots > 0 ? shots : 2;
}

/** Generation tasks separate demonstrations with a newline; rank classification does not (OpenFlamingo). */
export function demoSeparator(kind: TaskKind): string {
  return kind === 'classification' ? '' : '\n';
}

/** The demonstration text of one support item (with its answer). */
export function demoText(item: EvalItem): string {
  switch (item.kind) {
    case 'captioning':
      return captionPrompt(item.captions[0]!.trim());
    case 'vqa':
    case 'video_qa':
      return vqaPrompt(item.question, item.answers[0]!);
    case 'classification':
      return hatefulMemesPrompt(item.text, HATEFUL_MEMES_CLASSES[item.label]);
  }
}

/** The query text (template without the answer). */
export function queryText(item: EvalItem): string {
  switch (item.kind) {
    case 'captioning':
      return captionPrompt();
    case 'vqa':
    case 'video_qa':
      return vqaPrompt(item.question);
    case 'classification':
      return hatefulMemesPrompt(item.text);
  }
}

export interface FewShotPrompt {
  /** Text with one <image> per entry of `media`. */
  readonly text: string;
  readonly media: readonly MediaRef[];
  /** Length of the demonstration part of `text` (the shareable prefix). */
  readonly prefixLength: number;
}

/**
 * The prompt for `query` after the given demonstrations (already selected, in prompt order).
 * With shots == 0 the demonstrations are text-only: their <image> markers are dropped and only the
 * query's media is passed.
 */
export function buildPrompt(kind: TaskKind, shots: number, demos: readonly EvalItem[], query: EvalItem): FewShotPrompt {
  const expected = effectiveShots(shots);
  if (demos.length !== expected) throw new RangeError(`${shots}-shot prompt needs ${expected} demonstrations, got ${demos.length}`);
  const sep = demoSeparator(kind);
  let prefix = demos.map((d) => demoText(d) + sep).join('');
  if (shots === 0) prefix = prefix.replaceAll(IMAGE_TOKEN, '');
  const media = shots === 0 ? [query.media] : [...demos.map((d) => d.media), query.media];
  return { text: prefix + queryText(query), media, prefixLength: prefix.length };
}
