import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeError, exitCodeOf, FlamingoError, InternalError, UsageError } from '../src/errors.ts';
import { SafetensorsError } from '../src/io/safetensors.ts';
import { main } from '../src/cli/main.ts';
import { capture } from './eval-helpers.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'flamingo.mjs');

test('FlamingoError: name from the subclass, hint, exit code 1 for data and 2 for usage', () => {
  class ExampleDataError extends FlamingoError {}
  const d = new ExampleDataError('weights.bin: truncated', { hint: 'download it again' });
  assert.equal(d.name, 'ExampleDataError');
  assert.equal(d.exitCode, 1);
  assert.equal(describeError(d), 'weights.bin: truncated (hint: download it again)');
  const u = new UsageError('--top-k must be an integer');
  assert.equal(u.name, 'UsageError');
  assert.equal(exitCodeOf(u), 2);
  const s = new SafetensorsError('w.safetensors', 'header too long');
  assert.ok(s instanceof FlamingoError);
  assert.equal(s.name, 'SafetensorsError');
  assert.equal(exitCodeOf(new TypeError('x')), 1);
  assert.match(describeError(new TypeError('bad thing\nmore')), /^TypeError: bad thing$/);
  const enoent = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT', syscall: 'open', path: '/x/y' });
  assert.equal(describeError(enoent), 'cannot open /x/y: no such file or directory');
});

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('every error class in src/ extends FlamingoError (directly or through another), and no two share a name', () => {
  const parent = new Map<string, { base: string; file: string }[]>();
  for (const f of sources(join(ROOT, 'src'))) {
    for (const m of readFileSync(f, 'utf8').matchAll(/class (\w+) extends (\w+)/g)) {
      if (!m[1]!.endsWith('Error')) continue;
      const list = parent.get(m[1]!) ?? [];
      list.push({ base: m[2]!, file: relative(ROOT, f) });
      parent.set(m[1]!, list);
    }
  }
  assert.ok(parent.size >= 30, `found only ${parent.size} error classes`);
  for (const [name, defs] of parent) {
    assert.equal(defs.length, 1, `${name} is defined more than once: ${defs.map((d) => d.file).join(', ')}`);
    let cur = name;
    const seen = new Set<string>();
    while (cur !== 'FlamingoError') {
      assert.ok(!seen.has(cur), `cycle at ${cur}`);
      seen.add(cur);
      const d = parent.get(cur);
      assert.ok(d, `${name} (${defs[0]!.file}) does not extend FlamingoError (chain ends at ${cur})`);
      cur = d[0]!.base;
    }
  }
});

test('src/ throws no plain Error: every error it raises on purpose is a FlamingoError subclass', () => {
  const plain = sources(join(ROOT, 'src')).flatMap((f) =>
    readFileSync(f, 'utf8').split('\n').flatMap((line, i) => (/\bnew Error\(/.test(line) ? [`${relative(ROOT, f)}:${i + 1}`] : [])));
  assert.deepEqual(plain, []);
});

test('InternalError names the place and says it is a bug; it is not a usage error', () => {
  const e = new InternalError('serve/metrics inc', 'metric x is not a registered counter');
  assert.ok(e instanceof FlamingoError);
  assert.equal(e.name, 'InternalError');
  assert.equal(e.exitCode, 1);
  assert.match(e.message, /^internal error in serve\/metrics inc: metric x is not a registered counter \(a bug in flamingo-ts/);
});

function cli(args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8', cwd: tmp, env: { ...process.env, FLAMINGO_DEBUG: '', ...env }, timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const tmp = mkdtempSync(join(tmpdir(), 'flamingo-errors-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

/** One line on stderr, no stack frame. */
function oneLine(stderr: string): void {
  assert.equal(stderr.trimEnd().split('\n').length, 1, stderr);
  assert.doesNotMatch(stderr, /\n\s+at /);
}

test('CLI: a missing --model directory is one line naming it, exit 1; --debug and FLAMINGO_DEBUG=1 add the stack', () => {
  for (const dir of ['/nonexistent-model-dir', 'relative-missing-dir']) {
    const r = cli(['generate', '--model', dir, '--prompt', 'hi']);
    assert.equal(r.code, 1, r.stderr);
    oneLine(r.stderr);
    assert.match(r.stderr, new RegExp(`^flamingo generate: model directory ${dir} (\\(resolved to .*\\) )?does not exist`));
    assert.doesNotMatch(r.stderr, /tokenizer\.json/);
  }
  for (const [args, env] of [[['--debug', 'generate', '--model', '/nonexistent', '--prompt', 'hi'], {}], [['generate', '--model', '/nonexistent', '--prompt', 'hi'], { FLAMINGO_DEBUG: '1' }]] as const) {
    const r = cli([...args], env);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /\n\s+at /, 'stack trace expected');
  }
});

test('CLI: usage errors exit 2 with one line for every command', async () => {
  const cases: string[][] = [
    ['generate', '--prompt', 'hi'],
    ['generate', '--model', 'm', '--prompt', 'hi', '--bogus'],
    ['generate', '--model', 'm', '--prompt', 'hi', '--num-beams', '2.5'],
    ['eval', '--task', 'coco'],
    ['score', '--task', 'nope'],
    ['train', '--out', 'x'],
    ['verify', '--bogus', 'dir'],
    ['demo', '--episodes=-1'],
    ['convert', '--out', 'x'],
    ['convert', '--open-clip', 'a', '--out', 'x'],
    ['export', '--out', 'x'],
    ['export', 'dir', '--out', 'x', '--bogus'],
  ];
  for (const [i, args] of cases.entries()) {
    // the first through the installed bin, the rest in-process through the same entry point (a spawn costs seconds)
    const r = i === 0 ? cli(args) : await capture(main, args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    oneLine(r.stderr);
    assert.match(r.stderr, new RegExp(`^flamingo ${args[0]}: `));
  }
  const help = await capture(main, ['verify', '--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /usage: flamingo verify/);
});

test('CLI: bad files exit 1 with one line naming the file', async () => {
  const t = cli(['train', 'no-such-config.json', '--out', 'run']);
  assert.equal(t.code, 1, t.stderr);
  oneLine(t.stderr);
  assert.match(t.stderr, /no-such-config\.json: no such file/);
  const v = await capture(main, ['verify', 'no-such-fixtures']);
  assert.equal(v.code, 1, v.stderr);
  oneLine(v.stderr);
  assert.match(v.stderr, /no-such-fixtures/);
});
