/**
 * What every evaluation dataset loader produces: items of one task kind, split into the support
 * pool (demonstrations come from here) and the evaluated queries, plus where the scorer finds its
 * annotations. Media are referenced lazily (a key + a loader) so a 100k-item training split costs
 * no pixels until an item is actually shown to the model.
 */
import type { RgbImage } from '../../data/image.ts';
import type { Id } from '../formats.ts';
import { FlamingoError } from '../../errors.ts';

export type { Id };

/** The task a dataset is evaluated as; it picks the prompt template, decoding and metric. */
export type TaskKind = 'captioning' | 'vqa' | 'classification' | 'video_qa';

export class EvalDatasetError extends FlamingoError {
  constructor(readonly file: string, detail: string) {
    super(`${file}: ${detail}`);
  }
}

/** One media item: a still image (1 frame) or a video (F frames), shown to the model as ONE <image>. */
export interface MediaRef {
  /** Identity for caching: two refs with the same key are the same pixels. */
  readonly key: string;
  /** Files behind the media (for messages and existence checks); empty for in-memory media. */
  readonly files: readonly string[];
  load(): RgbImage[];
}

interface ItemBase {
  /** The id the results file uses (image_id, question_id or id). */
  readonly id: Id;
  readonly media: MediaRef;
}

export interface CaptionItem extends ItemBase {
  readonly kind: 'captioning';
  /** Reference captions; the first one is the demonstration caption (OpenFlamingo uses sentences[0].raw). */
  readonly captions: readonly string[];
}

export interface VqaItem extends ItemBase {
  readonly kind: 'vqa' | 'video_qa';
  readonly question: string;
  /** Human answers; answers[0] is the demonstration answer. */
  readonly answers: readonly string[];
}

export interface ClassificationItem extends ItemBase {
  readonly kind: 'classification';
  /** Text written on the meme (the OCR field). */
  readonly text: string;
  readonly label: 0 | 1;
}

export type EvalItem = CaptionItem | VqaItem | ClassificationItem;

/** Files `flamingo score` needs for this dataset's results (absolute paths). */
export type ScoringSpec =
  | { readonly task: 'captioning'; readonly annotations: string }
  | { readonly task: 'vqa'; readonly questions: string; readonly annotations: string }
  | { readonly task: 'classification'; readonly annotations: string };

export interface EvalDataset {
  readonly name: string;
  readonly kind: TaskKind;
  readonly support: readonly EvalItem[];
  readonly query: readonly EvalItem[];
  /**
   * Files the scorer reads. Loaders whose official annotations are not in a scorable format write
   * them (COCO-style captions from a Karpathy json, VQA-style files for MSRVTT-QA) into `outDir`.
   */
  scoring(outDir: string, query: readonly EvalItem[]): ScoringSpec;
  /** Items dropped while loading because their media were missing (only with skipInvalid). */
  readonly skipped: readonly SkippedItem[];
}

export interface SkippedItem {
  readonly split: 'support' | 'query';
  readonly id: Id;
  readonly file: string;
  readonly reason: string;
}

export interface LoadOptions {
  /** Drop items whose media file is missing instead of failing (counted in `skipped`). */
  readonly skipInvalid?: boolean;
  /** Frames per video (video tasks). */
  readonly frames?: number;
}
