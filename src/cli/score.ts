/**
 * `flamingo score`: score a results file against official-format annotations with the metrics
 * OpenFlamingo reports. Exit codes: 0 success, 1 data error (bad/mismatched files), 2 usage error.
 */
import { FormatError } from '../eval/formats.ts';
import { joinCaptions, readCaptionResults, readCocoCaptions } from '../eval/formats-captions.ts';
import { joinClassification, readClassificationAnnotations, readClassificationResults } from '../eval/formats-classification.ts';
import { joinVqa, readVqaAnnotations, readVqaQuestions, readVqaResults } from '../eval/formats-vqa.ts';
import { evaluateCaptions, ptbTokenize, rocAuc, vqaAccuracy } from '../eval/metrics/index.ts';
import { UsageError } from '../errors.ts';
import { parseOptions } from './args.ts';

const USAGE = `usage: flamingo score --task <captioning|vqa|classification> [options] [--json]

  --task captioning --annotations <coco_captions.json> --results <results.json> [--tokenized]
      annotations: {"images": [{"id"}], "annotations": [{"image_id", "caption"}]}
      results:     [{"image_id", "caption"}]  (only the images in the results are evaluated)
      Captions are PTB-tokenized first unless --tokenized says they already are.
      Reports CIDEr (CIDEr-D, 0-10 scale), Bleu_1..Bleu_4 and ROUGE_L (pycocoevalcap).

  --task vqa --questions <questions.json> --annotations <annotations.json> --results <results.json>
      questions:   {"questions": [{"question_id", "image_id", "question"}]}
      annotations: {"annotations": [{"question_id", "answer_type", "question_type", "answers": [{"answer", "answer_id"}]}]}
      results:     [{"question_id", "answer"}]
      Reports accuracy and per_answer_type as percentages rounded to 2 decimals (OpenFlamingo VQAEval).

  --task classification --annotations <labels.jsonl> --results <results.json>
      annotations: one {"id", "label": 0|1} per line;  results: [{"id", "score"}], score = P(label 1)
      Reports roc_auc (sklearn roc_auc_score) and accuracy, where an item is predicted positive
      iff score > 0.5 (OpenFlamingo's argmax: equal class probabilities pick the negative class).

  --json   print one JSON object line instead of a table
`;

const TASK_OPTIONS: Record<string, { required: string[]; allowed: string[] }> = {
  captioning: { required: ['annotations', 'results'], allowed: ['tokenized'] },
  vqa: { required: ['questions', 'annotations', 'results'], allowed: [] },
  classification: { required: ['annotations', 'results'], allowed: [] },
};



interface ScoreArgs {
  task: string;
  files: Record<string, string>;
  tokenized: boolean;
  json: boolean;
}

function parse(args: string[]): ScoreArgs | 'help' {
  const { values } = parseOptions(args, {
    task: { type: 'string' },
    annotations: { type: 'string' },
    results: { type: 'string' },
    questions: { type: 'string' },
    tokenized: { type: 'boolean' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return 'help';
  const task = values.task;
  if (task === undefined) throw new UsageError('missing --task');
  const spec = TASK_OPTIONS[task];
  if (!spec) throw new UsageError(`unknown task '${task}' (expected captioning, vqa or classification)`);
  const files: Record<string, string> = {};
  for (const name of spec.required) {
    const v = (values as Record<string, unknown>)[name];
    if (typeof v !== 'string' || v === '') throw new UsageError(`--task ${task} needs --${name} <file>`);
    files[name] = v;
  }
  for (const name of ['questions', 'tokenized']) {
    if ((values as Record<string, unknown>)[name] !== undefined && !spec.required.includes(name) && !spec.allowed.includes(name)) {
      throw new UsageError(`--${name} does not apply to --task ${task}`);
    }
  }
  return { task, files, tokenized: values.tokenized === true, json: values.json === true };
}

interface Report {
  /** The JSON object printed with --json. */
  readonly result: Record<string, unknown>;
  /** Lines of the readable table. */
  readonly table: string[];
}

function fmt(x: number, digits: number): string {
  return x.toFixed(digits);
}

function scoreCaptioning(a: ScoreArgs): Report {
  const ann = readCocoCaptions(a.files.annotations!);
  const results = readCaptionResults(a.files.results!);
  const joined = joinCaptions(ann, a.files.annotations!, results, a.files.results!);
  const tok = a.tokenized ? (s: string) => s : ptbTokenize;
  const ev = evaluateCaptions(joined.map((j) => ({ candidate: tok(j.candidate), references: j.references.map(tok) })));
  const s = ev.scores;
  const result = { CIDEr: s.CIDEr, Bleu_1: s.Bleu_1, Bleu_2: s.Bleu_2, Bleu_3: s.Bleu_3, Bleu_4: s.Bleu_4, ROUGE_L: s.ROUGE_L };
  const table = [
    `captioning: ${joined.length} images${a.tokenized ? '' : ' (PTB-tokenized)'}`,
    ...Object.entries(result).map(([k, v]) => `  ${k.padEnd(8)} ${fmt(v, 4)}`),
  ];
  return { result, table };
}

function scoreVqa(a: ScoreArgs): Report {
  const questions = readVqaQuestions(a.files.questions!);
  const annotations = readVqaAnnotations(a.files.annotations!);
  const results = readVqaResults(a.files.results!);
  const joined = joinVqa(questions, a.files.questions!, annotations, a.files.annotations!, results, a.files.results!);
  const ev = vqaAccuracy(joined);
  const result = { accuracy: ev.overall, per_answer_type: ev.perAnswerType };
  const table = [
    `vqa: ${joined.length} questions`,
    `  accuracy  ${fmt(ev.overall, 2)}`,
    ...Object.entries(ev.perAnswerType).map(([t, v]) => `  ${t.padEnd(8)}  ${fmt(v, 2)}`),
  ];
  return { result, table };
}

/** Threshold for the accuracy: positive iff P(positive) > 0.5, matching an argmax with ties to the negative class. */
const DECISION_THRESHOLD = 0.5;

function scoreClassification(a: ScoreArgs): Report {
  const labels = readClassificationAnnotations(a.files.annotations!);
  const results = readClassificationResults(a.files.results!);
  const joined = joinClassification(labels, a.files.annotations!, results, a.files.results!);
  const positives = joined.labels.filter((l) => l === 1).length;
  if (positives === 0 || positives === joined.labels.length) {
    throw new FormatError(a.files.results!, `all ${joined.labels.length} scored items have label ${joined.labels[0]}; ROC-AUC needs both classes`);
  }
  const roc = rocAuc(joined.labels, joined.scores);
  let correct = 0;
  joined.scores.forEach((s, i) => {
    if ((s > DECISION_THRESHOLD ? 1 : 0) === joined.labels[i]) correct++;
  });
  const accuracy = correct / joined.scores.length;
  const result = { roc_auc: roc, accuracy };
  const table = [
    `classification: ${joined.scores.length} items (${positives} positive)`,
    `  roc_auc   ${fmt(roc, 4)}`,
    `  accuracy  ${fmt(accuracy, 4)}  (positive iff score > ${DECISION_THRESHOLD})`,
  ];
  return { result, table };
}

const TASKS: Record<string, (a: ScoreArgs) => Report> = {
  captioning: scoreCaptioning,
  vqa: scoreVqa,
  classification: scoreClassification,
};

export async function run(args: string[]): Promise<number> {
  const parsed = parse(args);
  if (parsed === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const report = TASKS[parsed.task]!(parsed);
  process.stdout.write(parsed.json ? `${JSON.stringify(report.result)}\n` : `${report.table.join('\n')}\n`);
  return 0;
}
