/**
 * Readers for the official annotation / result file formats (COCO captions, VQAv2, Hateful-Memes
 * style jsonl) and the checks that results match their annotations. Every problem is reported as a
 * FormatError naming the file and the offending entry, so the CLI can print it without a trace.
 */
import { readFileSync } from 'node:fs';
import { FlamingoError } from '../errors.ts';

/** Ids are compared like Python dict keys: 42 and "42" are different ids. */
export type Id = number | string;

export interface EntryRef {
  readonly index: number;
  readonly id?: Id;
  /** Name of the id field, for the message (image_id, question_id, id). */
  readonly idField?: string;
  /** jsonl files count 1-based lines instead of 0-based array entries. */
  readonly unit?: 'entry' | 'line';
}

export class FormatError extends FlamingoError {
  constructor(readonly file: string, detail: string, readonly entry?: EntryRef) {
    super(`${file}: ${entry ? `${describeEntry(entry)}: ` : ''}${detail}`);
  }
}

function describeEntry(e: EntryRef): string {
  const id = e.id === undefined ? '' : ` (${e.idField ?? 'id'} ${JSON.stringify(e.id)})`;
  return `${e.unit ?? 'entry'} ${e.index}${id}`;
}

// ---------------------------------------------------------------- low-level reading

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FormatError(file, `cannot read file${code ? ` (${code})` : ''}`);
  }
}

export function readJsonFile(file: string): unknown {
  const text = readText(file);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new FormatError(file, `invalid JSON: ${(err as Error).message}`);
  }
}

/** One JSON value per non-blank line, with its 1-based line number. */
export function readJsonlFile(file: string): { line: number; value: unknown }[] {
  const out: { line: number; value: unknown }[] = [];
  readText(file).split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push({ line: i + 1, value: JSON.parse(line) as unknown });
    } catch (err) {
      throw new FormatError(file, `line ${i + 1}: invalid JSON: ${(err as Error).message}`);
    }
  });
  return out;
}

// ---------------------------------------------------------------- field validation

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** Validates list entries one by one with a uniform error context. */
class EntryReader {
  constructor(
    readonly file: string, readonly what: string, readonly idField: string, readonly unit: 'entry' | 'line' = 'entry',
  ) {}

  object(v: unknown, index: number): Obj {
    if (!isObject(v)) throw new FormatError(this.file, `${this.what} must be an object, got ${typeName(v)}`, { index, unit: this.unit });
    return v;
  }

  id(o: Obj, index: number): Id {
    const v = o[this.idField];
    if (v === undefined) throw new FormatError(this.file, `missing field "${this.idField}"`, { index, unit: this.unit });
    if (!isValidId(v)) {
      throw new FormatError(
        this.file, `field "${this.idField}" must be an integer or a non-empty string, got ${JSON.stringify(v)}`, { index, unit: this.unit },
      );
    }
    return v;
  }

  string(o: Obj, field: string, index: number, id: Id): string {
    const v = o[field];
    if (v === undefined) throw new FormatError(this.file, `missing field "${field}"`, this.ref(index, id));
    if (typeof v !== 'string') throw new FormatError(this.file, `field "${field}" must be a string, got ${typeName(v)}`, this.ref(index, id));
    return v;
  }

  ref(index: number, id: Id): EntryRef {
    return { index, id, idField: this.idField, unit: this.unit };
  }
}

function isValidId(v: unknown): v is Id {
  return (typeof v === 'number' && Number.isSafeInteger(v)) || (typeof v === 'string' && v.length > 0);
}

function topLevelArray(file: string, data: unknown, key?: string): unknown[] {
  if (key === undefined) {
    if (!Array.isArray(data)) throw new FormatError(file, `expected a JSON array of results, got ${typeName(data)}`);
    return data;
  }
  if (!isObject(data)) throw new FormatError(file, `expected a JSON object with a "${key}" array, got ${typeName(data)}`);
  const v = data[key];
  if (!Array.isArray(v)) throw new FormatError(file, `field "${key}" must be an array, got ${v === undefined ? 'nothing' : typeName(v)}`);
  return v;
}

/** Throws on the second occurrence of an id, naming both entries. */
class UniqueIds {
  private readonly seen = new Map<Id, number>();
  constructor(
    readonly file: string, readonly idField: string, readonly what: string, readonly unit: 'entry' | 'line' = 'entry',
  ) {}

  add(id: Id, index: number): void {
    const first = this.seen.get(id);
    if (first !== undefined) {
      throw new FormatError(
        this.file, `duplicate ${this.what}: ${this.idField} already used by ${this.unit} ${first}`,
        { index, id, idField: this.idField, unit: this.unit },
      );
    }
    this.seen.set(id, index);
  }
}

/** Error for an id missing from the annotations; hints when only the JSON type differs (42 vs "42"). */
function unknownId(file: string, idField: string, id: Id, index: number, annFile: string, known: (k: Id) => boolean): FormatError {
  const twin = typeof id === 'number' ? String(id) : /^-?\d+$/.test(id) ? Number(id) : undefined;
  const hint = twin !== undefined && known(twin) ? ` (it exists there as ${JSON.stringify(twin)}: ids must have the same JSON type)` : '';
  return new FormatError(file, `${idField} not found in ${annFile}${hint}`, { index, id, idField });
}

function nonEmpty(file: string, entries: readonly unknown[]): void {
  if (entries.length === 0) throw new FormatError(file, 'no results to score (empty array)');
}

// ---------------------------------------------------------------- captioning (COCO)

export interface CocoCaptions {
  /** Image ids in file order. */
  readonly imageIds: Id[];
  readonly references: Map<Id, string[]>;
}

export interface CaptionResult {
  readonly imageId: Id;
  readonly caption: string;
}

/** COCO captions annotation file: {images: [{id}], annotations: [{image_id, caption}]}. */
export function readCocoCaptions(file: string): CocoCaptions {
  const data = readJsonFile(file);
  const images = topLevelArray(file, data, 'images');
  const anns = topLevelArray(file, data, 'annotations');
  const imgReader = new EntryReader(`${file} images`, 'image', 'id');
  const unique = new UniqueIds(`${file} images`, 'id', 'image');
  const imageIds: Id[] = [];
  const references = new Map<Id, string[]>();
  images.forEach((v, i) => {
    const id = imgReader.id(imgReader.object(v, i), i);
    unique.add(id, i);
    imageIds.push(id);
    references.set(id, []);
  });
  const annReader = new EntryReader(`${file} annotations`, 'annotation', 'image_id');
  anns.forEach((v, i) => {
    const o = annReader.object(v, i);
    const id = annReader.id(o, i);
    const caption = annReader.string(o, 'caption', i, id);
    const refs = references.get(id);
    if (!refs) throw unknownId(`${file} annotations`, 'image_id', id, i, `${file} images`, (k) => references.has(k));
    refs.push(caption);
  });
  return { imageIds, references };
}

/** Caption results: [{image_id, caption}]. */
export function readCaptionResults(file: string): CaptionResult[] {
  const entries = topLevelArray(file, readJsonFile(file));
  nonEmpty(file, entries);
  const r = new EntryReader(file, 'result', 'image_id');
  const unique = new UniqueIds(file, 'image_id', 'result');
  return entries.map((v, i) => {
    const o = r.object(v, i);
    const imageId = r.id(o, i);
    const caption = r.string(o, 'caption', i, imageId);
    unique.add(imageId, i);
    return { imageId, caption };
  });
}

export interface JoinedCaption {
  readonly imageId: Id;
  readonly candidate: string;
  readonly references: string[];
}

/**
 * COCOEvalCap evaluates exactly the images present in the results, in annotation-file order.
 * Every result must name an annotated image that has at least one reference.
 */
export function joinCaptions(ann: CocoCaptions, annFile: string, results: readonly CaptionResult[], resFile: string): JoinedCaption[] {
  const byId = new Map<Id, string>();
  results.forEach((r, i) => {
    const refs = ann.references.get(r.imageId);
    if (!refs) throw unknownId(resFile, 'image_id', r.imageId, i, annFile, (k) => ann.references.has(k));
    if (refs.length === 0) {
      throw new FormatError(resFile, `image has no reference captions in ${annFile}`, { index: i, id: r.imageId, idField: 'image_id' });
    }
    byId.set(r.imageId, r.caption);
  });
  return ann.imageIds
    .filter((id) => byId.has(id))
    .map((id) => ({ imageId: id, candidate: byId.get(id)!, references: ann.references.get(id)! }));
}

// ---------------------------------------------------------------- VQA

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
  const entries = topLevelArray(file, readJsonFile(file));
  nonEmpty(file, entries);
  const r = new EntryReader(file, 'result', 'question_id');
  const unique = new UniqueIds(file, 'question_id', 'result');
  return entries.map((v, i) => {
    const o = r.object(v, i);
    const questionId = r.id(o, i);
    const answer = r.string(o, 'answer', i, questionId);
    unique.add(questionId, i);
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

// ---------------------------------------------------------------- binary classification

export interface ClassificationResult {
  readonly id: Id;
  /** P(positive class), in [0, 1]. */
  readonly score: number;
}

/** jsonl annotations, one {id, label} per line with label 0 or 1 (Hateful Memes style). */
export function readClassificationAnnotations(file: string): Map<Id, 0 | 1> {
  const r = new EntryReader(file, 'annotation line', 'id', 'line');
  const unique = new UniqueIds(file, 'id', 'annotation', 'line');
  const out = new Map<Id, 0 | 1>();
  for (const { line: i, value } of readJsonlFile(file)) {
    const o = r.object(value, i);
    const id = r.id(o, i);
    unique.add(id, i);
    const label = o.label;
    if (label !== 0 && label !== 1) {
      throw new FormatError(file, `field "label" must be 0 or 1, got ${label === undefined ? 'nothing' : JSON.stringify(label)}`, r.ref(i, id));
    }
    out.set(id, label);
  }
  return out;
}

/** Classification results: [{id, score}] with score = P(positive) in [0, 1]. */
export function readClassificationResults(file: string): ClassificationResult[] {
  const entries = topLevelArray(file, readJsonFile(file));
  nonEmpty(file, entries);
  const r = new EntryReader(file, 'result', 'id');
  const unique = new UniqueIds(file, 'id', 'result');
  return entries.map((v, i) => {
    const o = r.object(v, i);
    const id = r.id(o, i);
    const score = o.score;
    if (typeof score !== 'number' || !Number.isFinite(score) || score < 0 || score > 1) {
      throw new FormatError(file, `field "score" must be a number in [0, 1], got ${score === undefined ? 'nothing' : JSON.stringify(score)}`, r.ref(i, id));
    }
    unique.add(id, i);
    return { id, score };
  });
}

export interface JoinedClassification {
  readonly ids: Id[];
  readonly labels: (0 | 1)[];
  readonly scores: number[];
}

/** Scores the results' items in results order; each id must be annotated. */
export function joinClassification(
  labels: Map<Id, 0 | 1>, annotationsFile: string, results: readonly ClassificationResult[], resultsFile: string,
): JoinedClassification {
  const out: JoinedClassification = { ids: [], labels: [], scores: [] };
  results.forEach((r, i) => {
    const label = labels.get(r.id);
    if (label === undefined) throw unknownId(resultsFile, 'id', r.id, i, annotationsFile, (k) => labels.has(k));
    out.ids.push(r.id);
    out.labels.push(label);
    out.scores.push(r.score);
  });
  return out;
}
