/**
 * No PyTorch here, so the .pt files are assembled byte by byte following the documented torch.save layout:
 * a zip (entries `<archive>/data.pkl`, `<archive>/data/<key>`, `<archive>/byteorder`, `<archive>/version`, data
 * 64-byte aligned via a padding extra field) holding a protocol-2 pickle in which tensors are
 * `torch._utils._rebuild_tensor_v2(persistent_id(('storage', torch.FloatStorage, key, 'cpu', numel)), offset,
 * size, stride, requires_grad, OrderedDict())`, emitted the way Python's pickler does (memoising with BINPUT).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readTorchCheckpoint, readTorchObject } from '../src/io/torch-pickle.ts';
import { TorchCheckpointError } from '../src/io/torch-limits.ts';
import { PyDict, PyOpaque } from '../src/io/pickle-values.ts';
import { torchTensorToFloat32, torchTensorToInt32 } from '../src/io/torch-storage.ts';
import { readSafetensors } from '../src/io/safetensors-read.ts';
import { writeSafetensors } from '../src/io/safetensors-write.ts';
import { f32ToF16, f32ToBf16 } from '../src/io/half-float.ts';
import { type TensorToWrite } from '../src/io/safetensors.ts';
import { buildZip } from './helpers/torch-zip.ts';

// ---------------------------------------------------------------------------------------------------------------
// Pickle builder (protocol 2 opcodes, as CPython's pickler emits them)

class Pickler {
  private parts: number[] = [];
  private memoCount = 0;
  private memo = new Map<string, number>();

  raw(...b: number[]): this { this.parts.push(...b); return this; }
  private u32(n: number): number[] { return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff]; }
  put(): this { // BINPUT / LONG_BINPUT the top of the stack
    const i = this.memoCount++;
    return i < 256 ? this.raw(0x71, i) : this.raw(0x72, ...this.u32(i));
  }
  get(i: number): this { return i < 256 ? this.raw(0x68, i) : this.raw(0x6a, ...this.u32(i)); }
  proto(v = 2): this { return this.raw(0x80, v); }
  mark(): this { return this.raw(0x28); }
  stop(): this { return this.raw(0x2e); }
  /** GLOBAL, memoised like CPython: the second use of the same global is a BINGET. */
  global(module: string, name: string): this {
    const key = `${module}.${name}`;
    const seen = this.memo.get(key);
    if (seen !== undefined) return this.get(seen);
    this.raw(0x63, ...Buffer.from(`${module}\n${name}\n`, 'latin1'));
    this.memo.set(key, this.memoCount);
    return this.put();
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    if (b.length < 256) this.raw(0x8c, b.length, ...b); // SHORT_BINUNICODE (protocol 4; torch uses X for 2)
    return this.put();
  }
  ustr(s: string): this { // BINUNICODE, what protocol 2 emits
    const b = Buffer.from(s, 'utf8');
    return this.raw(0x58, ...this.u32(b.length), ...b).put();
  }
  int(n: number): this {
    if (n >= 0 && n < 256) return this.raw(0x4b, n);
    if (n >= 0 && n < 65536) return this.raw(0x4d, n & 0xff, n >> 8);
    if (n >= -(2 ** 31) && n < 2 ** 31) return this.raw(0x4a, ...this.u32(n >>> 0));
    return this.long(BigInt(n));
  }
  long(v: bigint): this { // LONG1, two's complement little-endian, minimal length
    const bytes: number[] = [];
    let x = v;
    for (;;) {
      const b = Number(x & 0xffn);
      bytes.push(b);
      x >>= 8n;
      if ((x === 0n && (b & 0x80) === 0) || (x === -1n && (b & 0x80) !== 0)) break;
    }
    return this.raw(0x8a, bytes.length, ...bytes);
  }
  float(x: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(x);
    return this.raw(0x47, ...b);
  }
  tuple(n: number): this { // for n <= 3 CPython uses TUPLE1..3 after pushing items; caller pushed items already
    if (n === 0) return this.raw(0x29);
    if (n <= 3) return this.raw(0x84 + n).put();
    throw new Error('use mark()...tupleMark()');
  }
  tupleMark(): this { return this.raw(0x74).put(); }
  none(): this { return this.raw(0x4e); }
  bool(b: boolean): this { return this.raw(b ? 0x88 : 0x89); }
  emptyDict(): this { return this.raw(0x7d).put(); }
  emptyList(): this { return this.raw(0x5d).put(); }
  appends(): this { return this.raw(0x65); }
  setitems(): this { return this.raw(0x75); }
  setitem(): this { return this.raw(0x73); }
  reduce(): this { return this.raw(0x52).put(); }
  build(): this { return this.raw(0x62); }
  persid(): this { return this.raw(0x51); }
  newobj(): this { return this.raw(0x81).put(); }
  orderedDict(): this { return this.global('collections', 'OrderedDict').tuple(0).reduce(); }
  bytes(): Uint8Array { return Uint8Array.from(this.parts); }

  /** A tensor exactly as torch pickles it (protocol 2): _rebuild_tensor_v2 with a 6-tuple of arguments. */
  tensor(storageType: string, key: string, numel: number, offset: number, size: number[], stride: number[]): this {
    this.global('torch._utils', '_rebuild_tensor_v2');
    this.mark();
    this.mark().ustr('storage').global('torch', storageType).ustr(key).ustr('cpu').int(numel).tupleMark().persid();
    this.int(offset);
    this.intTuple(size).intTuple(stride);
    this.bool(false);
    this.orderedDict();
    this.tupleMark();
    return this.reduce();
  }
  intTuple(xs: number[]): this {
    if (xs.length <= 3) { for (const x of xs) this.int(x); return this.tuple(xs.length); }
    this.mark();
    for (const x of xs) this.int(x);
    return this.tupleMark();
  }
}

function le(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

// ---------------------------------------------------------------------------------------------------------------
// The reference checkpoint used by several tests

const W = new Float32Array([1, 2, 3, 4, 5, 6]); // conv.weight (2, 3)
const HALF_VALUES = [0.5, -1.5, 65504, 2 ** -24];
const HALF = new Uint16Array(HALF_VALUES.map(f32ToF16));
const BF = new Uint16Array([1, -2, 3.5].map(f32ToBf16));
const IDS = new BigInt64Array([7n, -3n, 2n ** 40n]);
const MASK = new Uint8Array([1, 0, 1]);

/** {'epoch': 3, 'lr': 0.001, 'model_state_dict': OrderedDict(...) with _metadata, 'tags': ['a', None, True]} */
function checkpointPickle(): Uint8Array {
  const p = new Pickler().proto(2);
  p.emptyDict().mark();
  p.ustr('epoch').int(3);
  p.ustr('lr').float(0.001);
  p.ustr('step').long(-(2n ** 70n));
  p.ustr('tags').emptyList().mark().ustr('a').none().bool(true).appends();
  p.ustr('model_state_dict').orderedDict().mark();
  p.ustr('conv.weight').tensor('FloatStorage', '0', 6, 0, [2, 3], [3, 1]);
  p.ustr('fc.weight_t').tensor('FloatStorage', '0', 6, 0, [3, 2], [1, 3]); // w.t(): non-contiguous, shared storage
  p.ustr('row1').tensor('FloatStorage', '0', 6, 3, [3], [1]); // w[1]: storage offset
  p.ustr('scalar').tensor('FloatStorage', '0', 6, 5, [], []); // w[1, 2]: 0-d tensor
  p.ustr('every_other').tensor('FloatStorage', '0', 6, 0, [1, 2, 2], [6, 3, 2]); // 3-d strided, size-1 dim
  p.ustr('half').tensor('HalfStorage', '1', 4, 0, [2, 2], [2, 1]);
  p.ustr('half_t').tensor('HalfStorage', '1', 4, 0, [2, 2], [1, 2]); // non-contiguous half
  p.ustr('bf').tensor('BFloat16Storage', '2', 3, 0, [3], [1]);
  p.ustr('ids').tensor('LongStorage', '3', 3, 0, [3], [1]);
  p.ustr('mask').tensor('BoolStorage', '4', 3, 0, [3], [1]);
  p.ustr('empty').tensor('FloatStorage', '5', 0, 0, [0, 4], [4, 1]);
  p.setitems();
  // state_dict._metadata, restored by BUILD after SETITEMS (OrderedDict.__reduce__ order)
  p.emptyDict().ustr('_metadata').orderedDict();
  p.mark().ustr('').emptyDict().ustr('version').int(1).setitem().ustr('conv').emptyDict().setitems(); // two entries
  p.setitem().build();
  p.setitems();
  return p.stop().bytes();
}

function checkpointFiles(pkl = checkpointPickle()): [string, Uint8Array][] {
  return [
    ['archive/data.pkl', pkl],
    ['archive/byteorder', Buffer.from('little')],
    ['archive/data/0', le(W)],
    ['archive/data/1', le(HALF)],
    ['archive/data/2', le(BF)],
    ['archive/data/3', le(IDS)],
    ['archive/data/4', MASK],
    ['archive/data/5', new Uint8Array(0)],
    ['archive/version', Buffer.from('3\n')],
    ['archive/.data/serialization_id', Buffer.from('1234567890')],
  ];
}

function tmpFile(dir: string, name: string, content: Uint8Array): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, content);
  return p;
}

function checkReference(file: string): void {
  const sd = readTorchCheckpoint(file);
  assert.deepEqual([...sd.keys()], ['conv.weight', 'fc.weight_t', 'row1', 'scalar', 'every_other', 'half', 'half_t',
    'bf', 'ids', 'mask', 'empty']);
  const t = (n: string) => sd.get(n)!;
  assert.equal(t('conv.weight').dtype, 'F32');
  assert.deepEqual(t('conv.weight').shape, [2, 3]);
  assert.deepEqual([...t('conv.weight').data], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(t('fc.weight_t').shape, [3, 2]);
  assert.deepEqual([...t('fc.weight_t').data], [1, 4, 2, 5, 3, 6]); // transpose, materialised in C order
  assert.deepEqual([...t('row1').data], [4, 5, 6]);
  assert.deepEqual(t('scalar').shape, []);
  assert.deepEqual([...t('scalar').data], [6]);
  assert.deepEqual(t('every_other').shape, [1, 2, 2]);
  assert.deepEqual([...t('every_other').data], [1, 3, 4, 6]);
  assert.equal(t('half').dtype, 'F16');
  assert.deepEqual([...t('half').data], [...HALF]);
  assert.deepEqual([...torchTensorToFloat32(t('half'))], HALF_VALUES);
  assert.deepEqual([...torchTensorToFloat32(t('half_t'))], [HALF_VALUES[0], HALF_VALUES[2], HALF_VALUES[1], HALF_VALUES[3]]);
  assert.equal(t('bf').dtype, 'BF16');
  assert.deepEqual([...torchTensorToFloat32(t('bf'))], [1, -2, 3.5]);
  assert.equal(t('ids').dtype, 'I64');
  assert.deepEqual([...(t('ids').data as BigInt64Array)], [7n, -3n, 2n ** 40n]);
  assert.throws(() => torchTensorToInt32(t('ids')), /1099511627776 at flat index 2/);
  assert.equal(t('mask').dtype, 'BOOL');
  assert.deepEqual([...torchTensorToInt32(t('mask'))], [1, 0, 1]);
  assert.deepEqual(t('empty').shape, [0, 4]);
  assert.equal(t('empty').data.length, 0);
}

// ---------------------------------------------------------------------------------------------------------------

test('reads a torch.save-style zip checkpoint: strided, offset, 0-d, half, bf16, int64, bool tensors', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pt-test-'));
  checkReference(tmpFile(dir, 'ckpt.pt', buildZip(checkpointFiles())));

  // Contiguous tensors are zero-copy views of one storage; strided ones are copies.
  const sd = readTorchCheckpoint(path.join(dir, 'ckpt.pt'));
  assert.equal(sd.get('conv.weight')!.data.buffer, sd.get('row1')!.data.buffer);
  assert.notEqual(sd.get('conv.weight')!.data.buffer, sd.get('fc.weight_t')!.data.buffer);

  // Same content, different container details: misaligned storages, deflated entries, zip64 directory.
  checkReference(tmpFile(dir, 'mis.pt', buildZip(checkpointFiles(), { misalign: true })));
  checkReference(tmpFile(dir, 'deflate.pt', buildZip(checkpointFiles(), { deflate: (n) => n.endsWith('.pkl') || n.endsWith('/1') })));
  checkReference(tmpFile(dir, 'z64.pt', buildZip(checkpointFiles(), { zip64: true })));
  fs.rmSync(dir, { recursive: true });
});

test('readTorchObject exposes the whole pickled object', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pt-test-'));
  const root = readTorchObject(tmpFile(dir, 'ckpt.pt', buildZip(checkpointFiles())));
  assert.ok(root instanceof PyDict);
  assert.equal(root.get('epoch'), 3);
  assert.equal(root.get('lr'), 0.001);
  assert.equal(root.get('step'), -(2n ** 70n));
  assert.deepEqual(root.get('tags'), ['a', null, true]);
  const sd = root.get('model_state_dict');
  assert.ok(sd instanceof PyDict);
  const attrs = sd.attrs as PyDict;
  const meta = attrs.get('_metadata') as PyDict;
  assert.deepEqual([...meta.keys()], ['', 'conv']);
  assert.deepEqual((meta.get('') as PyDict).get('version'), 1);
  fs.rmSync(dir, { recursive: true });
});

test('plain state_dict at top level and nested dicts are flattened with dots; converts to safetensors', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pt-test-'));
  const p = new Pickler().proto(2);
  p.orderedDict().mark();
  p.ustr('a').tensor('FloatStorage', '0', 6, 0, [3, 2], [1, 3]);
  p.ustr('sub').emptyDict().mark().ustr('h').tensor('HalfStorage', '1', 4, 0, [4], [1]).ustr('n').int(5).setitems();
  p.ustr('ids').tensor('LongStorage', '3', 3, 0, [2], [1]);
  p.setitems().stop();
  const files = checkpointFiles(p.bytes());
  const file = tmpFile(dir, 'pytorch_model.bin', buildZip(files.map(([n, c]) => [n.replace(/^archive\//, 'pytorch_model/'), c])));
  const sd = readTorchCheckpoint(file);
  assert.deepEqual([...sd.keys()], ['a', 'sub.h', 'ids']);

  // Every tensor is directly writable as safetensors, losslessly.
  const out = path.join(dir, 'converted.safetensors');
  const tensors: Record<string, TensorToWrite> = {};
  for (const [k, v] of sd) tensors[k] = v;
  writeSafetensors(out, tensors);
  const st = readSafetensors(out);
  assert.deepEqual([...st.float32('a')], [1, 4, 2, 5, 3, 6]);
  assert.deepEqual([...st.float32('sub.h')], HALF_VALUES);
  assert.deepEqual(st.entry('ids').dtype, 'I64');
  assert.deepEqual([...st.int32('ids')], [7, -3]);
  fs.rmSync(dir, { recursive: true });
});

function expectError(file: string, pattern: RegExp): void {
  assert.throws(() => readTorchCheckpoint(file), (e: unknown) => {
    assert.ok(e instanceof TorchCheckpointError, `got ${String(e)}`);
    assert.ok(e.message.includes(file), e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

test('refuses unknown globals and never executes them', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pt-test-'));
  const evil = new Pickler().proto(2).global('os', 'system').ustr('touch /tmp/pwned').tuple(1).reduce().stop();
  expectError(tmpFile(dir, 'evil.pt', buildZip([['archive/data.pkl', evil.bytes()]])), /refusing to load global 'os.system'/);
  // Protocol 4 style STACK_GLOBAL
  const evil2 = new Pickler().proto(4).str('builtins').str('eval').raw(0x93).stop();
  expectError(tmpFile(dir, 'evil2.pt', buildZip([['archive/data.pkl', evil2.bytes()]])), /refusing to load global 'builtins.eval'/);
  // A rebuild from a non-allow-listed tensor subclass path
  const sub = new Pickler().proto(2).global('torch._tensor', '_rebuild_from_type_v2').stop();
  expectError(tmpFile(dir, 'sub.pt', buildZip([['archive/data.pkl', sub.bytes()]])), /_rebuild_from_type_v2/);
  // Unsupported storage type in a persistent id
  const cplx = new Pickler().proto(2);
  cplx.mark().ustr('storage').global('torch', 'ComplexFloatStorage').ustr('0').ustr('cpu').int(1).tupleMark().persid().stop();
  expectError(tmpFile(dir, 'cplx.pt', buildZip([['archive/data.pkl', cplx.bytes()]])), /ComplexFloatStorage/);
  fs.rmSync(dir, { recursive: true });
});

test('corrupt or unsupported checkpoints give clear errors', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pt-test-'));
  const good = buildZip(checkpointFiles());

  // Flip a byte inside storage 0's data: CRC mismatch.
  const corrupt = Buffer.from(good);
  const at = corrupt.indexOf(Buffer.from(le(W)));
  assert.ok(at > 0);
  corrupt[at + 1]! ^= 0xff;
  expectError(tmpFile(dir, 'crc.pt', corrupt), /archive\/data\/0.*CRC mismatch/);

  expectError(tmpFile(dir, 'missing.pt', buildZip(checkpointFiles().filter(([n]) => n !== 'archive/data/1'))),
    /storage record 'archive\/data\/1' is missing/);
  expectError(tmpFile(dir, 'short.pt', buildZip(checkpointFiles().map(([n, c]) => [n, n === 'archive/data/0' ? c.subarray(0, 20) : c]))),
    /storage '0' \(torch.FloatStorage\) has 20 bytes, expected 6 x 4/);
  expectError(tmpFile(dir, 'be.pt', buildZip(checkpointFiles().map(([n, c]) => [n, n.endsWith('byteorder') ? Buffer.from('big') : c]))),
    /byteorder 'big'/);

  // Stride that walks past the end of its storage.
  const oob = new Pickler().proto(2).orderedDict().mark().ustr('x').tensor('FloatStorage', '0', 6, 2, [2, 3], [3, 1]).setitems().stop();
  expectError(tmpFile(dir, 'oob.pt', buildZip(checkpointFiles(oob.bytes()))), /reaches element 7 of storage '0' which has 6/);

  // Truncated pickle, stack underflow, unknown opcode.
  const pkl = checkpointPickle();
  expectError(tmpFile(dir, 'trunc.pt', buildZip(checkpointFiles(pkl.subarray(0, pkl.length - 10)))), /unexpected end of pickle|MARK|STOP/);
  expectError(tmpFile(dir, 'under.pt', buildZip(checkpointFiles(new Pickler().proto(2).raw(0x52).stop().bytes()))), /stack underflow/);
  expectError(tmpFile(dir, 'op.pt', buildZip(checkpointFiles(new Pickler().proto(2).raw(0xff).bytes()))), /unsupported pickle opcode 0xff/);
  // Not a dict at top level.
  expectError(tmpFile(dir, 'list.pt', buildZip(checkpointFiles(new Pickler().proto(2).emptyList().stop().bytes()))), /top-level object/);

  // Container problems.
  expectError(tmpFile(dir, 'legacy.pt', Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc])), /legacy/);
  expectError(tmpFile(dir, 'junk.pt', Buffer.from('hello world, not a zip')), /not a zip/);
  expectError(tmpFile(dir, 'cut.pt', good.subarray(0, good.length - 30)), /bad zip/);
  expectError(tmpFile(dir, 'nopkl.pt', buildZip([['archive/version', Buffer.from('3\n')]])), /exactly one '<archive>\/data.pkl', found 0/);
  expectError(tmpFile(dir, 'ts.pt', buildZip([['m/constants.pkl', new Uint8Array(1)], ['m/code/x.py', new Uint8Array(1)]])), /TorchScript/);
  expectError(path.join(dir, 'absent.pt'), /cannot read/);
  fs.rmSync(dir, { recursive: true });
});

test('allowUnknownGlobals loads training checkpoints with foreign objects as inert placeholders', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pt-test-'));
  const p = new Pickler().proto(2).emptyDict().mark();
  // args: argparse.Namespace(lr=0.1), pickled via copyreg.__newobj__ as NEWOBJ + BUILD
  p.ustr('args').global('argparse', 'Namespace').tuple(0).newobj().emptyDict().ustr('lr').float(0.1).setitem().build();
  p.ustr('state_dict').orderedDict().mark();
  p.ustr('w').tensor('FloatStorage', '0', 6, 0, [2, 3], [3, 1]);
  p.ustr('expanded').tensor('FloatStorage', '0', 6, 0, [2, 3], [0, 1]); // x[:3].expand(2, 3): stride 0
  p.setitems();
  p.setitems().stop();
  const file = tmpFile(dir, 'train.pt', buildZip(checkpointFiles(p.bytes())));

  expectError(file, /refusing to load global 'argparse.Namespace'.*allowUnknownGlobals/);
  const sd = readTorchCheckpoint(file, { allowUnknownGlobals: true });
  assert.deepEqual([...sd.keys()], ['w', 'expanded']);
  assert.deepEqual([...sd.get('expanded')!.data], [1, 2, 3, 1, 2, 3]);
  const root = readTorchObject(file, { allowUnknownGlobals: true }) as PyDict;
  const args = root.get('args');
  assert.ok(args instanceof PyOpaque);
  assert.equal(args.qualname, 'argparse.Namespace');
  assert.equal((args.state as PyDict).get('lr'), 0.1);

  // A stride-0 tensor far larger than its storage is refused instead of allocating gigabytes.
  const bomb = new Pickler().proto(2).orderedDict().mark().ustr('x').tensor('FloatStorage', '0', 6, 0, [2 ** 27], [0])
    .setitems().stop();
  expectError(tmpFile(dir, 'bomb.pt', buildZip(checkpointFiles(bomb.bytes()))), /materialising tensor of size \[134217728\] stride \[0\].*536870912, over the budget/);
  fs.rmSync(dir, { recursive: true });
});
