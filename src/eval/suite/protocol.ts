/**
 * The OpenFlamingo evaluation protocol as the suite runs it for captioning, VQA and video QA: random
 * demonstrations from a support pool per query, batched generation (src/eval/tasks.ts runTrial), scored
 * with the official metric code (CIDEr, VQA accuracy).
 */
import type { CaptionItem, EvalItem, TaskKind, VqaItem } from '../datasets/types.ts';
import { type ResultEntry, runTrial } from '../tasks.ts';
import { evaluateCaptions, ptbTokenize, vqaAccuracy } from '../metrics/index.ts';
import { BATCH, doesNotFit, keepOutputs, keepPrompts, mediaLimitNote, noteUnfit, pct, type SuiteContext } from './context.ts';
import { BUILTIN_METRICS, type BuiltinTaskName, type SuiteExample, type TaskReport } from './plan.ts';

/** The generated text of a caption / VQA result, and the first reference it is scored against. */
function resultExample(q: EvalItem, r: ResultEntry): SuiteExample {
  if ('caption' in r) return { output: r.caption, expected: (q as CaptionItem).captions[0]! };
  if ('answer' in r) return { output: r.answer, expected: (q as VqaItem).answers[0]! };
  return { output: String(r.score), expected: '' };
}

/** Score one trial's results (query order) with the official metric code. */
export function scoreResults(kind: TaskKind, queries: readonly EvalItem[], results: readonly ResultEntry[]): number {
  if (kind === 'captioning') {
    const samples = queries.map((q, i) => ({
      candidate: ptbTokenize((results[i] as { caption: string }).caption),
      references: (q as CaptionItem).captions.map(ptbTokenize),
    }));
    return pct(100 * evaluateCaptions(samples).scores.CIDEr);
  }
  return scoreVqa(queries, results).overall;
}

/** VQA accuracy overall and per question kind (count, colour, shape, …; the VQAv2 scorer's answer types). */
export function scoreVqa(queries: readonly EvalItem[], results: readonly ResultEntry[]): { overall: number; byKind: Record<string, number> } {
  const ev = vqaAccuracy(queries.map((q, i) => ({
    prediction: (results[i] as { answer: string }).answer,
    answers: (q as VqaItem).answers,
    answerType: (q as VqaItem & { answerType?: string }).answerType ?? 'other',
  })));
  return { overall: ev.overall, byKind: ev.perAnswerType };
}

/** One task over its shot counts: each a trial of `queries` with demonstrations drawn from `support`. */
export function protocolTask(
  ctx: SuiteContext, task: BuiltinTaskName, kind: TaskKind, support: readonly EvalItem[], queries: readonly EvalItem[],
  settings?: Record<string, number | string>,
): TaskReport {
  const rep: TaskReport = { task, metric: BUILTIN_METRICS[task], shots: {}, items: queries.length, ...(settings ? { settings } : {}) };
  for (const shots of ctx.plan.shots[task]) {
    const limit = mediaLimitNote(ctx.model, shots === 0 ? 1 : shots + 1);
    if (limit) {
      noteUnfit(rep, shots, limit);
      continue;
    }
    try {
      const out = runTrial(ctx, kind, support, queries, {
        shots, seed: ctx.seed, selection: 'random', batchSize: BATCH, querySetSize: support.length,
        generation: { numBeams: ctx.plan.numBeams, lengthPenalty: 0 }, demoMode: 'per-query',
      });
      keepPrompts(ctx, task, shots, out.prompts);
      keepOutputs(ctx, task, shots, out.results.map((r, i) => resultExample(queries[i]!, r)));
      if (kind === 'captioning') rep.shots[String(shots)] = scoreResults(kind, queries, out.results);
      else {
        const { overall, byKind } = scoreVqa(queries, out.results);
        rep.shots[String(shots)] = overall;
        (rep.by_kind ??= {})[String(shots)] = byKind;
      }
      ctx.log(`${task} ${shots}-shot: ${rep.metric} ${rep.shots[String(shots)]!.toFixed(2)} (${out.seconds.toFixed(1)} s)`);
    } catch (e) {
      if (!doesNotFit(e)) throw e;
      noteUnfit(rep, shots, e.message);
    }
  }
  return rep;
}
