// The repository's copies of the public fixtures (test/fixtures/shared, bench/configs/configs.json)
// must equal ../shared when it exists beside the repository; scripts/refresh-fixtures.sh refreshes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SHARED = path.join(ROOT, '..', 'shared');

function files(dir: string, base = dir): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...files(p, base));
    else out.push(path.relative(base, p));
  }
  return out.sort();
}

test('fixture copies equal ../shared (run scripts/refresh-fixtures.sh when this fails)', { skip: !fs.existsSync(path.join(SHARED, 'fixtures')) && 'no ../shared beside the repository' }, () => {
  const copy = path.join(ROOT, 'test', 'fixtures', 'shared');
  const orig = path.join(SHARED, 'fixtures');
  assert.deepEqual(files(copy), files(orig));
  for (const f of files(orig)) {
    assert.ok(fs.readFileSync(path.join(copy, f)).equals(fs.readFileSync(path.join(orig, f))), `test/fixtures/shared/${f} differs from ../shared`);
  }
  const cfg = path.join(SHARED, 'bench', 'configs.json');
  assert.ok(fs.readFileSync(path.join(ROOT, 'bench', 'configs', 'configs.json')).equals(fs.readFileSync(cfg)), 'bench/configs/configs.json differs');
});
