// The install script: builds the native addon, unless the built addon is newer than every source file.
// `npx flamingo …` inside the repository makes npm 11 install the package into its npx cache (as a link to
// the checkout) and run this script every time the cache entry is made; an up-to-date addon is kept
// instead of being rebuilt for minutes. `npm run build:native` always rebuilds. A failed build is never
// silent: with FLAMINGO_REQUIRE_NATIVE=1 (CI) it fails the install; otherwise the install goes on with the
// TypeScript kernels (correct, many times slower) after a boxed warning on stderr, and the build's output is
// kept in native/build-failed.log, which the kernel loader names when it falls back.
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const native = path.resolve(__dirname, '..', 'native');
const built = path.join(native, 'build', 'Release', 'flamingo_native.node');
const newest = (p) => {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...fs.readdirSync(p).map((f) => newest(path.join(p, f))));
};
try {
  const sources = Math.max(newest(path.join(native, 'src')), newest(path.join(native, 'binding.gyp')), newest(path.join(native, 'detect.cjs')));
  if (fs.existsSync(built) && fs.statSync(built).mtimeMs >= sources) {
    process.stdout.write('flamingo-ts: native addon up to date (npm run build:native rebuilds it)\n');
    process.exit(0);
  }
} catch {
  // fall through to a build
}
const log = path.join(native, 'build-failed.log');
const r = spawnSync('node-gyp', ['rebuild', '--directory', 'native'], { cwd: path.dirname(native), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], shell: process.platform === 'win32' });
process.stdout.write(r.stdout ?? '');
process.stderr.write(r.stderr ?? '');
if (r.status === 0) {
  try { fs.unlinkSync(log); } catch { /* no earlier failure */ }
} else {
  const why = r.error ? r.error.message : `node-gyp exited with ${r.status}`;
  try { fs.writeFileSync(log, `${new Date().toISOString()} ${why}\n\n${r.stdout ?? ''}\n${r.stderr ?? ''}`); } catch { /* read-only install */ }
  if (process.env.FLAMINGO_REQUIRE_NATIVE === '1') {
    process.stderr.write(`flamingo-ts: native addon build failed (${why}) and FLAMINGO_REQUIRE_NATIVE=1; see ${log}\n`);
    process.exit(1);
  }
  const bar = '!'.repeat(78);
  process.stderr.write(`\n${bar}\nflamingo-ts: the native addon did NOT build (${why}).\n` +
    'Falling back to the TypeScript kernels: correct but many times slower.\n' +
    `Build log: ${log}. Fix the toolchain (g++, make, python3, libopenblas-dev), then \`npm run build:native\`.\n${bar}\n\n`);
  process.stdout.write('flamingo-ts: native addon build failed; the TypeScript kernels will be used\n');
}
