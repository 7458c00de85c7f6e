/**
 * VQA-format datasets (VQAv2, OK-VQA, TextVQA, VizWiz as OpenFlamingo ships them): a questions file
 * {questions: [{question_id, image_id, question}]}, an annotations file
 * {annotations: [{question_id, answers: [{answer}], answer_type, question_type}]} and an image folder
 * whose file names follow a per-dataset pattern. Answers are joined by question_id.
 */
import { join } from 'node:path';
import { readVqaAnnotations, readVqaQuestions } from '../formats-vqa.ts';
import { FormatError } from '../formats.ts';
import { EvalDatasetError, type EvalDataset, type Id, type LoadOptions, type SkippedItem, type VqaItem } from './types.ts';
import { checkMedia, formatPattern, imageRef } from './common.ts';

export type VqaDatasetName = 'vqav2' | 'okvqa' | 'textvqa' | 'vizwiz';

export interface VqaSplitFiles {
  readonly questions: string;
  readonly annotations: string;
  readonly images: string;
  /** File name of an image from its image_id, Python %-style (e.g. COCO_val2014_%012d.jpg). */
  readonly pattern?: string;
}

export interface VqaOptions extends LoadOptions {
  readonly dataset: VqaDatasetName;
  readonly support: VqaSplitFiles;
  readonly query: VqaSplitFiles;
}

/** OpenFlamingo's image naming: COCO_<folder>_%012d.jpg for COCO-based sets, <id>.jpg for TextVQA, the id itself for VizWiz. */
export function defaultImagePattern(dataset: VqaDatasetName, split: 'support' | 'query'): string {
  switch (dataset) {
    case 'vqav2':
    case 'okvqa':
      return split === 'support' ? 'COCO_train2014_%012d.jpg' : 'COCO_val2014_%012d.jpg';
    case 'textvqa':
      return '%s.jpg';
    case 'vizwiz':
      return '%s';
  }
}

function rethrow(e: unknown): never {
  if (e instanceof FormatError) throw new EvalDatasetError(e.file, e.message.slice(e.file.length + 2));
  throw e;
}

function loadSplit(opts: VqaOptions, split: 'support' | 'query'): VqaItem[] {
  const files = split === 'support' ? opts.support : opts.query;
  const pattern = files.pattern ?? defaultImagePattern(opts.dataset, split);
  let questions;
  let annotations;
  try {
    questions = readVqaQuestions(files.questions);
    annotations = readVqaAnnotations(files.annotations);
  } catch (e) {
    rethrow(e);
  }
  const items: VqaItem[] = [];
  for (const q of questions.values()) {
    const ann = annotations.get(q.questionId);
    if (!ann) throw new EvalDatasetError(files.annotations, `no annotation for question_id ${JSON.stringify(q.questionId)} of ${files.questions}`);
    const path = join(files.images, formatPattern(pattern, q.imageId));
    items.push({ kind: 'vqa', id: q.questionId, media: imageRef(path), question: q.question, answers: ann.answers });
  }
  if (items.length === 0) throw new EvalDatasetError(files.questions, 'no questions');
  return items;
}

export function loadVqaDataset(opts: VqaOptions): EvalDataset {
  const skipped: SkippedItem[] = [];
  const query = checkMedia(loadSplit(opts, 'query'), 'query', opts, skipped, opts.query.questions);
  const support = checkMedia(loadSplit(opts, 'support'), 'support', opts, skipped, opts.support.questions);
  return {
    name: opts.dataset,
    kind: 'vqa',
    support,
    query,
    skipped,
    scoring: () => ({ task: 'vqa', questions: opts.query.questions, annotations: opts.query.annotations }),
  };
}

/** VQA-format files for items that carry their own answers (used by video QA). */
export function vqaStyleFiles(items: readonly { id: Id; question: string; answers: readonly string[] }[], imageIdOf: (i: number) => Id) {
  return {
    questions: { questions: items.map((it, i) => ({ question_id: it.id, image_id: imageIdOf(i), question: it.question })) },
    annotations: {
      annotations: items.map((it, i) => ({
        question_id: it.id,
        image_id: imageIdOf(i),
        question_type: 'none',
        answer_type: 'other',
        answers: it.answers.map((a, j) => ({ answer: a, answer_id: j + 1 })),
      })),
    },
  };
}
