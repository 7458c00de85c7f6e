/**
 * Binary classification (Hateful-Memes style): jsonl annotations with 0/1 labels, score results, and joining them.
 */
import {
  EntryReader, FormatError, UniqueIds, readJsonlFile, readResults, unknownId, type Id,
} from './formats.ts';

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
  return readResults(file, 'id', (r, o, i, id) => {
    const score = o.score;
    if (typeof score !== 'number' || !Number.isFinite(score) || score < 0 || score > 1) {
      throw new FormatError(file, `field "score" must be a number in [0, 1], got ${score === undefined ? 'nothing' : JSON.stringify(score)}`, r.ref(i, id));
    }
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
