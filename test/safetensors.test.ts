import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors, parseSafetensors } from '../src/io/safetensors-read.ts';
import { writeSafetensors } from '../src/io/safetensors-write.ts';
import { SafetensorsError, MAX_HEADER_BYTES, type SafeDType, type TensorToWrite } from '../src/io/safetensors.ts';
import { f16ToF32, f32ToF16, bf16ToF32, f32ToBf16, float32ArrayToHalfBits, halfBitsToFloat32Array } from '../src/io/half-float.ts';

const FIXTURES = fileURLToPath(new URL('./fixtures/shared/parity', import.meta.url));

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'st-test-'));
}

/** Independent header parse (no code from the module under test). */
function rawHeader(file: string): { n: number; json: Record<string, unknown> } {
  const b = fs.readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  return { n, json: JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown> };
}

/** Build a safetensors buffer by hand from a header object (or raw header string) and a data region. */
function craft(header: unknown, data: Uint8Array, rawN?: bigint): Buffer {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(rawN ?? BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

function writeRaw(dir: string, name: string, buf: Uint8Array): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, buf);
  return p;
}

// ---------------------------------------------------------------------------------------------------------------
// Round trips

test('round trip every dtype, scalars and zero-size dims', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'all.safetensors');
  const f32 = new Float32Array([1.5, -0, Infinity, -Infinity, NaN, 3.4028234663852886e38, 1e-45, -7.25]);
  const f16vals = new Float32Array([0, -0, 1, -2, 65504, 2 ** -24, 0.333251953125, Infinity]); // all exact in f16
  const bf16vals = new Float32Array([0, 1, -2.5, 3.3895313892515355e38, 2 ** -133, -Infinity]); // all exact in bf16
  const tensors: Record<string, TensorToWrite> = {
    f32: { dtype: 'F32', shape: [2, 4], data: f32 },
    f16: { dtype: 'F16', shape: [8], data: f16vals },
    f16raw: { dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0xfbff]) },
    bf16: { dtype: 'BF16', shape: [3, 2], data: bf16vals },
    i64: { dtype: 'I64', shape: [2, 2], data: new BigInt64Array([0n, -1n, 2147483647n, -2147483648n]) },
    i64big: { dtype: 'I64', shape: [2], data: new BigInt64Array([2n ** 40n, -(2n ** 62n)]) },
    i64w: { dtype: 'I64', shape: [3], data: new Int32Array([-5, 7, -2147483648]) },
    i32: { dtype: 'I32', shape: [1, 3], data: new Int32Array([-1, 0, 2147483647]) },
    u8: { dtype: 'U8', shape: [4], data: Buffer.from([0, 1, 128, 255]) }, // a Buffer is a Uint8Array
    bool: { dtype: 'BOOL', shape: [2, 1], data: new Uint8Array([1, 0]) },
    f64: { dtype: 'F64', shape: [2], data: new Float64Array([0.1, -1e300]) },
    i8: { dtype: 'I8', shape: [2], data: new Int8Array([-128, 127]) },
    i16: { dtype: 'I16', shape: [2], data: new Int16Array([-32768, 32767]) },
    u16: { dtype: 'U16', shape: [2], data: new Uint16Array([0, 65535]) },
    scalar: { dtype: 'F32', shape: [], data: new Float32Array([42.5]) },
    empty: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
    empty2: { dtype: 'I64', shape: [2, 0, 5], data: new BigInt64Array(0) },
  };
  writeSafetensors(file, tensors, { format: 'pt', note: 'héllo' });
  const st = readSafetensors(file);

  assert.deepEqual(st.metadata, { format: 'pt', note: 'héllo' });
  for (const [name, t] of Object.entries(tensors)) {
    assert.ok(st.has(name), name);
    assert.deepEqual(st.shape(name), t.shape, name);
    assert.equal(st.entry(name).dtype, t.dtype, name);
  }
  assert.equal(st.has('nope'), false);

  assert.deepEqual([...st.float32('f32')], [...f32]);
  assert.ok(Object.is(st.float32('f32')[1], -0));
  assert.deepEqual([...st.float32('f16')], [...f16vals]);
  assert.ok(Object.is(st.float32('f16')[1], -0));
  assert.deepEqual([...st.float32('f16raw')], [1, -65504]);
  assert.deepEqual([...st.float32('bf16')], [...bf16vals]);
  assert.deepEqual([...st.int32('i64')], [0, -1, 2147483647, -2147483648]);
  assert.deepEqual([...new BigInt64Array(st.bytes('i64big').slice().buffer)], [2n ** 40n, -(2n ** 62n)]);
  assert.deepEqual([...new BigInt64Array(st.bytes('i64w').slice().buffer)], [-5n, 7n, -2147483648n]);
  assert.deepEqual([...st.int32('i32')], [-1, 0, 2147483647]);
  assert.deepEqual([...st.int32('u8')], [0, 1, 128, 255]);
  assert.deepEqual([...st.bytes('u8')], [0, 1, 128, 255]);
  assert.deepEqual([...st.int32('bool')], [1, 0]);
  assert.deepEqual([...st.float32('f64')], [Math.fround(0.1), -Infinity]);
  assert.deepEqual([...st.int32('i8')], [-128, 127]);
  assert.deepEqual([...st.int32('i16')], [-32768, 32767]);
  assert.deepEqual([...st.int32('u16')], [0, 65535]);
  assert.deepEqual([...st.float32('scalar')], [42.5]);
  assert.equal(st.float32('empty').length, 0);
  assert.equal(st.int32('empty2').length, 0);
  assert.equal(st.entry('empty').byteLength, 0);

  // int64 values outside int32 are refused, naming the tensor and the value
  assert.throws(() => st.int32('i64big'), (e: unknown) => e instanceof SafetensorsError
    && /i64big/.test(e.message) && /1099511627776/.test(e.message) && e.message.includes(file));
  // dtype-family mismatch is a clear error, not garbage
  assert.throws(() => st.float32('i32'), (e: unknown) => e instanceof SafetensorsError && /I32/.test(e.message));
  assert.throws(() => st.int32('f32'), (e: unknown) => e instanceof SafetensorsError && /F32/.test(e.message));
  assert.throws(() => st.float32('missing'), (e: unknown) => e instanceof SafetensorsError
    && /'missing'/.test(e.message) && /available/.test(e.message));

  // Layout: sorted by UTF-8 name, packed back to back, header a multiple of 8 padded with spaces.
  const { n, json } = rawHeader(file);
  assert.equal(n % 8, 0);
  const names = Object.keys(json).filter((k) => k !== '__metadata__');
  assert.deepEqual(names, [...names].sort());
  let expectOff = 0;
  for (const k of names) {
    const [b, e] = (json[k] as { data_offsets: [number, number] }).data_offsets;
    assert.equal(b, expectOff, `${k} packed`);
    expectOff = e;
  }
  assert.equal(fs.statSync(file).size, 8 + n + expectOff);
  fs.rmSync(dir, { recursive: true });
});

test('F32 reads are zero-copy when aligned and copies when misaligned', () => {
  const dir = tmpDir();
  // aligned: written by our writer with a 4-byte tensor first
  const file = path.join(dir, 'a.safetensors');
  writeSafetensors(file, {
    a: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
    b: { dtype: 'F32', shape: [3], data: new Float32Array([3, 4, 5]) },
  });
  const st = readSafetensors(file);
  const a = st.float32('a');
  const b = st.float32('b');
  assert.equal(a.buffer, b.buffer, 'both tensors view the one file buffer');
  assert.equal(a.buffer, st.bytes('a').buffer);
  assert.deepEqual([...b], [3, 4, 5]);

  // misaligned: a 1-byte U8 tensor shifts the F32 tensor to an odd offset
  const data = new Uint8Array(1 + 8);
  data[0] = 9;
  new DataView(data.buffer).setFloat32(1, -1.25, true);
  new DataView(data.buffer).setFloat32(5, 6.5, true);
  const header = { u: { dtype: 'U8', shape: [1], data_offsets: [0, 1] }, f: { dtype: 'F32', shape: [2], data_offsets: [1, 9] } };
  let json = JSON.stringify(header);
  while (json.length % 8 !== 0) json += ' '; // so 'f' starts at file offset 8 + 8k + 1: never 4-aligned
  const p = writeRaw(dir, 'mis.safetensors', craft(json, data));
  const ms = readSafetensors(p);
  const fv = ms.float32('f');
  assert.deepEqual([...fv], [-1.25, 6.5]);
  assert.notEqual(fv.buffer, ms.bytes('f').buffer, 'misaligned tensor is copied');
  assert.equal(fv.buffer.byteLength, 8, 'only that tensor is copied');
  assert.deepEqual([...ms.int32('u')], [9]);
  fs.rmSync(dir, { recursive: true });
});

// ---------------------------------------------------------------------------------------------------------------
// Real fixtures

/** Parse a case.json description like "float32 (2, 3, 1, 3, 32, 32) ..." into dtype and shape. */
function describedShape(desc: string): { dtype: SafeDType; shape: number[] } | undefined {
  const m = /^(float32|int64)\s*\(([\d,\s]*)\)/.exec(desc);
  if (!m) return undefined;
  const shape = m[2]!.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  return { dtype: m[1] === 'float32' ? 'F32' : 'I64', shape };
}

test('every parity fixture reads, matches case.json, and re-writes byte-identically', () => {
  const dir = tmpDir();
  const cases = fs.readdirSync(FIXTURES).filter((d) => fs.existsSync(path.join(FIXTURES, d, 'case.json')));
  assert.ok(cases.length >= 7, `found cases: ${cases.join(', ')}`);
  let checkedDescriptions = 0;
  for (const c of cases) {
    const spec = JSON.parse(fs.readFileSync(path.join(FIXTURES, c, 'case.json'), 'utf8')) as {
      inputs: Record<string, string>; outputs: Record<string, string>;
    };
    for (const [kind, descs] of [['inputs', spec.inputs], ['expected', spec.outputs]] as const) {
      const st = readSafetensors(path.join(FIXTURES, c, `${kind}.safetensors`));
      for (const [name, desc] of Object.entries(descs)) {
        const want = describedShape(desc);
        if (!want) continue;
        assert.ok(st.has(name), `${c}/${kind}: ${name}`);
        assert.deepEqual(st.shape(name), want.shape, `${c}/${kind}: ${name} shape`);
        assert.equal(st.entry(name).dtype, want.dtype, `${c}/${kind}: ${name} dtype`);
        const n = want.shape.reduce((a, b) => a * b, 1);
        const vals = want.dtype === 'F32' ? st.float32(name) : st.int32(name);
        assert.equal(vals.length, n);
        if (want.dtype === 'F32') assert.ok(vals.every((v) => Number.isFinite(v)), `${c}/${name} finite`);
        checkedDescriptions++;
      }
    }
    // Re-write every file from what we read: the writer must reproduce the reference layout byte for byte.
    for (const kind of ['weights', 'inputs', 'expected']) {
      const src = path.join(FIXTURES, c, `${kind}.safetensors`);
      const st = readSafetensors(src);
      const tensors: Record<string, TensorToWrite> = {};
      for (const e of st.entries()) {
        tensors[e.name] = e.dtype === 'I64'
          ? { dtype: 'I64', shape: e.shape, data: new BigInt64Array(st.bytes(e.name).slice().buffer) }
          : { dtype: e.dtype, shape: e.shape, data: st.float32(e.name) };
        if (kind === 'weights') assert.equal(e.dtype, 'F32', `${c} weights are float32`);
      }
      const out = path.join(dir, `${c}-${kind}.safetensors`);
      writeSafetensors(out, tensors, st.metadata);
      assert.ok(fs.readFileSync(out).equals(fs.readFileSync(src)), `${c}/${kind} byte-identical`);
    }
  }
  assert.ok(checkedDescriptions > 20, `checked ${checkedDescriptions}`);
  fs.rmSync(dir, { recursive: true });
});

test('flamingo_logits int64 tensors decode to sensible ints', () => {
  const spec = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'flamingo_logits/case.json'), 'utf8')) as {
    config: { lm: { vocab_size: number }; flamingo: { media_token_id: number } };
  };
  const inp = readSafetensors(path.join(FIXTURES, 'flamingo_logits/inputs.safetensors'));
  const exp = readSafetensors(path.join(FIXTURES, 'flamingo_logits/expected.safetensors'));
  const ids = inp.int32('input_ids');
  const mask = inp.int32('attention_mask');
  const pos = exp.int32('position_ids');
  const [B, L] = inp.shape('input_ids') as [number, number];
  assert.ok(ids.every((v) => v >= 0 && v < spec.config.lm.vocab_size));
  assert.ok(mask.every((v) => v === 0 || v === 1));
  // Row 0 has three media tokens; row 1 has two (case description).
  const mediaCount = (r: number): number => [...ids.subarray(r * L, (r + 1) * L)].filter((v) => v === spec.config.flamingo.media_token_id).length;
  assert.equal(mediaCount(0), 3);
  assert.equal(mediaCount(1), 2);
  // position_ids = cumsum(mask) - 1 clamped at 0, per README.
  for (let r = 0; r < B; r++) {
    let c = 0;
    for (let t = 0; t < L; t++) {
      c += mask[r * L + t]!;
      assert.equal(pos[r * L + t], Math.max(c - 1, 0), `row ${r} pos ${t}`);
    }
  }
  // Row 1 is left padded: its first mask entry is 0.
  assert.equal(mask[L], 0);
});

// ---------------------------------------------------------------------------------------------------------------
// Malformed files

function expectBad(dir: string, name: string, buf: Uint8Array, pattern: RegExp, tensor?: string): void {
  const p = writeRaw(dir, name, buf);
  assert.throws(() => readSafetensors(p), (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `${name}: got ${String(e)}`);
    assert.ok(e.message.includes(p), `${name}: message names the file: ${e.message}`);
    assert.match(e.message, pattern, name);
    if (tensor !== undefined) {
      assert.ok(e.message.includes(`'${tensor}'`), `${name}: message names the tensor: ${e.message}`);
      assert.equal(e.tensor, tensor);
    }
    return true;
  });
}

test('malformed files throw SafetensorsError with helpful messages', () => {
  const dir = tmpDir();
  const f32 = (n: number): Uint8Array => new Uint8Array(new Float32Array(n).buffer);
  const good = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };

  expectBad(dir, 'empty', new Uint8Array(0), /shorter than the 8-byte/);
  expectBad(dir, 'short', new Uint8Array(5), /shorter than the 8-byte/);
  expectBad(dir, 'hdr-too-long', craft(good, f32(2), 1000n), /header length 1000 is larger/);
  expectBad(dir, 'hdr-huge', craft(good, f32(2), 1n << 62n), /exceeds the .*limit/);
  expectBad(dir, 'hdr-over-limit', craft(good, f32(2), BigInt(MAX_HEADER_BYTES + 8)), /exceeds/);
  // Truncated: a valid file cut short in the data region.
  const full = craft(good, f32(2));
  expectBad(dir, 'truncated', full.subarray(0, full.length - 3), /exceed the data region/, 'w');
  expectBad(dir, 'bad-json', craft('{"w": {"dtype": "F32",', f32(2)), /not valid JSON/);
  expectBad(dir, 'bad-utf8', craft(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString('latin1'), f32(0)), /not valid (UTF-8|JSON)/);
  const badUtf8 = Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([0x7b, 0xc3, 0x28, 0x7d])]);
  expectBad(dir, 'bad-utf8-raw', badUtf8, /not valid UTF-8/);
  expectBad(dir, 'not-object', craft([1, 2], f32(0)), /must be an object/);
  expectBad(dir, 'null', craft('null', f32(0)), /must be an object/);
  expectBad(dir, 'entry-not-object', craft({ w: 5 }, f32(0)), /entry must be an object/, 'w');
  expectBad(dir, 'no-dtype', craft({ w: { shape: [2], data_offsets: [0, 8] } }, f32(2)), /missing 'dtype'/, 'w');
  expectBad(dir, 'no-offsets', craft({ w: { dtype: 'F32', shape: [2] } }, f32(2)), /missing 'data_offsets'/, 'w');
  expectBad(dir, 'unknown-dtype', craft({ w: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, f32(1)),
    /unknown dtype "F8_E4M3"/, 'w');
  expectBad(dir, 'shape-not-array', craft({ w: { dtype: 'F32', shape: '2', data_offsets: [0, 8] } }, f32(2)), /shape must be an array/, 'w');
  expectBad(dir, 'neg-dim', craft({ w: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, f32(2)), /invalid dimension -2/, 'w');
  expectBad(dir, 'frac-dim', craft({ w: { dtype: 'F32', shape: [1.5], data_offsets: [0, 6] } }, f32(2)), /invalid dimension 1.5/, 'w');
  expectBad(dir, 'offsets-3', craft({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 4, 8] } }, f32(2)), /\[begin, end\]/, 'w');
  expectBad(dir, 'offsets-neg', craft({ w: { dtype: 'F32', shape: [2], data_offsets: [-8, 0] } }, f32(2)), /\[begin, end\]/, 'w');
  expectBad(dir, 'begin-gt-end', craft({ w: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, f32(2)), /begin > end/, 'w');
  expectBad(dir, 'out-of-range', craft({ w: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, f32(2)), /exceed the data region of 8/, 'w');
  expectBad(dir, 'wrong-size', craft({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32(3)), /byte size 8 .* = 12/, 'w');
  expectBad(dir, 'size-overflow', craft({ w: { dtype: 'F32', shape: [2 ** 30, 2 ** 30, 2 ** 30], data_offsets: [0, 8] } }, f32(2)),
    /overflow/, 'w');
  expectBad(dir, 'overlap', craft({
    a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
  }, f32(3)), /overlaps 'a'/, 'b');
  expectBad(dir, 'meta-not-map', craft({ __metadata__: { format: 1 } }, f32(0)), /__metadata__ value for key 'format'/);
  expectBad(dir, 'meta-array', craft({ __metadata__: ['x'] }, f32(0)), /__metadata__ must be an object/);

  // Documented leniency: gaps between tensors and trailing bytes are tolerated; zero-size tensors never overlap.
  const gap = new Uint8Array(20);
  new DataView(gap.buffer).setFloat32(12, 2.5, true);
  const ok = readSafetensors(writeRaw(dir, 'gap', craft({
    a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
    z: { dtype: 'F32', shape: [0], data_offsets: [0, 0] },
    b: { dtype: 'F32', shape: [1], data_offsets: [12, 16] },
  }, gap)));
  assert.deepEqual([...ok.float32('b')], [2.5]);
  assert.equal(ok.float32('z').length, 0);

  // A metadata key named __proto__ is kept as plain data.
  const proto = readSafetensors(writeRaw(dir, 'proto', craft('{"__metadata__":{"__proto__":"x","a":"b"}}', f32(0))));
  assert.equal(Object.getOwnPropertyDescriptor(proto.metadata, '__proto__')?.value, 'x');
  assert.equal(proto.metadata.a, 'b');

  // Missing file.
  assert.throws(() => readSafetensors(path.join(dir, 'does-not-exist')), (e: unknown) => e instanceof SafetensorsError
    && /cannot read/.test(e.message));
  // parseSafetensors on an in-memory buffer uses the given label.
  assert.throws(() => parseSafetensors(Buffer.alloc(3), 'mem'), /safetensors mem: /);
  fs.rmSync(dir, { recursive: true });
});

// ---------------------------------------------------------------------------------------------------------------
// Writing: validation and atomicity

test('writer validates tensors and leaves an existing file intact on failure', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'ckpt.safetensors');
  writeSafetensors(file, { w: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } }, { v: '1' });
  const before = fs.readFileSync(file);
  const listing = (): string[] => fs.readdirSync(dir).sort();

  const bad: [string, Record<string, TensorToWrite>, RegExp][] = [
    ['length mismatch', { w: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }, /3 elements but data has 2/],
    ['wrong array type', { w: { dtype: 'F32', shape: [2], data: new Int32Array(2) } }, /needs data as Float32Array, got Int32Array/],
    ['bad dtype', { w: { dtype: 'Q8' as SafeDType, shape: [2], data: new Float32Array(2) } }, /unknown dtype/],
    ['negative dim', { w: { dtype: 'F32', shape: [-1], data: new Float32Array(0) } }, /non-negative integers/],
    ['bool not 0/1', { w: { dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 2]) } }, /BOOL data must be 0 or 1, got 2/],
    ['reserved', { __metadata__: { dtype: 'F32', shape: [], data: new Float32Array(1) } }, /reserved/],
  ];
  for (const [label, tensors, pattern] of bad) {
    assert.throws(() => writeSafetensors(file, tensors), (e: unknown) => e instanceof SafetensorsError
      && pattern.test(e.message) && e.message.includes(file), label);
    assert.ok(fs.readFileSync(file).equals(before), `${label}: old file intact`);
    assert.deepEqual(listing(), ['ckpt.safetensors'], `${label}: no temp files left`);
  }

  // A failure in the middle of writing data (after the header and the first tensor reached the temp file):
  // the second tensor's data getter throws on its second access (the first access is validation).
  let reads = 0;
  const treacherous = {
    dtype: 'F32' as const, shape: [4],
    get data(): Float32Array {
      if (++reads > 1) throw new Error('simulated I/O failure');
      return new Float32Array(4);
    },
  };
  assert.throws(() => writeSafetensors(file, {
    a: { dtype: 'F32', shape: [1000], data: new Float32Array(1000).fill(7) },
    b: treacherous,
  }), (e: unknown) => e instanceof SafetensorsError && /simulated I\/O failure/.test(e.message) && e.tensor === 'b');
  assert.equal(reads, 2, 'failure happened during the data phase');
  assert.ok(fs.readFileSync(file).equals(before), 'old file intact after mid-write failure');
  assert.deepEqual(listing(), ['ckpt.safetensors'], 'temp file removed after mid-write failure');

  // Writing into a directory that does not exist fails cleanly.
  assert.throws(() => writeSafetensors(path.join(dir, 'nope', 'x.safetensors'), {}), SafetensorsError);

  // A successful overwrite replaces the content.
  writeSafetensors(file, { w: { dtype: 'F32', shape: [1], data: new Float32Array([9]) } });
  assert.deepEqual([...readSafetensors(file).float32('w')], [9]);
  assert.deepEqual(readSafetensors(file).metadata, {});
  assert.deepEqual(listing(), ['ckpt.safetensors']);
  fs.rmSync(dir, { recursive: true });
});

// ---------------------------------------------------------------------------------------------------------------
// Half-precision conversions

/** Independent f16 decoder from the IEEE definition. */
function f16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

test('f16 <-> f32 conversions are bit-exact on edge values', () => {
  const cases: [number, number][] = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800],
    [65504, 0x7bff], [65519.99, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00], [-1e6, 0xfc00],
    [Infinity, 0x7c00], [-Infinity, 0xfc00],
    [2 ** -24, 0x0001], [2 ** -25, 0x0000], [-(2 ** -25), 0x8000], [1.5 * 2 ** -25, 0x0001], [3 * 2 ** -25, 0x0002],
    [2 ** -26, 0x0000], [1e-30, 0x0000],
    [2 ** -14, 0x0400], [2 ** -14 - 2 ** -24, 0x03ff], [2 ** -14 - 2 ** -25, 0x0400],
    [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [1 + 2 ** -11 + 2 ** -20, 0x3c01],
    [1 / 3, 0x3555], [0.1, 0x2e66], [-65504, 0xfbff],
  ];
  for (const [x, h] of cases) {
    assert.equal(f32ToF16(x), h, `f32ToF16(${x}) = 0x${f32ToF16(x).toString(16)}, want 0x${h.toString(16)}`);
  }
  const nan = f32ToF16(NaN);
  assert.equal(nan & 0x7c00, 0x7c00);
  assert.notEqual(nan & 0x3ff, 0);
  // NaN whose payload lives only in low float32 mantissa bits must not collapse to Inf.
  const nanBits = new Float32Array(new Uint32Array([0x7f800001, 0xff800100]).buffer);
  for (const h of float32ArrayToHalfBits(nanBits, 'F16')) assert.ok(Number.isNaN(f16Value(h)), `0x${h.toString(16)}`);

  assert.ok(Object.is(f16ToF32(0x8000), -0));
  assert.equal(f16ToF32(0x0001), 2 ** -24);
  assert.equal(f16ToF32(0x03ff), 1023 * 2 ** -24);
  assert.equal(f16ToF32(0x7bff), 65504);
  assert.equal(f16ToF32(0x7c00), Infinity);
  assert.equal(f16ToF32(0xfc00), -Infinity);
  assert.ok(Number.isNaN(f16ToF32(0x7e00)));
  assert.ok(Number.isNaN(f16ToF32(0xfd01)));

  // Exhaustive: decoding matches the IEEE definition and re-encoding returns the same bits.
  const all = new Uint16Array(65536).map((_, i) => i);
  const decoded = halfBitsToFloat32Array(all, 'F16');
  for (let h = 0; h < 65536; h++) {
    const want = f16Value(h);
    if (Number.isNaN(want)) { assert.ok(Number.isNaN(decoded[h]!)); continue; }
    if (!Object.is(decoded[h], want)) assert.fail(`f16 0x${h.toString(16)}: ${decoded[h]} != ${want}`);
    if (f32ToF16(want) !== h) assert.fail(`re-encode 0x${h.toString(16)} -> 0x${f32ToF16(want).toString(16)}`);
  }

  // Rounding oracle: exact midpoints between neighbouring finite f16 values round to the even one, and nudges
  // either side round to the nearer one.
  for (let h = 0; h < 0x7bff; h += 7) {
    const lo = f16Value(h);
    const hi = f16Value(h + 1);
    const mid = (lo + hi) / 2; // exact in float32 (f16 has 11 significant bits)
    const even = h % 2 === 0 ? h : h + 1;
    assert.equal(f32ToF16(mid), even, `midpoint after 0x${h.toString(16)}`);
    assert.equal(f32ToF16(-mid), even | 0x8000);
    const step = (hi - lo) / 64;
    assert.equal(f32ToF16(mid - step), h);
    assert.equal(f32ToF16(mid + step), h + 1);
  }
});

test('bf16 <-> f32 conversions are bit-exact on edge values', () => {
  const cases: [number, number][] = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3f80], [-2, 0xc000],
    [1 + 2 ** -8, 0x3f80], [1 + 3 * 2 ** -8, 0x3f82], [1 + 2 ** -8 + 2 ** -20, 0x3f81], [1 + 2 ** -9, 0x3f80],
    [3.4028234663852886e38, 0x7f80], [3.3895313892515355e38, 0x7f7f], [Infinity, 0x7f80], [-Infinity, 0xff80],
    [2 ** -133, 0x0001], [2 ** -126, 0x0080], [1e-45, 0x0000], [0.1, 0x3dcd], [1 / 3, 0x3eab],
  ];
  for (const [x, h] of cases) {
    assert.equal(f32ToBf16(x), h, `f32ToBf16(${x}) = 0x${f32ToBf16(x).toString(16)}, want 0x${h.toString(16)}`);
  }
  const nanBits = new Float32Array(new Uint32Array([0x7fc00000, 0x7f800001, 0xff80ffff]).buffer);
  for (const h of float32ArrayToHalfBits(nanBits, 'BF16')) {
    assert.equal(h & 0x7f80, 0x7f80);
    assert.notEqual(h & 0x7f, 0, `NaN stays NaN: 0x${h.toString(16)}`);
  }
  assert.equal(bf16ToF32(0x3f80), 1);
  assert.ok(Object.is(bf16ToF32(0x8000), -0));
  assert.equal(bf16ToF32(0x0001), 2 ** -133);
  assert.equal(bf16ToF32(0xff80), -Infinity);
  assert.ok(Number.isNaN(bf16ToF32(0x7fc1)));

  // Exhaustive: every bf16 value decodes to a float whose top 16 bits are the pattern, and re-encodes exactly.
  const all = new Uint16Array(65536).map((_, i) => i);
  const decoded = halfBitsToFloat32Array(all, 'BF16');
  const bits = new Uint32Array(decoded.buffer);
  for (let h = 0; h < 65536; h++) {
    if (bits[h] !== h * 65536) assert.fail(`bf16 0x${h.toString(16)} decoded to bits 0x${bits[h]!.toString(16)}`);
    if (Number.isNaN(decoded[h]!)) continue;
    if (f32ToBf16(decoded[h]!) !== h) assert.fail(`re-encode 0x${h.toString(16)}`);
  }
});
