/**
 * Tokenizer fixtures (test/fixtures/shared/tokenizers): a directory with a `tokenizer.json` and
 * encode / decode cases. Every tokenizer directory under the fixture root is run against the cases
 * of its own directory, or, when it has none (the `-openflamingo` variant), against those of the
 * sibling directory whose name it extends. OpenFlamingo's tokens are added as its factory does
 * (adding them again to a file that has them changes nothing). One result per tokenizer and case.
 */
import { FlamingoError } from '../../errors.ts';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { BpeTokenizer } from '../../data/tokenizer.ts';
import { loadTokenizerDir } from '../../data/tokenizer-files.ts';
import type { VerifyKind, VerifyOutput, VerifyResult } from './types.ts';

const CASE_FILES = ['cases.jsonl', 'decode_cases.jsonl'];

/** The cases of a tokenizer directory: its own, or those of the sibling it was derived from. */
function caseDirFor(dir: string): string | null {
  if (CASE_FILES.some((f) => existsSync(join(dir, f)))) return dir;
  const name = basename(dir);
  const parent = dirname(dir);
  const siblings = readdirSync(parent)
    .filter((s) => s !== name && name.startsWith(`${s}-`) && statSync(join(parent, s)).isDirectory())
    .sort((a, b) => b.length - a.length);
  for (const s of siblings) if (CASE_FILES.some((f) => existsSync(join(parent, s, f)))) return join(parent, s);
  return null;
}

/** A tokenizer directory loaded the way OpenFlamingo's factory does (its tokens added). */
export function loadOpenFlamingoTokenizer(dir: string): BpeTokenizer {
  return loadTokenizerDir(dir, { openFlamingo: true }).tokenizer;
}

interface TokCase {
  category?: string;
  note?: string;
  text?: string;
  ids: number[];
  decoded: string;
  decoded_skip_special: string;
  decoded_skip_special_clean_up?: string;
}

function check(name: string, got: unknown, want: unknown): VerifyOutput {
  const pass = JSON.stringify(got) === JSON.stringify(want);
  const short = (v: unknown): string => {
    const s = JSON.stringify(v) ?? 'undefined';
    return s.length > 160 ? `${s.slice(0, 157)}...` : s;
  };
  return { name, pass, ...(pass ? {} : { detail: `got ${short(got)}, want ${short(want)}` }) };
}

export function runTokenizerDir(dir: string): VerifyResult[] {
  const caseDir = caseDirFor(dir);
  if (!caseDir) throw new FlamingoError(`no ${CASE_FILES.join(' or ')} for this tokenizer (here or in a sibling directory)`);
  const tok = loadOpenFlamingoTokenizer(dir);
  const tokName = basename(dir);
  const results: VerifyResult[] = [];
  for (const file of CASE_FILES) {
    const path = join(caseDir, file);
    if (!existsSync(path)) continue;
    readFileSync(path, 'utf8').split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      const c = JSON.parse(line) as TokCase;
      const outputs: VerifyOutput[] = [];
      if (c.text !== undefined) outputs.push(check('ids', tok.encode(c.text), c.ids));
      outputs.push(check('decoded', tok.decode(c.ids), c.decoded));
      outputs.push(check('decoded_skip_special', tok.decode(c.ids, { skipSpecial: true }), c.decoded_skip_special));
      if (c.decoded_skip_special_clean_up !== undefined) {
        outputs.push(check('decoded_skip_special_clean_up', tok.decode(c.ids, { skipSpecial: true, cleanUpSpaces: true }), c.decoded_skip_special_clean_up));
      }
      results.push({
        case: `${tokName}/${file.replace('.jsonl', '')}:${i + 1}${c.category ? ` ${c.category}` : ''}`,
        dir, kind: 'tokenizer', pass: outputs.every((o) => o.pass), outputs,
      });
    });
  }
  return results;
}

export const tokenizerKind: VerifyKind = {
  name: 'tokenizer',
  caseKinds: ['tokenizer'],
  claimsDir: (dir) => existsSync(join(dir, 'tokenizer.json')),
  run(dir) {
    return Promise.resolve(runTokenizerDir(dir));
  },
};
