/**
 * Caption tokenization as COCOEvalCap does before scoring: the Stanford PTBTokenizer (CoreNLP 3.4.1,
 * `-preserveLines -lowerCase`) followed by removal of punctuation tokens. This is a rule-based
 * re-implementation of the behaviour that matters for caption text (clitics, sentence punctuation,
 * quotes, brackets, numbers); it is not a port of the Stanford lexer and may differ on exotic input.
 */

/** Tokens COCOEvalCap drops after PTB tokenization. */
export const PTB_PUNCTUATION: ReadonlySet<string> = new Set([
  "''", "'", '``', '`', '-LRB-', '-RRB-', '-LCB-', '-RCB-', '.', '?', '!', ',', ':', '-', '--', '...', ';',
]);

// Brackets become -LRB- etc. in PTB output and are then dropped; with -lowerCase the escaped forms
// may come out lowercased, so drop those spellings too.
const DROPPED: ReadonlySet<string> = new Set([
  ...PTB_PUNCTUATION, '-lrb-', '-rrb-', '-lcb-', '-rcb-', '-lsb-', '-rsb-', '-LSB-', '-RSB-',
  '(', ')', '[', ']', '{', '}', '"',
]);

const CLITICS = ["'s", "'re", "'ll", "'m", "'ve", "'d"];
// Words PTB splits into two tokens although they contain no apostrophe.
const SPLIT_WORDS: ReadonlyMap<string, [string, string]> = new Map([
  ['cannot', ['can', 'not']], ['gonna', ['gon', 'na']], ['gotta', ['got', 'ta']], ['wanna', ['wan', 'na']],
  ['gimme', ['gim', 'me']], ['lemme', ['lem', 'me']],
]);
// Common abbreviations whose final period belongs to the word.
const ABBREVIATIONS: ReadonlySet<string> = new Set([
  'mr', 'mrs', 'ms', 'dr', 'st', 'jr', 'sr', 'vs', 'etc', 'inc', 'co', 'ltd', 'no', 'mt', 'ave', 'prof', 'jan', 'feb',
  'mar', 'apr', 'jun', 'jul', 'aug', 'sep', 'sept', 'oct', 'nov', 'dec',
]);

const LEADING = new Set(['"', "'", '`', '(', '[', '{', '<', '$', '#']);
const TRAILING = new Set(['"', "'", ')', ']', '}', '>', ',', ';', ':', '?', '!', '.', '%']);

/** Unicode quotes/dashes/ellipsis to their ASCII PTB counterparts. */
function normalizeUnicode(s: string): string {
  return s
    .replace(/[\u2018\u2019\u201a\u201b\u2032]/g, "'")
    .replace(/[\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb]/g, '"')
    .replace(/[\u2013\u2014\u2015]/g, ' -- ')
    .replace(/\u2026/g, ' ... ');
}

/** Whether a trailing period is part of the word (abbreviation, initials like "u.s.", single letter). */
function keepsPeriod(word: string): boolean {
  const lower = word.toLowerCase();
  return ABBREVIATIONS.has(lower) || /^(?:\p{L}\.)+\p{L}$/u.test(lower);
}

/** Split a chunk's core (no surrounding punctuation) on internal separators PTB always splits on. */
function splitInternal(core: string): string[] {
  // Commas and colons stay inside numbers (1,000 / 10:30); ; ? ! quotes and brackets always split.
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < core.length; i++) {
    const c = core[i]!;
    const between = /\d/.test(core[i - 1] ?? '') && /\d/.test(core[i + 1] ?? '');
    const splits = ';?!"()[]{}'.includes(c) || ((c === ',' || c === ':') && !between);
    if (splits) {
      if (cur) out.push(cur);
      out.push(c);
      cur = '';
    } else {
      cur += c;
    }
  }
  if (cur) out.push(cur);
  return out;
}

/** Split clitics off a word: "man's" → man 's, "don't" → do n't, "can't" → ca n't. */
function splitClitics(word: string): string[] {
  const lower = word.toLowerCase();
  const special = SPLIT_WORDS.get(lower);
  if (special) return [...special];
  if (lower.length > 3 && lower.endsWith("n't")) return [word.slice(0, -3), word.slice(-3)];
  for (const c of CLITICS) {
    if (lower.length > c.length && lower.endsWith(c)) return [word.slice(0, -c.length), word.slice(-c.length)];
  }
  return [word];
}

function tokenizeChunk(chunk: string): string[] {
  const lead: string[] = [];
  const trail: string[] = [];
  let s = chunk;
  if (s === '...' || /^[-.]+$/.test(s)) return [s];
  while (s.length > 0 && LEADING.has(s[0]!)) {
    // A bare clitic ("'s" after a space) is a word, not an opening quote.
    if (s[0] === "'" && CLITICS.includes(s.toLowerCase())) break;
    lead.push(s[0]!);
    s = s.slice(1);
  }
  while (s.length > 0) {
    const last = s[s.length - 1]!;
    if (s.endsWith('...')) {
      trail.unshift('...');
      s = s.slice(0, -3);
    } else if (last === '.') {
      if (keepsPeriod(s.slice(0, -1))) break;
      trail.unshift('.');
      s = s.slice(0, -1);
    } else if (TRAILING.has(last)) {
      if (last === "'" && CLITICS.includes(s.toLowerCase())) break;
      trail.unshift(last);
      s = s.slice(0, -1);
    } else {
      break;
    }
  }
  const core = s.length > 0 ? splitInternal(s).flatMap(splitClitics) : [];
  return [...lead, ...core, ...trail];
}

/** PTB-tokenize one caption and drop punctuation tokens; returns lowercase tokens joined by single spaces. */
export function ptbTokenize(caption: string): string {
  const tokens: string[] = [];
  for (const chunk of normalizeUnicode(caption.toLowerCase()).split(/\s+/u)) {
    if (chunk.length === 0) continue;
    for (const t of tokenizeChunk(chunk)) {
      // CoreNLP 3.4.1's PTB3 escaping backslash-escapes / and * (e.g. and/or → and\/or).
      if (!DROPPED.has(t)) tokens.push(t.replace(/[/*]/g, (c) => `\\${c}`));
    }
  }
  return tokens.join(' ');
}
