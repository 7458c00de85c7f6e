/**
 * MSRVTT-QA: qa json files [{video_id | video, question, answer, id?}] (train_qa.json, test_qa.json)
 * and a videos folder holding, per video, either a sub-folder of frame images or a video file
 * (video7010.mp4 as MSR-VTT ships them; webm, avi, gif, … too; decoded by ffmpeg). A numeric
 * `video_id` 7010 names `video7010` (the MSR-VTT naming); a string `video` is the name itself.
 * Each video is ONE media item of F frames (paper: video as a sequence of frames into the resampler).
 *
 * Scoring: Flamingo reports top-1 accuracy. The results are written in VQA format; the generated
 * VQA annotations repeat the single answer 10 times, which makes VQA accuracy (min(1, matches/3) over
 * leave-one-out subsets) exactly 100 · [normalised prediction == normalised answer].
 */
import { join } from 'node:path';
import { EvalDatasetError, type EvalDataset, type EvalItem, type Id, type LoadOptions, type VqaItem } from './types.ts';
import { readCheckedSplits, field, isArray, isObject, isString, readJson, videoRef, writeJson } from './common.ts';
import { vqaStyleFiles } from './vqa.ts';

export interface MsrvttQaOptions extends LoadOptions {
  readonly support: string;
  readonly query: string;
  /** Folder of per-video frame folders or video files. */
  readonly videos: string;
}

/** Frames per video when not given (the paper samples 8 at 1 FPS; small models use fewer). */
export const DEFAULT_FRAMES = 4;

const ANSWER_COPIES = 10;

function videoName(file: string, where: string, o: Record<string, unknown>): string {
  if (typeof o.video === 'string' && o.video.length > 0) return o.video;
  const v = o.video_id;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return `video${v}`;
  if (typeof v === 'string' && v.length > 0) return /^\d+$/.test(v) ? `video${v}` : v;
  throw new EvalDatasetError(file, `${where}: needs "video_id" (integer) or "video" (folder name), got ${JSON.stringify(o.video_id ?? o.video)}`);
}

function readSplit(file: string, opts: MsrvttQaOptions): (VqaItem & { video: string })[] {
  const data = readJson(file);
  if (!isArray(data)) throw new EvalDatasetError(file, 'expected a JSON array of {video_id, question, answer}');
  const frames = opts.frames ?? DEFAULT_FRAMES;
  const ids = new Set<string>();
  const items = data.map((raw, i) => {
    const where = `entry ${i}`;
    if (!isObject(raw)) throw new EvalDatasetError(file, `${where} must be an object`);
    const question = field(file, where, raw, 'question', isString, 'a string');
    const answer = field(file, where, raw, 'answer', isString, 'a string');
    const video = videoName(file, where, raw);
    const id: Id = typeof raw.id === 'number' || typeof raw.id === 'string' ? raw.id : i;
    if (ids.has(JSON.stringify(id))) throw new EvalDatasetError(file, `${where}: duplicate id ${JSON.stringify(id)}`);
    ids.add(JSON.stringify(id));
    return { kind: 'video_qa' as const, id, media: videoRef(opts.videos, video, frames), question, answers: [answer], video };
  });
  if (items.length === 0) throw new EvalDatasetError(file, 'no questions');
  return items;
}

export function loadMsrvttQa(opts: MsrvttQaOptions): EvalDataset {
  const { query, support, skipped } = readCheckedSplits(opts, (file) => readSplit(file, opts));
  return {
    name: 'msrvtt_qa',
    kind: 'video_qa',
    support,
    query,
    skipped,
    scoring: (outDir, items: readonly EvalItem[]) => {
      const qa = items.filter((it): it is VqaItem & { video: string } => it.kind === 'video_qa');
      const repeated = qa.map((it) => ({ ...it, answers: Array<string>(ANSWER_COPIES).fill(it.answers[0]!) }));
      const files = vqaStyleFiles(repeated, (i) => qa[i]!.video);
      const questions = join(outDir, 'msrvtt_qa_questions_vqa_format.json');
      const annotations = join(outDir, 'msrvtt_qa_annotations_vqa_format.json');
      writeJson(questions, files.questions);
      writeJson(annotations, files.annotations);
      return { task: 'vqa', questions, annotations };
    },
  };
}
