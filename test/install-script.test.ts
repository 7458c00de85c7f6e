/**
 * The install script (scripts/build-native.cjs): an addon newer than every native source is kept (so
 * `npx flamingo …` in a checkout, which makes npm reinstall the package into its cache, does not rebuild
 * it); a stale or missing one is rebuilt, and a failed build fails the install only under FLAMINGO_REQUIRE_NATIVE=1, and is loud otherwise.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', 'scripts', 'build-native.cjs');

test('install script: keeps an up-to-date addon, rebuilds a stale one, never fails the install', () => {
  const root = mkdtempSync(join(tmpdir(), 'flamingo-install-'));
  try {
    mkdirSync(join(root, 'scripts'));
    copyFileSync(SCRIPT, join(root, 'scripts', 'build-native.cjs'));
    mkdirSync(join(root, 'native', 'src'), { recursive: true });
    mkdirSync(join(root, 'native', 'build', 'Release'), { recursive: true });
    for (const f of ['native/src/kernels.cc', 'native/binding.gyp', 'native/detect.cjs']) writeFileSync(join(root, f), '// source\n');
    const addon = join(root, 'native', 'build', 'Release', 'flamingo_native.node');
    writeFileSync(addon, 'built');
    const old = new Date(Date.now() - 3600_000);
    for (const f of ['native/src/kernels.cc', 'native/src', 'native/binding.gyp', 'native/detect.cjs']) utimesSync(join(root, f), old, old);
    // no node-gyp on PATH: a rebuild attempt can only fail, which shows whether one was made
    const run = (): ReturnType<typeof spawnSync> => spawnSync(process.execPath, [join(root, 'scripts', 'build-native.cjs')], { encoding: 'utf8', env: { PATH: '/nonexistent' } });
    const fresh = run();
    assert.equal(fresh.status, 0);
    assert.match(String(fresh.stdout), /native addon up to date/);
    utimesSync(join(root, 'native', 'src', 'kernels.cc'), new Date(), new Date(Date.now() + 60_000));
    const stale = run();
    assert.equal(stale.status, 0, 'a failed build does not fail the install');
    assert.match(String(stale.stdout), /native addon build failed; the TypeScript kernels will be used/);
    assert.match(String(stale.stderr), /did NOT build[\s\S]*TypeScript kernels/, 'the warning is loud (stderr, boxed)');
    assert.ok(existsSync(join(root, 'native', 'build-failed.log')), 'the build output is kept for the kernel loader to name');
    const required = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.cjs')], { encoding: 'utf8', env: { PATH: '/nonexistent', FLAMINGO_REQUIRE_NATIVE: '1' } });
    assert.notEqual(required.status, 0, 'FLAMINGO_REQUIRE_NATIVE=1 turns a failed build into a failed install');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
