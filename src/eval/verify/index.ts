/**
 * `flamingo verify` engine: finds fixture directories under the given paths and runs each with the
 * kind that claims it (see types.ts). A directory with a case.json is a case; one claimed by a
 * kind's `claimsDir` is a fixture of that kind; any other directory is searched recursively.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { VERIFY_KINDS } from './kinds.ts';
import { FlamingoError } from '../../errors.ts';
import type { VerifyKind, VerifyOptions, VerifyResult } from './types.ts';

export type { VerifyKind, VerifyOptions, VerifyOutput, VerifyResult } from './types.ts';

export class VerifyPathError extends FlamingoError {
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
  }
}

export interface VerifyTarget {
  dir: string;
  /** null: case.json names a kind no format runs (reported as a failing result). */
  kind: VerifyKind | null;
  caseJson: Record<string, unknown> | null;
}

function readCaseJson(dir: string): Record<string, unknown> {
  const file = join(dir, 'case.json');
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new VerifyPathError(file, `unreadable case.json (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new VerifyPathError(file, 'case.json is not a JSON object');
  return v as Record<string, unknown>;
}

/** Fixture directories under each path (a path that is itself a fixture counts), in sorted order. */
export function findTargets(paths: string[], kinds: readonly VerifyKind[] = VERIFY_KINDS): VerifyTarget[] {
  const out: VerifyTarget[] = [];
  const visit = (p: string): void => {
    if (!existsSync(p)) throw new VerifyPathError(p, 'no such file or directory');
    if (!statSync(p).isDirectory()) return;
    if (existsSync(join(p, 'case.json'))) {
      const caseJson = readCaseJson(p);
      const k = kinds.find((x) => x.caseKinds.includes(String(caseJson.kind))) ?? null;
      out.push({ dir: p, kind: k, caseJson });
      return;
    }
    const claimed = kinds.find((x) => x.claimsDir?.(p));
    if (claimed) { out.push({ dir: p, kind: claimed, caseJson: null }); return; }
    for (const e of readdirSync(p).sort()) {
      const q = join(p, e);
      if (statSync(q).isDirectory()) visit(q);
    }
  };
  for (const p of paths) visit(p);
  return out;
}

/** Run one target; a kind that throws yields one failing result carrying the message. */
export async function runTarget(t: VerifyTarget, opts: VerifyOptions = {}): Promise<VerifyResult[]> {
  const caseName = basename(t.dir);
  const kindName = String(t.caseJson?.kind ?? t.kind?.name ?? 'unknown');
  if (!t.kind) {
    const known = VERIFY_KINDS.flatMap((k) => k.caseKinds).join(', ');
    return [{ case: caseName, dir: t.dir, kind: kindName, pass: false, outputs: [], error: `unknown case kind '${kindName}' (known: ${known})` }];
  }
  try {
    return await t.kind.run(t.dir, t.caseJson, opts);
  } catch (e) {
    return [{ case: caseName, dir: t.dir, kind: kindName, pass: false, outputs: [], error: e instanceof Error ? e.message : String(e) }];
  }
}
