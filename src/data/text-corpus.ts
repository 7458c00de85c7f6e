/**
 * English text for language-model pretraining, read from Debian packages already on the machine:
 * - `fortunes`: fortune cookie files (`fortunes-min` has one file, `fortunes` ~40), one quip per record,
 *   records separated by a line holding only `%`.
 * - `wordnet`: WordNet 3.0 synset glosses from `wordnet-base` (data.noun/verb/adj/adv); each synset
 *   becomes "lemma, lemma: definition; \"example\"".
 * Missing packages produce a CorpusUnavailableError that names the apt package to install.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FlamingoError } from '../errors.ts';

export type TextSource = 'fortunes' | 'wordnet';

export interface TextCorpusOptions {
  sources?: TextSource[];
  /** Override /usr/share/games/fortunes. */
  fortunesDir?: string;
  /** Override /usr/share/wordnet. */
  wordnetDir?: string;
}

/** A corpus source name that is not one of the sources (a config or option error). */
export class CorpusSourceError extends FlamingoError {}

export class CorpusUnavailableError extends FlamingoError {
  constructor(
    readonly source: TextSource,
    readonly aptPackage: string,
    detail: string,
  ) {
    super(`text corpus "${source}": ${detail}; install it with \`apt-get install ${aptPackage}\``);
  }
}

export class CorpusFormatError extends FlamingoError {
  constructor(file: string, line: number, detail: string) {
    super(`text corpus: ${file}:${line}: ${detail}`);
  }
}

export const DEFAULT_FORTUNES_DIR = '/usr/share/games/fortunes';
export const DEFAULT_WORDNET_DIR = '/usr/share/wordnet';
const WORDNET_FILES = ['data.noun', 'data.verb', 'data.adj', 'data.adv'];

/** Load documents from every requested source, in source order then file order. */
export function loadTextCorpus(options: TextCorpusOptions = {}): string[] {
  const sources = options.sources ?? ['fortunes', 'wordnet'];
  const docs: string[] = [];
  for (const s of sources) {
    if (s === 'fortunes') docs.push(...loadFortunes(options.fortunesDir));
    else if (s === 'wordnet') docs.push(...loadWordnetGlosses(options.wordnetDir));
    else throw new CorpusSourceError(`text corpus: unknown source ${JSON.stringify(s)} (expected fortunes | wordnet)`);
  }
  return docs;
}

/** Whether a source's files are present (for tests that skip politely). */
export function textSourceAvailable(source: TextSource, dir?: string): boolean {
  if (source === 'fortunes') return existsSync(dir ?? DEFAULT_FORTUNES_DIR);
  return WORDNET_FILES.every((f) => existsSync(join(dir ?? DEFAULT_WORDNET_DIR, f)));
}

/** Every fortune record from the plain fortune files in `dir` (index `.dat` files and `.u8` links are skipped). */
export function loadFortunes(dir: string = DEFAULT_FORTUNES_DIR): string[] {
  if (!existsSync(dir)) {
    throw new CorpusUnavailableError('fortunes', 'fortunes-min', `${dir} does not exist (the larger set is package \`fortunes\`)`);
  }
  const files = readdirSync(dir)
    .filter((f) => !f.includes('.'))
    .sort()
    .map((f) => join(dir, f))
    // Subfolders such as `off/` (package fortunes-off) are deliberately not read.
    .filter((p) => statSync(p).isFile());
  if (files.length === 0) throw new CorpusUnavailableError('fortunes', 'fortunes-min', `${dir} holds no fortune files`);
  const docs: string[] = [];
  for (const f of files) docs.push(...parseFortuneFile(readFileSync(f, 'utf8')));
  return docs;
}

/** Split one fortune file into records; strips terminal overstrike sequences (char, backspace). */
export function parseFortuneFile(text: string): string[] {
  // "x\bx" (bold) and "_\bx" / "___\bWORD" (underline) are typewriter effects for `more`: keep the text.
  /* eslint-disable no-control-regex -- backspace is exactly what we strip */
  const clean = text
    .replace(/_+\x08/g, '')
    .replace(/[^\n]\x08/g, '')
    .replace(/\x08/g, '')
    .replace(/\r\n/g, '\n');
  /* eslint-enable no-control-regex */
  return clean
    .split(/^%[ \t]*$/m)
    .map((r) => r.replace(/^\n+|\s+$/g, ''))
    .filter((r) => r.length > 0);
}

/** One document per WordNet synset: its lemmas and gloss (definition plus examples). */
export function loadWordnetGlosses(dir: string = DEFAULT_WORDNET_DIR): string[] {
  const docs: string[] = [];
  for (const name of WORDNET_FILES) {
    const path = join(dir, name);
    if (!existsSync(path)) throw new CorpusUnavailableError('wordnet', 'wordnet-base', `${path} does not exist`);
    docs.push(...parseWordnetData(readFileSync(path, 'utf8'), path));
  }
  return docs;
}

/**
 * Parse a WordNet `data.*` file (wndb(5)): `offset lex_filenum ss_type w_cnt word lex_id ... | gloss`.
 * Lines starting with two spaces are the licence header.
 */
export function parseWordnetData(text: string, file = 'data'): string[] {
  const docs: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('  ') || line.trim() === '') continue;
    const bar = line.indexOf(' | ');
    if (bar < 0) throw new CorpusFormatError(file, i + 1, 'synset line has no " | " gloss separator');
    const fields = line.slice(0, bar).split(' ');
    const wCnt = parseInt(fields[3] ?? '', 16); // w_cnt is two hex digits
    if (!Number.isFinite(wCnt) || wCnt < 1) throw new CorpusFormatError(file, i + 1, `bad word count ${JSON.stringify(fields[3])}`);
    const lemmas: string[] = [];
    for (let w = 0; w < wCnt; w++) {
      const raw = fields[4 + 2 * w];
      if (raw === undefined) throw new CorpusFormatError(file, i + 1, `expected ${wCnt} words`);
      // Adjective markers like "(a)" / "(p)" are syntax hints, not text.
      lemmas.push(raw.replace(/\([a-z]+\)$/, '').replace(/_/g, ' '));
    }
    const gloss = line.slice(bar + 3).trim();
    docs.push(`${[...new Set(lemmas)].join(', ')}: ${gloss}`);
  }
  return docs;
}
