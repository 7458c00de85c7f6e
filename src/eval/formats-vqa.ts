/**
 * VQAv2-format questions, annotations and results, and joining them as OpenFlamingo's VQAEval does.
 */
import {
  EntryReader, FormatError, UniqueIds, isObject, isValidId, readJsonFile, readResults, topLevelArray, unknownId, type Id,
} from './formats.ts';

export interface VqaQuestion {
  readonly questionId: Id;
  readonly imageId: Id;
  readonly question: string;
}

export interface VqaAnnotation {
  readonly questionId: Id;
  readonly answerType: string;
  readonly questionType: string;
  readonly answers: string[];
}

export interface VqaResult {
  readonly questionId: Id;
  readonly answer: string;
}

/** VQA questions file: {questions: [{question_id, image_id, question}]}. */
export function readVqaQuestions(file: string): Map<Id, VqaQuestion> {
  const entries = topLevelArray(file, readJsonFile(file), 'questions');
  const r = new EntryReader(`${file} questions`, 'question', 'question_id');
  const unique = new UniqueIds(`${file} questions`, 'question_id', 'question');
  const out = new Map<Id, VqaQuestion>();
  entries.forEach((v, i) => {
    const o = r.object(v, i);
    const questionId = r.id(o, i);
    unique.add(questionId, i);
    const imageId = o.image_id;
    if (!isValidId(imageId)) {
      throw new FormatError(r.file, `field "image_id" must be an integer or a non-empty string, got ${JSON.stringify(imageId)}`, r.ref(i, questionId));
    }
    out.set(questionId, { questionId, imageId, question: r.string(o, 'question', i, questionId) });
  });
  return out;
}

/** VQA annotation file: {annotations: [{question_id, answer_type, question_type, answers: [{answer, answer_id}]}]}. */
export function readVqaAnnotations(file: string): Map<Id, VqaAnnotation> {
  const entries = topLevelArray(file, readJsonFile(file), 'annotations');
  const r = new EntryReader(`${file} annotations`, 'annotation', 'question_id');
  const unique = new UniqueIds(`${file} annotations`, 'question_id', 'annotation');
  const out = new Map<Id, VqaAnnotation>();
  entries.forEach((v, i) => {
    const o = r.object(v, i);
    const questionId = r.id(o, i);
    unique.add(questionId, i);
    const answerType = r.string(o, 'answer_type', i, questionId);
    const questionType = r.string(o, 'question_type', i, questionId);
    const answers = o.answers;
    if (!Array.isArray(answers) || answers.length === 0) {
      throw new FormatError(r.file, `field "answers" must be a non-empty array, got ${answers === undefined ? 'nothing' : JSON.stringify(answers)}`, r.ref(i, questionId));
    }
    const texts = answers.map((a, j) => {
      if (!isObject(a) || typeof a.answer !== 'string') {
        throw new FormatError(r.file, `answers[${j}] must be an object with a string "answer", got ${JSON.stringify(a)}`, r.ref(i, questionId));
      }
      return a.answer;
    });
    out.set(questionId, { questionId, answerType, questionType, answers: texts });
  });
  return out;
}

/** VQA results: [{question_id, answer}]. */
export function readVqaResults(file: string): VqaResult[] {
  return readResults(file, 'question_id', (r, o, i, questionId) => {
    const answer = r.string(o, 'answer', i, questionId);
    return { questionId, answer };
  });
}

export interface JoinedVqa {
  readonly questionId: Id;
  readonly prediction: string;
  readonly answers: string[];
  readonly answerType: string;
}

/** OpenFlamingo's VQAEval scores the results' questions in results order; each must be annotated. */
export function joinVqa(
  questions: Map<Id, VqaQuestion>, questionsFile: string,
  annotations: Map<Id, VqaAnnotation>, annotationsFile: string,
  results: readonly VqaResult[], resultsFile: string,
): JoinedVqa[] {
  return results.map((r, i) => {
    if (!questions.has(r.questionId)) throw unknownId(resultsFile, 'question_id', r.questionId, i, questionsFile, (k) => questions.has(k));
    const ann = annotations.get(r.questionId);
    if (!ann) throw unknownId(resultsFile, 'question_id', r.questionId, i, annotationsFile, (k) => annotations.has(k));
    return { questionId: r.questionId, prediction: r.answer, answers: ann.answers, answerType: ann.answerType };
  });
}
