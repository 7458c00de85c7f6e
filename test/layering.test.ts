/**
 * The layers of src/ import only downward (docs/ARCHITECTURE.md):
 *   errors.ts → engine → nn → model → io → data → pretrained → train → eval → pipeline.ts → serve → cli → index.ts
 * A module may import its own layer and any layer below it. A new top-level directory or file under src/
 * must be placed in LAYERS, so where it sits is a decision rather than an accident.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../src', import.meta.url));

export const LAYERS: readonly string[] = [
  'errors.ts', 'engine', 'nn', 'model', 'io', 'data', 'pretrained', 'train', 'eval', 'pipeline.ts', 'serve', 'cli', 'index.ts',
];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** The top-level entry of src/ that a file belongs to ("engine", "errors.ts", …). */
const layerOf = (file: string): string => relative(SRC, file).split(/[\\/]/)[0]!;

/** Relative specifiers of static imports, re-exports and dynamic imports (type-only imports included). */
function imports(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;'"]*?from\s*['"](\.[^'"]+)['"]/g)) out.push(m[1]!);
  for (const m of source.matchAll(/\bimport\(\s*['"](\.[^'"]+)['"]\s*\)/g)) out.push(m[1]!);
  return out;
}

test('every top-level entry of src/ has a layer', () => {
  const unplaced = readdirSync(SRC).filter((n) => (n.endsWith('.ts') || statSync(join(SRC, n)).isDirectory()) && !LAYERS.includes(n));
  assert.deepEqual(unplaced, [], `add these to LAYERS in test/layering.test.ts (and docs/ARCHITECTURE.md): ${unplaced.join(', ')}`);
});

test('src/ imports only downward through the layers', () => {
  const violations: string[] = [];
  let edges = 0;
  for (const f of files(SRC)) {
    const from = LAYERS.indexOf(layerOf(f));
    for (const spec of imports(readFileSync(f, 'utf8'))) {
      const target = resolve(dirname(f), spec);
      if (!target.startsWith(SRC)) continue;
      edges++;
      const to = LAYERS.indexOf(layerOf(target));
      if (to > from) violations.push(`${relative(SRC, f)} (${layerOf(f)}) imports ${spec} (${layerOf(target)})`);
    }
  }
  assert.ok(edges > 200, `only ${edges} imports found: the import pattern is broken`);
  assert.deepEqual(violations, []);
});
