/**
 * The hostile checkpoint files of issue 19 (items 4-5), built byte by byte into a directory: tiny .pt and
 * safetensors files that ask for gigabytes, millions of pickle values or MARKs, 200k-deep nesting, reference
 * cycles or a decompression bomb. Each comes with the error its reading must end in. Used by
 * test/hostile-readers.test.ts and bench/hostile.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { PickleBytes, torchZip } from './torch-zip.ts';

export interface HostileFile {
  name: string;
  file: string;
  /** The error message it must produce. */
  expect: RegExp;
}

export function buildHostileCheckpoints(dir: string): HostileFile[] {
  const write = (name: string, bytes: Uint8Array): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, bytes);
    return f;
  };
  const cases: HostileFile[] = [];
  const add = (name: string, bytes: Uint8Array, expect: RegExp): void => { cases.push({ name, file: write(name, bytes), expect }); };
  const safetensors = (header: string): Buffer => {
    const h = Buffer.from(header, 'utf8');
    const n = Buffer.alloc(8);
    n.writeBigUInt64LE(BigInt(h.length));
    return Buffer.concat([n, h]);
  };

  const nested = (depth: number, inner: string): string => '['.repeat(depth) + inner + ']'.repeat(depth);

  // 2M empty dicts in a list: a 2 MB pickle (within the ratio exemption) that would build 2M JS objects.
  add('dicts-2m.pt', torchZip(new PickleBytes().raw(0x80, 2, 0x5d, 0x28).repeat([0x7d], 2_000_000).raw(0x65, 0x2e).bytes(), {}, { deflate: ['data.pkl'] }),
    /more than 500000 pickle values \(budgets\.maxObjects\)/);
  // The 20M empty dicts in a ~20 KB file: refused from the declared size, before inflating.
  add('dicts-20m.pt', torchZip(new PickleBytes().raw(0x80, 2, 0x5d, 0x28).repeat([0x7d], 20_000_000).raw(0x65, 0x2e).bytes(), {}, { deflate: ['data.pkl'] }),
    /'archive\/data\.pkl' is 20000006 bytes, over the budget of 16777216 \(budgets\.maxPickleBytes\)/);
  // 12 stride-0 tensors of 8192x8192 over a 1-element storage: 3 GiB if each were allowed its own cap.
  {
    const p = new PickleBytes().raw(0x80, 2).global('collections', 'OrderedDict').raw(0x29, 0x52, 0x28);
    for (let i = 0; i < 12; i++) p.str(`t${i}`).tensor('0', 1, [8192, 8192], [0, 0]);
    add('stride0.pt', torchZip(p.raw(0x75, 0x2e).bytes(), { 0: new Uint8Array(4) }),
      /materialising tensor of size \[8192, 8192\] stride \[0, 0\] .*over the budget of \d+ \(budgets\.maxMaterializedBytes/);
  }
  // 10M MARKs in ~10 KB.
  add('marks.pt', torchZip(new PickleBytes().raw(0x80, 2).repeat([0x28], 10_000_000).raw(0x2e).bytes(), {}, { deflate: ['data.pkl'] }),
    /more than 1000 nested MARKs \(budgets\.maxDepth\)/);
  // A storage of 64 MiB of zeros deflated to ~64 KB (ratio ~1000).
  {
    const zeros = zlib.deflateRawSync(Buffer.alloc(64 << 20));
    const pkl = new PickleBytes().raw(0x80, 2, 0x7d, 0x28).str('w').tensor('0', 16 << 20, [16 << 20], [1]).raw(0x75, 0x2e).bytes();
    add('ratio.pt', torchZip(pkl, {}, { predeflated: { 'data/0': [zeros, 64 << 20] } }), /'archive\/data\/0': declares 67108864 bytes inflated .*ratio \d+, budget 64/);
    // The same stream declaring 1 MiB: inflation stops at the declared size instead of trusting the stream.
    const pkl2 = new PickleBytes().raw(0x80, 2, 0x7d, 0x28).str('w').tensor('0', 1 << 18, [1 << 18], [1]).raw(0x75, 0x2e).bytes();
    add('lying-size.pt', torchZip(pkl2, {}, { predeflated: { 'data/0': [zeros, 1 << 20] } }), /'archive\/data\/0': inflate failed/);
  }
  // A dict that contains itself (366 bytes in the issue; here: {} PUT0 'a' GET0 SETITEM).
  add('cycle.pt', torchZip(new PickleBytes().raw(0x80, 2, 0x7d, 0x71, 0, 0x8c, 1, 0x61, 0x68, 0, 0x73, 0x2e).bytes()),
    /dict\(1 items\) contains itself \(a reference cycle\)/);
  // 200k nested dicts, written with MARK/SETITEMS as Python's pickler does...
  add('nested-marks.pt', torchZip(new PickleBytes().raw(0x80, 2).repeat([0x7d, 0x28, 0x8c, 1, 0x61], 200_000).repeat([0x7d], 1).repeat([0x75], 200_000).raw(0x2e).bytes(), {}, { deflate: ['data.pkl'] }),
    /more than 1000 nested MARKs/);
  // ...and without any MARK: each new dict is memoised, stored into the previous one, and fetched back.
  {
    const step = [0x8c, 1, 0x61, 0x7d, 0x72, 1, 0, 0, 0, 0x73, 0x30, 0x6a, 1, 0, 0, 0]; // 'a' {} PUT1 SETITEM POP GET1
    const p = new PickleBytes().raw(0x80, 2, 0x7d, 0x72, 0, 0, 0, 0).repeat(step, 200_000).raw(0x30, 0x6a, 0, 0, 0, 0, 0x2e);
    add('nested-memo.pt', torchZip(p.bytes(), {}, { deflate: ['data.pkl'] }), /objects nested deeper than 1000 levels \(budgets\.maxDepth\)/);
  }
  // 60 levels of dicts each holding the next one twice: 2^60 dotted names if flattened naively.
  {
    const p = new PickleBytes().raw(0x80, 2, 0x7d);
    for (let i = 0; i < 60; i++) p.raw(0x71, 1, 0x30, 0x7d, 0x28, 0x8c, 1, 0x61, 0x68, 1, 0x8c, 1, 0x62, 0x68, 1, 0x75);
    add('diamonds.pt', torchZip(p.raw(0x2e).bytes()), /more than 500000 names in the state dict/);
  }
  // References cost memory without creating values: 10M DUP+APPEND of a list into itself. Over 16 MiB the pickle is
  // refused by size; under it, the walk finds the list inside itself.
  add('refs.pt', torchZip(new PickleBytes().raw(0x80, 2, 0x5d).repeat([0x32, 0x61], 10_000_000).raw(0x2e).bytes(), {}, { deflate: ['data.pkl'] }),
    /'archive\/data\.pkl' is 20000004 bytes, over the budget of 16777216 \(budgets\.maxPickleBytes\)/);
  add('self-appends.pt', torchZip(new PickleBytes().raw(0x80, 2, 0x5d).repeat([0x32, 0x61], 4_000_000).raw(0x2e).bytes(), {}, { deflate: ['data.pkl'] }),
    /tuple\/list of 4000000 contains itself \(a reference cycle\)/);
  // safetensors: a shape and a __metadata__ value nested 200k deep.
  add('deep-shape.safetensors', safetensors(`{"x":{"dtype":"F32","shape":${nested(200_000, '1')},"data_offsets":[0,0]}}`),
    /header JSON is nested deeper than 8 levels/);
  add('deep-metadata.safetensors', safetensors(`{"__metadata__":{"k":${nested(200_000, '"v"')}}}`), /header JSON is nested deeper than 8 levels/);
  return cases;
}
