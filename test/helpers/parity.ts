/** The parity fixtures as tests: the cases are present, and every one passes on each kernel set. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withBackend } from '../../src/engine/backend.ts';
import { findCases, runParityCase } from '../../src/io/parity.ts';
import { kernelSets } from './gradcheck.ts';

export function parityCaseTests(dir: string, minCases: number): void {
  const cases = findCases([dir]);
  test('fixtures are present', () => assert.ok(cases.length >= minCases, `${cases.length} cases in ${dir}`));
  for (const { name, k } of kernelSets()) {
    test(`every case passes (${name} kernels)`, () => {
      withBackend(k, () => {
        for (const c of cases) {
          const r = runParityCase(c);
          assert.ok(r.pass, `${r.case}: ${r.error ?? JSON.stringify(r.outputs)}`);
        }
      });
    });
  }
}
