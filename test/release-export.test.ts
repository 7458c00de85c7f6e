/**
 * Releases in and out: the torch.save writer (read back here and, when this machine has PyTorch, by
 * torch.load), `flamingo export` writing OpenFlamingo's three sources, loading a release through
 * loadPretrained / pipeline / generate / eval from its three files, and the loader's refusals of
 * mixed-up files before anything is computed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dequantize } from '../src/engine/quant.ts';
import { writeTorchStateDict, TorchSaveError } from '../src/io/torch-save.ts';
import { readTorchCheckpoint } from '../src/io/torch-pickle.ts';
import { exportRelease } from '../src/io/release-export.ts';
import { loadRelease } from '../src/io/release.ts';
import { ReleaseLoadError } from '../src/io/release-files.ts';
import { loadFlamingo } from '../src/io/checkpoint.ts';
import { quantizeFrozen, storedDType } from '../src/nn/quantize.ts';
import { loadPretrained, PretrainedError } from '../src/pretrained/index.ts';
import { OPEN_CLIP_EVAL_PREPROCESS } from '../src/model/preprocess-config.ts';
import { ConfigError } from '../src/model/config.ts';
import { pipeline } from '../src/pipeline.ts';
import { main } from '../src/cli/main.ts';
import type { Flamingo } from '../src/model/flamingo.ts';
import { fixedInputLogits } from './helpers/tiny-flamingo.ts';
import { capture, FIXTURES, saveModelDir, tinyModel, tinyTokenizer } from './eval-helpers.ts';

const REAL = new URL('./fixtures/shared/parity-real/', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'flamingo-release-export-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** /usr/bin/python3 with torch importable, else null (a fresh CI machine has none: those tests skip). */
const PYTHON = ((): string | null => {
  for (const py of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8', timeout: 60_000 });
    if (r.status === 0) return py;
  }
  return null;
})();
const noTorch = PYTHON === null ? 'python3 with torch is not installed' : false;

type Summary = Record<string, [number[], number, number | null]>;

/** torch.load each file (one Python process: importing torch is slow); per file, name → [shape, float64 sum, first value]. */
function torchSummaries(files: string[]): Summary[] {
  const code = `import json, sys, torch
out = []
for f in sys.argv[1:]:
    d = torch.load(f, map_location="cpu")
    assert isinstance(d, dict), type(d)
    out.append({k: [list(v.shape), float(v.double().sum()), (float(v.flatten()[0]) if v.numel() else None)] for k, v in d.items()})
print(json.dumps(out))`;
  const r = spawnSync(PYTHON!, ['-c', code, ...files], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, OMP_NUM_THREADS: '1' } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Summary[];
}

const sum = (a: ArrayLike<number>): number => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]!; return s; };

describe('torch.save writer', () => {
  const a = Float32Array.from({ length: 12 }, (_, i) => (i - 5) * 0.37);
  const tensors = {
    'w.weight': { shape: [3, 4], data: a },
    chunked: { shape: [5], data: (emit: (c: Float32Array) => void) => { emit(new Float32Array([1, 2])); emit(new Float32Array([3, 4, 5])); } },
    scalar: { shape: [], data: new Float32Array([-2.5]) },
    empty: { shape: [0, 3], data: new Float32Array(0) },
  };
  const check = (file: string): void => {
    const got = readTorchCheckpoint(file);
    assert.deepEqual([...got.keys()], Object.keys(tensors));
    assert.deepEqual(got.get('w.weight')!.shape, [3, 4]);
    assert.deepEqual([...(got.get('w.weight')!.data as Float32Array)], [...a]);
    assert.deepEqual([...(got.get('chunked')!.data as Float32Array)], [1, 2, 3, 4, 5]);
    assert.deepEqual(got.get('scalar')!.shape, []);
    assert.deepEqual([...(got.get('scalar')!.data as Float32Array)], [-2.5]);
    assert.deepEqual(got.get('empty')!.shape, [0, 3]);
  };

  test('round trip through the project reader, with and without zip64 records', () => {
    writeTorchStateDict(join(tmp, 'a.pt'), tensors);
    check(join(tmp, 'a.pt'));
    writeTorchStateDict(join(tmp, 'a64.pt'), tensors, { zip64Above: 1 });
    check(join(tmp, 'a64.pt'));
    assert.ok(readFileSync(join(tmp, 'a64.pt')).includes(Buffer.from([0x50, 0x4b, 0x06, 0x06])), 'zip64 end record written');
  });

  test('bad tensors are refused naming them, and no file is left behind', () => {
    assert.throws(() => writeTorchStateDict(join(tmp, 'bad.pt'), { x: { shape: [2, 2], data: new Float32Array(3) } }), (e: unknown) => e instanceof TorchSaveError && /'x' has 3 values for shape \[2, 2\]/.test((e as Error).message));
    assert.throws(() => writeTorchStateDict(join(tmp, 'bad.pt'), { y: { shape: [4], data: (emit) => emit(new Float32Array(3)) } }), /entry archive\/data\/0 produced 12 bytes, 16 declared/);
    assert.equal(existsSync(join(tmp, 'bad.pt')) || existsSync(join(tmp, 'bad.pt.tmp')), false);
  });

  test('torch.load reads the file: names, shapes and values (zip64 too)', { skip: noTorch }, () => {
    for (const s of torchSummaries(['a.pt', 'a64.pt'].map((f) => join(tmp, f)))) {
      assert.deepEqual(Object.keys(s), Object.keys(tensors));
      assert.deepEqual(s['w.weight']![0], [3, 4]);
      assert.ok(Math.abs(s['w.weight']![1] - sum(a)) < 1e-5);
      assert.equal(s['w.weight']![2], a[0]);
      assert.deepEqual(s.chunked, [[5], 15, 1]);
      assert.deepEqual(s.scalar, [[], -2.5, -2.5]);
      assert.deepEqual(s.empty![0], [0, 3]);
    }
  });
});

const logitsOf = fixedInputLogits;

describe('export → release → this project and PyTorch', () => {
  let modelDir = '';
  let exported = '';
  let model: Flamingo;
  before(async () => {
    const tok = tinyTokenizer();
    model = tinyModel(tok, 9);
    modelDir = saveModelDir(join(tmp, 'model'), tok, model);
    exported = join(tmp, 'exported');
    const r = await capture((a) => main(a), ['export', modelDir, '--out', exported]);
    assert.equal(r.code, 0, r.stderr);
  });

  test('flamingo export writes OpenFlamingo\'s file layout with torch.save files', () => {
    assert.deepEqual(readdirSync(exported).sort(), ['clip', 'lm', 'openflamingo']);
    for (const f of ['clip/open_clip_pytorch_model.bin', 'clip/open_clip_config.json', 'lm/config.json', 'lm/pytorch_model.bin', 'lm/tokenizer.json', 'lm/tokenizer_config.json', 'openflamingo/checkpoint.pt']) {
      assert.ok(existsSync(join(exported, f)), f);
    }
    const ck = readTorchCheckpoint(join(exported, 'openflamingo', 'checkpoint.pt'));
    assert.ok(ck.has('lang_encoder.model.layers.0.gated_cross_attn_layer.attn_gate'), 'gated blocks under FlamingoLayer names');
    assert.ok(ck.has('perceiver.latents') && ck.has('lang_encoder.model.embed_tokens.weight'));
    const tc = JSON.parse(readFileSync(join(exported, 'lm', 'tokenizer_config.json'), 'utf8')) as { pad_token: string };
    assert.equal(tc.pad_token, '<pad>', 'the model\'s pad token by name, so OpenFlamingo adds no <PAD>');
  });

  test('loadPretrained reads the exported directory and the three files; logits identical to the model directory', async () => {
    const want = logitsOf(model);
    const fromDir = loadPretrained(exported);
    assert.equal(fromDir.source, 'openflamingo-release');
    assert.deepEqual(logitsOf(fromDir.model), want);
    assert.deepEqual(fromDir.processor.config.preprocess, OPEN_CLIP_EVAL_PREPROCESS, 'a release is preprocessed as open_clip does');
    const files = { openClip: join(exported, 'clip', 'open_clip_pytorch_model.bin'), lm: join(exported, 'lm'), checkpoint: join(exported, 'openflamingo', 'checkpoint.pt') };
    const fromFiles = loadPretrained(files);
    assert.deepEqual(logitsOf(fromFiles.model), want);
    const orig = loadPretrained(modelDir);
    const text = 'Output:a dog on grass';
    assert.deepEqual(fromFiles.tokenizer.encode(text), orig.tokenizer.encode(text));
    assert.deepEqual([fromFiles.tokenizer.imageTokenId, fromFiles.tokenizer.eocTokenId, fromFiles.tokenizer.padTokenId], [orig.tokenizer.imageTokenId, orig.tokenizer.eocTokenId, orig.tokenizer.padTokenId]);
    const p = await pipeline(files, { dtype: 'int8' });
    assert.ok(p.model.lang_encoder.lm.embedWeight.dtype === 'float32');
  });

  test('flamingo convert --dtype int8 writes a model directory that reloads packed, close to the fp32 model', async () => {
    const out = join(tmp, 'converted-int8');
    const r = await capture((x) => main(['convert', ...x]), ['--open-clip', join(exported, 'clip', 'open_clip_pytorch_model.bin'), '--lm', join(exported, 'lm'),
      '--checkpoint', join(exported, 'openflamingo', 'checkpoint.pt'), '--out', out, '--dtype', 'int8']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /weights int8/);
    const again = loadPretrained(out);
    assert.equal(storedDType(again.model), 'int8');
    const want = logitsOf(model);
    const got = logitsOf(again.model);
    let dot = 0; let na = 0; let nb = 0;
    for (let i = 0; i < want.length; i++) { dot += want[i]! * got[i]!; na += want[i]! ** 2; nb += got[i]! ** 2; }
    assert.ok(dot / Math.sqrt(na * nb) > 0.99, `logits cosine ${dot / Math.sqrt(na * nb)}`);
    assert.notDeepEqual(got, want, 'int8 weights are not the fp32 ones');
  });

  test('a packed model exports its dequantised weights', () => {
    const m = loadFlamingo(modelDir);
    m.setTrainingMode('none');
    quantizeFrozen(m, 'int8');
    const out = join(tmp, 'exported-int8');
    exportRelease(m, out, { tokenizerDir: modelDir });
    const lm = readTorchCheckpoint(join(out, 'lm', 'pytorch_model.bin'));
    const q = m.namedParameters().find(([n]) => n === 'lang_encoder.model.layers.0.mlp.up_proj.weight')![1];
    assert.ok(q.packed);
    assert.deepEqual([...(lm.get('model.layers.0.mlp.up_proj.weight')!.data as Float32Array)], [...dequantize(q.packed!)]);
  });

  test('flamingo eval and generate take the three files: same results as the model directory', async () => {
    const args = ['--task', 'coco', '--data', join(FIXTURES, 'coco'), '--shots', '0,2', '--seeds', '1', '--max-items', '3', '--batch-size', '2', '--max-new-tokens', '4', '--quiet', '--json'];
    const a = await capture((x) => main(['eval', ...x]), ['--model', modelDir, ...args, '--out', join(tmp, 'eval-a')]);
    assert.equal(a.code, 0, a.stderr);
    const b = await capture((x) => main(['eval', ...x]), ['--open-clip', join(exported, 'clip', 'open_clip_pytorch_model.bin'), '--lm', join(exported, 'lm'),
      '--checkpoint', join(exported, 'openflamingo', 'checkpoint.pt'), ...args, '--out', join(tmp, 'eval-b')]);
    assert.equal(b.code, 0, b.stderr);
    // the results files each run wrote (its summary names them)
    const results = (stdout: string): string[] => (JSON.parse(stdout) as { results: { trials: { resultsFile: string }[] }[] }).results
      .flatMap((r) => r.trials.map((t) => readFileSync(t.resultsFile, 'utf8')));
    assert.equal(results(a.stdout).length, 2);
    assert.deepEqual(results(b.stdout), results(a.stdout), 'RGB images: both preprocessings agree, so the answers do');
    const c = await capture((x) => main(['eval', ...x]), ['--model', modelDir, '--lm', join(exported, 'lm'), ...args, '--out', join(tmp, 'eval-c')]);
    assert.equal(c.code, 2);
    assert.match(c.stderr, /--open-clip, --lm and --checkpoint go together/);
    const g = await capture((x) => main(['generate', ...x]), ['--open-clip', join(exported, 'clip', 'open_clip_pytorch_model.bin'), '--lm', join(exported, 'lm'),
      '--checkpoint', join(exported, 'openflamingo', 'checkpoint.pt'), '--prompt', 'Output:a', '--max-new-tokens', '3', '--num-beams', '1', '--json', '--dtype', 'bf16']);
    assert.equal(g.code, 0, g.stderr);
    assert.match(g.stderr, /weights bf16/);
  });

  test('PyTorch loads the three exported files: every name, shape and value', { skip: noTorch }, () => {
    const params = new Map(model.namedParameters());
    const files = [join(exported, 'clip', 'open_clip_pytorch_model.bin'), join(exported, 'lm', 'pytorch_model.bin'), join(exported, 'openflamingo', 'checkpoint.pt')];
    const summaries = torchSummaries(files);
    const checkFile = (file: string, toModelName: (n: string) => string): void => {
      const s = summaries[files.indexOf(file)]!;
      assert.ok(Object.keys(s).length > 0, file);
      for (const [name, [shape, total, first]] of Object.entries(s)) {
        const p = params.get(toModelName(name));
        assert.ok(p, `${file}: ${name} is a model parameter`);
        assert.deepEqual(shape, [...p.shape], name);
        assert.ok(Math.abs(total - sum(p.f32)) <= 1e-6 * (1 + Math.abs(total)), `${name}: sum ${total} vs ${sum(p.f32)}`);
        assert.equal(first, p.f32[0], name);
      }
    };
    checkFile(join(exported, 'clip', 'open_clip_pytorch_model.bin'), (n) => `vision_encoder.${n.slice('visual.'.length)}`);
    checkFile(join(exported, 'lm', 'pytorch_model.bin'), (n) => `lang_encoder.${n}`);
    checkFile(join(exported, 'openflamingo', 'checkpoint.pt'), (n) => n.replace(/^lang_encoder\.model\.layers\.(\d+)\.gated_cross_attn_layer\./, 'lang_encoder.gated_cross_attn_layers.$1.'));
  });
});

describe('mixed-up release files: one error naming the file, before any compute', () => {
  const caseDir = (name: string): string => {
    const d = join(tmp, `case-${name}-${Math.random().toString(36).slice(2, 8)}`);
    cpSync(join(REAL, name), d, { recursive: true });
    return d;
  };
  const filesOf = (d: string): { openClip: string; lmDir: string; checkpoint: string } => {
    const c = JSON.parse(readFileSync(join(d, 'case.json'), 'utf8')) as { files: { open_clip: { weights: string }; openflamingo_checkpoint: string } };
    return { openClip: join(d, c.files.open_clip.weights), lmDir: join(d, 'lm'), checkpoint: join(d, c.files.openflamingo_checkpoint) };
  };

  test('an open_clip file of another width than the checkpoint\'s resampler', () => {
    const f = filesOf(caseDir('gpt_neox_flamingo_logits'));
    // a ViT of another width: the clip file of another case whose vision width differs, else a re-shaped copy
    const w = (d: string): number => loadRelease(filesOf(join(REAL, d))).config.vision.width;
    const other = ['mosaic_gpt_flamingo_logits', 'mpt_flamingo_logits', 'mosaic_gpt_flamingo_generate', 'mpt_flamingo_generate'].find((d) => w(d) !== w('gpt_neox_flamingo_logits'));
    if (!other) return; // every fixture has the same width: covered by the reshaped case below
    f.openClip = filesOf(join(REAL, other)).openClip;
    assert.throws(() => loadRelease(f), (e: unknown) => e instanceof ReleaseLoadError && e.message.includes(f.openClip) && /open_clip model of another size/.test(e.message));
  });

  test('an LM config.json describing a far bigger model than its files: refused by the size check before allocating', () => {
    const d = caseDir('gpt_neox_flamingo_logits');
    const cfgFile = join(d, 'lm', 'config.json');
    const hf = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, number>;
    hf.intermediate_size = 4_000_000;
    writeFileSync(cfgFile, JSON.stringify(hf));
    const t0 = performance.now();
    assert.throws(() => loadRelease(filesOf(d)), (e: unknown) => e instanceof ConfigError && /config describes at least .* parameters but the release's weight files hold only/.test((e as Error).message) && (e as Error).message.includes(join(d, 'lm')));
    assert.ok(performance.now() - t0 < 5000);
  });

  test('loadPretrained with a missing release file names it', () => {
    const f = filesOf(join(REAL, 'gpt_neox_flamingo_logits'));
    assert.throws(() => loadPretrained({ openClip: join(tmp, 'nope.bin'), lm: f.lmDir, checkpoint: f.checkpoint }), (e: unknown) => e instanceof PretrainedError && /openClip .*nope\.bin does not exist/.test((e as Error).message));
    assert.throws(() => loadPretrained(REAL), (e: unknown) => e instanceof PretrainedError && /has no config\.json.*has no clip\/open_clip_pytorch_model\.bin/s.test((e as Error).message));
  });

  test('a release without a tokenizer cannot be run, and says so', () => {
    const f = filesOf(join(REAL, 'gpt_neox_flamingo_logits'));
    assert.throws(() => loadPretrained({ openClip: f.openClip, lm: f.lmDir, checkpoint: f.checkpoint }), (e: unknown) => e instanceof ReleaseLoadError && /lm: no tokenizer\.json/.test((e as Error).message));
  });
});
