/** Parity fixtures (test/fixtures/shared/parity and parity-real): component and whole-model cases. */
import { runParityCase, PARITY_KINDS } from '../../io/parity.ts';
import type { VerifyKind } from './types.ts';

export const parityKind: VerifyKind = {
  name: 'parity',
  caseKinds: PARITY_KINDS,
  run(dir, _caseJson, opts) {
    const r = runParityCase(dir, { dtype: opts?.dtype });
    return Promise.resolve([{
      case: r.case, dir: r.dir, kind: r.kind, pass: r.pass, maxAbsError: r.maxAbsError,
      outputs: r.outputs, ...(r.error !== undefined ? { error: r.error } : {}),
      ...(r.lowPrecision ? { lowPrecision: r.lowPrecision } : {}),
    }]);
  },
};
