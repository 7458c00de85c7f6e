/**
 * The CLI under careless or hostile input (issue 19, items 6, 7 and 9): implausible model configs, generation
 * options out of range, numeric flags that are not counts, and prompts from files or standard input. Every case
 * runs `flamingo` in a child process and must end in one clear line with exit 1 (bad data) or 2 (bad usage), or in
 * the right output, with a peak RSS (from the child's own resource usage) well under 512 MB.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, runCli, type ChildRun } from './helpers/child-usage.ts';

const BUNDLED = join(REPO, 'models/flamingo-fmnist');
const tmp = mkdtempSync(join(tmpdir(), 'hostile-cli-'));

/** A copy of the bundled model with its config.json edited. */
function modelWith(name: string, edit: (cfg: Record<string, Record<string, unknown>>) => void): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  for (const f of ['weights.safetensors', 'tokenizer.json', 'meta.json']) copyFileSync(join(BUNDLED, f), join(dir, f));
  const cfg = JSON.parse(readFileSync(join(BUNDLED, 'config.json'), 'utf8'));
  edit(cfg);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  return dir;
}

/** Exit code, one line on stderr matching `re`, nothing on stdout, bounded memory; the run is live-bounded too. */
function expectError(r: ChildRun, code: 1 | 2, re: RegExp, what: string): void {
  const lines = r.stderr.trim().split('\n');
  assert.equal(r.code, code, `${what}: exit ${r.code}, stderr: ${r.stderr}`);
  assert.equal(lines.length, 1, `${what}: one line, got:\n${r.stderr}`);
  assert.match(lines[0]!, re, what);
  assert.doesNotMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
  assert.equal(r.stdout, '', what);
  bounded(r, what);
}

function bounded(r: ChildRun, what: string): void {
  assert.ok(r.peakRssMiB < 512, `${what}: peak RSS ${r.peakRssMiB.toFixed(0)} MiB`);
  // CPU time, not wall time: the machine may be shared. A liveness bound (the issue measured minutes, and start-up
  // alone is ~1 s); the 2 s target is measured by bench. A hang is killed by runNode's timeout.
  assert.ok(r.cpuMs < 10_000, `${what}: ${r.cpuMs.toFixed(0)} ms of CPU`);
}

test('implausible model configs: one line, exit 1, before the model is built', () => {
  const cases: [string, (c: Record<string, Record<string, unknown>>) => void, RegExp][] = [
    ['layers', (c) => { c.lm!.num_layers = 1e6; }, /more than this machine's .*lm\.num_layers 1000000/],
    ['mlp', (c) => { c.lm!.intermediate_size = 2 ** 23; }, /lm\.intermediate_size 8388608/],
    ['hidden', (c) => { c.lm!.hidden_size = 1e9; c.xattn!.dim = 1e9; }, /over the 2147483647 a single tensor can hold .*lm\.hidden_size 1000000000/],
    ['wide', (c) => { c.lm!.intermediate_size = 65536; }, new RegExp(`holds only ${statSync(join(BUNDLED, 'weights.safetensors')).size} bytes: config and weights do not match`)],
    ['eos', (c) => { c.flamingo!.eos_token_id = 99999; }, /flamingo\.eos_token_id must be a token id in \[0, 1024\), got 99999/],
  ];
  for (const [name, edit, re] of cases) {
    const dir = modelWith(name, edit);
    expectError(runCli(['generate', '--model', dir, '--prompt', 'hi']), 1, re, name);
  }
});

test('generation options and numeric flags: named in one line, exit 2', () => {
  const gen = (...a: string[]) => runCli(['generate', '--model', BUNDLED, '--prompt', 'Output:', ...a]);
  const cases: [string[], RegExp][] = [
    [['--num-beams', '1e6'], /--num-beams must be a positive integer, got '1e6'/],
    [['--num-beams', '1000000'], /numBeams must be an integer in \[1, 64\], got 1000000/],
    [['--num-beams', '2.5'], /--num-beams must be a positive integer, got '2\.5'/],
    [['--max-new-tokens', '2.5'], /--max-new-tokens must be a positive integer, got '2\.5'/],
    [['--max-new-tokens', '100000'], /exceeds the model's 512 positions/],
    [['--sample', '--temperature=-1'], /temperature must be a finite number ≥ 0, got -1/],
    [['--sample', '--temperature', '-1'], /Option '--temperature' argument is ambiguous\. Did you forget/],
    [['--sample', '--top-p', '5'], /topP must be a number in \(0, 1\], got 5/],
    [['--sample', '--top-k=-3'], /--top-k must be an integer ≥ 0, got '-3'/],
  ];
  for (const [args, re] of cases) {
    const r = gen(...args);
    // an over-long generation is bad data for this model (exit 1); the rest is bad usage
    expectError(r, /positions/.test(re.source) ? 1 : 2, re, args.join(' '));
  }
  expectError(runCli(['demo', '--episodes=-1']), 2, /--episodes must be a positive integer, got '-1'/, 'demo --episodes=-1');
  expectError(runCli(['demo', '--names', 'training']), 2, /--names must be one of generator, unseen, .*got "training"/, 'demo --names training');
  expectError(runCli(['verify', '--bogus', 'x']), 2, /bogus/, 'verify --bogus');
  const help = runCli(['verify', '--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /usage: flamingo verify/);
});

test('--prompt-file PATH and - (stdin): the same answer as --prompt; too long, too big or not text is one line', () => {
  const prompt = 'Output:';
  const base = ['generate', '--model', BUNDLED, '--max-new-tokens', '4', '--num-beams', '1', '--json'];
  const direct = runCli([...base, '--prompt', prompt]);
  assert.equal(direct.code, 0, direct.stderr);
  const file = join(tmp, 'prompt.txt');
  writeFileSync(file, prompt);
  const fromFile = runCli([...base, '--prompt-file', file]);
  assert.equal(fromFile.code, 0, fromFile.stderr);
  assert.equal(fromFile.stdout, direct.stdout);
  const fromStdin = runCli([...base, '--prompt-file', '-'], { input: prompt });
  assert.equal(fromStdin.code, 0, fromStdin.stderr);
  assert.equal(fromStdin.stdout, direct.stdout);
  bounded(fromStdin, 'stdin');

  // Longer than any shell argument: read fine, then refused for the model's context, naming the sizes.
  const long = join(tmp, 'long.txt');
  writeFileSync(long, 'Output: a cat. '.repeat(20_000)); // 300 KB
  expectError(runCli([...base, '--prompt-file', long]), 1, /prompt of \d+ tokens \+ 4 new tokens exceeds the model's 512 positions/, 'long prompt');
  const huge = join(tmp, 'huge.txt');
  writeFileSync(huge, Buffer.alloc(5 << 20, 0x61));
  expectError(runCli([...base, '--prompt-file', huge]), 1, /prompt file .*huge\.txt is 5242880 bytes, larger than 4194304/, 'huge file');
  expectError(runCli([...base, '--prompt-file', '-'], { input: Buffer.alloc(5 << 20, 0x61) }), 1, /prompt file \(standard input\) is larger than 4194304 bytes/, 'huge stdin');
  const binary = join(tmp, 'binary.txt');
  writeFileSync(binary, Buffer.from([0x4f, 0xff, 0xfe, 0x00]));
  expectError(runCli([...base, '--prompt-file', binary]), 1, /prompt file .*binary\.txt is not valid UTF-8 text/, 'binary');
  expectError(runCli([...base, '--prompt-file', join(tmp, 'missing.txt')]), 1, /cannot open prompt file .*missing\.txt: ENOENT/, 'missing');
  expectError(runCli([...base, '--prompt', 'x', '--prompt-file', file]), 2, /either --prompt or --prompt-file, not both/, 'both');
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
