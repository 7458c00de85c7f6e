// The install script: builds the native addon, unless the built addon is newer than every source file.
// `npx flamingo …` inside the repository makes npm 11 install the package into its npx cache (as a link to
// the checkout) and run this script every time the cache entry is made; an up-to-date addon is kept
// instead of being rebuilt for minutes. `npm run build:native` always rebuilds. Never fails the install:
// without the addon the TypeScript kernels run (and say so).
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
const r = spawnSync('node-gyp', ['rebuild', '--directory', 'native'], { cwd: path.dirname(native), stdio: 'inherit', shell: process.platform === 'win32' });
if (r.status !== 0) process.stdout.write('flamingo-ts: native addon build failed; the TypeScript kernels will be used\n');
