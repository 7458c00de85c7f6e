/**
 * The package as a user gets it: `npm pack`, installed into a scratch project, imported from plain
 * JavaScript and type-checked from TypeScript; the README's JavaScript and TypeScript examples are
 * extracted and run (or type-checked) there as written. Dependencies come from npm's cache or registry
 * (`--prefer-offline`); the native addon is the one this checkout built (install scripts are skipped
 * to keep the test short; the `install` script itself is what `npm ci` runs here).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { startServer } from '../src/serve/app.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'flamingo-pack-'));
const proj = join(tmp, 'proj');
const pkgDir = join(proj, 'node_modules', 'flamingo-ts');
after(() => rmSync(tmp, { recursive: true, force: true }));

function sh(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 600_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout + r.stderr;
}

function png(file: string, seed: number): void {
  const p = new PNG({ width: 28, height: 28 });
  for (let i = 0; i < p.data.length; i++) p.data[i] = i % 4 === 3 ? 255 : (i * (seed + 5) * 13) % 256;
  writeFileSync(file, PNG.sync.write(p));
}

/** Fenced ```js / ```ts blocks of the README that use the package (or the openai client). */
function readmeExamples(): { lang: 'js' | 'ts'; code: string }[] {
  const md = readFileSync(join(ROOT, 'README.md'), 'utf8');
  return [...md.matchAll(/```(js|ts)\n([^]*?)```/g)]
    .map((m) => ({ lang: m[1] as 'js' | 'ts', code: m[2]! }))
    .filter((b) => /from '(flamingo-ts|openai)'/.test(b.code));
}

before(() => {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  sh(process.execPath, [tsc, '-p', 'tsconfig.build.json'], ROOT); // incremental: quick when dist/ is current
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: ROOT, encoding: 'utf8' });
  const tarball = join(tmp, (JSON.parse(out) as { filename: string }[])[0]!.filename);
  mkdirSync(proj);
  writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'scratch', version: '1.0.0', private: true, type: 'module' }));
  sh('npm', ['install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', tarball], proj);
  const addon = join(ROOT, 'native', 'build', 'Release', 'flamingo_native.node');
  if (existsSync(addon)) {
    mkdirSync(join(pkgDir, 'native', 'build', 'Release'), { recursive: true });
    copyFileSync(addon, join(pkgDir, 'native', 'build', 'Release', 'flamingo_native.node'));
  }
  // the README's client example uses the official openai package (a dev dependency here)
  symlinkSync(join(ROOT, 'node_modules', 'openai'), join(proj, 'node_modules', 'openai'));
  png(join(proj, 'a.png'), 1);
  png(join(proj, 'b.png'), 2);
});

test('the tarball holds the compiled library, its types, the native sources and the bundled model, not the TypeScript sources', () => {
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
  for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/serve/worker.js', 'native/binding.gyp', 'native/src/addon.cc', 'models/flamingo-fmnist/weights.safetensors', 'bin/flamingo.mjs']) {
    assert.ok(existsSync(join(pkgDir, f)), f);
  }
  assert.ok(!existsSync(join(pkgDir, 'src')), 'no src/ in the package');
  assert.ok(!existsSync(join(pkgDir, 'dist', '.tsbuildinfo')));
  // the install script builds the addon (kept when already built and newer than its sources)
  assert.equal(pkg.scripts.install, 'node scripts/build-native.cjs');
  assert.match(readFileSync(join(pkgDir, 'scripts', 'build-native.cjs'), 'utf8'), /'node-gyp', \['rebuild', '--directory', 'native'\]/);
  assert.equal(pkg.exports['.'].import, './dist/index.js');
  assert.ok(!('tsx' in pkg.dependencies), 'tsx is a development dependency only');
});

test('plain JavaScript imports the package, generates with the bundled model, streams and serves', () => {
  writeFileSync(join(proj, 'plain.mjs'), `
import { pipeline, FlamingoProcessor, generate, BatchDecoder, startServer } from 'flamingo-ts';
const flamingo = await pipeline();
const prompt = [{ image: 'a.png' }, 'Output: a dress.<|endofchunk|>', { image: 'b.png' }, 'Output:'];
const whole = await flamingo.generate(prompt, { maxNewTokens: 8 });
let streamed = '';
for await (const piece of flamingo.stream(prompt, { maxNewTokens: 8 })) streamed += piece;
// the compiled server and its worker thread
const server = await startServer({ port: 0 });
const r = await fetch(server.url + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ messages: [{ role: 'user', content: 'The shop sells' }], max_tokens: 4 }) });
const chat = await r.json();
await server.close();
console.log(JSON.stringify({ whole, streamed, status: r.status, usage: chat.usage, kinds: [typeof FlamingoProcessor, typeof generate, typeof BatchDecoder, typeof startServer] }));
`);
  const out = sh(process.execPath, ['plain.mjs'], proj);
  const line = JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!);
  assert.ok(line.whole.length > 0);
  assert.equal(line.streamed, line.whole);
  assert.equal(line.status, 200);
  assert.ok(line.usage.completion_tokens >= 1 && line.usage.completion_tokens <= 4);
  assert.deepEqual(line.kinds, ['function', 'function', 'function', 'function']);
  assert.match(out, /kernels = /, 'the kernel backend is logged');
});

test('the installed flamingo bin runs the compiled CLI', () => {
  const out = sh(join(proj, 'node_modules', '.bin', 'flamingo'), ['--help'], proj);
  assert.match(out, /serve/);
});

test('TypeScript type-checks against the declarations (and catches a wrong type)', () => {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  writeFileSync(join(proj, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true, typeRoots: [join(ROOT, 'node_modules', '@types')], types: ['node'] },
    include: ['*.ts'],
  }));
  writeFileSync(join(proj, 'typed.ts'), `
import { pipeline, type PromptPart, type FlamingoPipeline, type ServeLimits, DEFAULT_LIMITS } from 'flamingo-ts';
const f: FlamingoPipeline = await pipeline();
const parts: PromptPart[] = [{ image: 'a.png' }, 'Output:'];
const text: string = await f.generate(parts, { maxNewTokens: 3 });
const limits: ServeLimits = DEFAULT_LIMITS;
console.log(text, limits.maxQueue);
`);
  readmeExamples().filter((b) => b.lang === 'ts').forEach((b, i) => writeFileSync(join(proj, `readme-${i}.ts`), b.code));
  // one compiler run: the only error must be the deliberate one in wrong.ts
  writeFileSync(join(proj, 'wrong.ts'), "import { pipeline } from 'flamingo-ts';\nconst n: number = await (await pipeline()).generate(['x']);\nconsole.log(n);\n");
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: proj, encoding: 'utf8' });
  rmSync(join(proj, 'wrong.ts'));
  const errors = r.stdout.split('\n').filter((l) => /error TS/.test(l));
  assert.equal(errors.length, 1, r.stdout);
  assert.match(r.stdout, /wrong\.ts.*Type 'string' is not assignable to type 'number'/);
});

test("the README's JavaScript examples run as written", async () => {
  const blocks = readmeExamples().filter((b) => b.lang === 'js');
  assert.ok(blocks.length >= 2, 'library and client examples');
  const server = await startServer({ port: 0 });
  try {
    for (const [i, b] of blocks.entries()) {
      const file = join(proj, `readme-${i}.mjs`);
      writeFileSync(file, b.code);
      // spawnSync would block this process's event loop, which serves the client example
      const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
        import('node:child_process').then(({ spawn }) => {
          const c = spawn(process.execPath, [file], { cwd: proj, env: { ...process.env, FLAMINGO_URL: `${server.url}/v1` } });
          let out = '';
          c.stdout.on('data', (d: Buffer) => { out += d; });
          c.stderr.on('data', (d: Buffer) => { out += d; });
          c.on('close', (code) => resolve({ code, out }));
        });
      });
      assert.equal(r.code, 0, `README example ${i} failed:\n${b.code}\n${r.out}`);
      assert.ok(r.out.replace(/flamingo-ts: kernels = .*\n/, '').trim().length > 0, `example ${i} printed nothing`);
    }
  } finally {
    await server.close();
  }
});
