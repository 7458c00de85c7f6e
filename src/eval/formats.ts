/**
 * What the readers of the official annotation / result file formats share: reading JSON and jsonl files,
 * checking entries field by field, unique and known ids, and FormatError, which names the file and the
 * offending entry so the CLI can print it without a trace. The formats themselves: formats-captions.ts
 * (COCO), formats-vqa.ts (VQAv2), formats-classification.ts (Hateful-Memes style jsonl).
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

export type Obj = Record<string, unknown>;

export function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** Validates list entries one by one with a uniform error context. */
export class EntryReader {
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

export function isValidId(v: unknown): v is Id {
  return (typeof v === 'number' && Number.isSafeInteger(v)) || (typeof v === 'string' && v.length > 0);
}

export function topLevelArray(file: string, data: unknown, key?: string): unknown[] {
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
export class UniqueIds {
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
export function unknownId(file: string, idField: string, id: Id, index: number, annFile: string, known: (k: Id) => boolean): FormatError {
  const twin = typeof id === 'number' ? String(id) : /^-?\d+$/.test(id) ? Number(id) : undefined;
  const hint = twin !== undefined && known(twin) ? ` (it exists there as ${JSON.stringify(twin)}: ids must have the same JSON type)` : '';
  return new FormatError(file, `${idField} not found in ${annFile}${hint}`, { index, id, idField });
}

export function nonEmpty(file: string, entries: readonly unknown[]): void {
  if (entries.length === 0) throw new FormatError(file, 'no results to score (empty array)');
}

/**
 * A results file: a non-empty JSON array of objects, each with a unique `idField`, turned into T by
 * `read` (which checks the entry's other fields).
 */
export function readResults<T>(file: string, idField: string, read: (r: EntryReader, o: Obj, index: number, id: Id) => T): T[] {
  const entries = topLevelArray(file, readJsonFile(file));
  nonEmpty(file, entries);
  const r = new EntryReader(file, 'result', idField);
  const unique = new UniqueIds(file, idField, 'result');
  return entries.map((v, i) => {
    const o = r.object(v, i);
    const id = r.id(o, i);
    const out = read(r, o, i, id);
    unique.add(id, i);
    return out;
  });
}
