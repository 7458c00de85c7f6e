/**
 * The signature table is the one declaration of the kernels: the generated native glue and
 * TypeScript binding must be what the table gives today, and both backends must implement exactly
 * the table's kernels.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CXX_OUT, TS_CHECKS_OUT, TS_OUT, generateKernelBindings } from '../tools/gen-kernel-bindings.ts';
import { KERNEL_SIGNATURES } from '../src/engine/kernels/signatures.ts';
import { getTsKernels, tryNativeKernels } from '../src/engine/kernels/index.ts';

test('the generated kernel bindings are up to date with signatures.ts (npm run gen:kernels)', () => {
  const { cxx, ts, tsChecks } = generateKernelBindings();
  assert.equal(readFileSync(CXX_OUT, 'utf8'), cxx, `${CXX_OUT} is stale: run npm run gen:kernels`);
  assert.equal(readFileSync(TS_OUT, 'utf8'), ts, `${TS_OUT} is stale: run npm run gen:kernels`);
  assert.equal(readFileSync(TS_CHECKS_OUT, 'utf8'), tsChecks, `${TS_CHECKS_OUT} is stale: run npm run gen:kernels`);
});

test('every backend implements exactly the kernels of the table', () => {
  const names = Object.keys(KERNEL_SIGNATURES).sort();
  const methods = (k: object): string[] =>
    Object.entries(k).filter(([, v]) => typeof v === 'function').map(([n]) => n).sort();
  assert.deepEqual(methods(getTsKernels()), names);
  const { kernels } = tryNativeKernels();
  if (kernels) assert.deepEqual(methods(kernels), names);
});

test('every buffer argument has a size and every size names only arguments of its kernel', () => {
  for (const [kernel, spec] of Object.entries(KERNEL_SIGNATURES)) {
    const names = new Set<string>(spec.args.flatMap((a) =>
      a.type === 'batch?' ? ['count', 'strideA', 'strideB', 'strideC'] : [a.name]));
    for (const arg of spec.args) {
      const isBuffer = /^(f32|i32|u8|u16|i8)/.test(arg.type);
      const len = 'len' in arg ? arg.len : undefined;
      assert.equal(len !== undefined, isBuffer, `${kernel}.${arg.name}: a size iff a buffer`);
      // identifiers not called as functions, a member (w.rows) reduced to its base
      for (const id of (len ?? '').match(/(?<![\w.])[A-Za-z_]\w*(?![\w(])/g) ?? []) {
        assert.ok(names.has(id), `${kernel}.${arg.name}: '${id}' is not an argument`);
      }
    }
  }
});
