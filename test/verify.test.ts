import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findTargets, runTarget, type VerifyKind } from '../src/eval/verify/index.ts';

test('verify dispatch: case.json kinds, claimed directories, unknown kinds', async () => {
  const root = mkdtempSync(join(tmpdir(), 'verify-'));
  try {
    mkdirSync(join(root, 'a', 'case1'), { recursive: true });
    writeFileSync(join(root, 'a', 'case1', 'case.json'), JSON.stringify({ kind: 'toy' }));
    mkdirSync(join(root, 'b', 'tok'), { recursive: true });
    writeFileSync(join(root, 'b', 'tok', 'cases.jsonl'), '');
    mkdirSync(join(root, 'c'), { recursive: true });
    writeFileSync(join(root, 'c', 'case.json'), JSON.stringify({ kind: 'nobody' }));
    const seen: string[] = [];
    const toy: VerifyKind = {
      name: 'toy', caseKinds: ['toy'],
      run(dir, cj) { seen.push(`toy:${String(cj?.kind)}`); return Promise.resolve([{ case: 'x', dir, kind: 'toy', pass: true, outputs: [] }]); },
    };
    const lines: VerifyKind = {
      name: 'lines', caseKinds: [], claimsDir: (d) => d.endsWith('tok'),
      run(dir) { seen.push('lines'); return Promise.reject(new Error(`broken ${dir}`)); },
    };
    const targets = findTargets([root], [toy, lines]);
    assert.deepEqual(targets.map((t) => t.kind?.name ?? null), ['toy', 'lines', null]);
    const results = (await Promise.all(targets.map((t) => runTarget(t)))).flat();
    assert.deepEqual(results.map((r) => r.pass), [true, false, false]);
    assert.match(results[1]!.error!, /broken/);
    assert.match(results[2]!.error!, /unknown case kind 'nobody'/);
    assert.deepEqual(seen, ['toy:toy', 'lines']);
    assert.throws(() => findTargets([join(root, 'missing')]), /no such file/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
