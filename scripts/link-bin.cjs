// Links this package's own `flamingo` bin into node_modules/.bin so `npx flamingo …` works inside the
// repository (npm links the bins of dependencies only). Idempotent; never fails the install.
const fs = require('node:fs');
const path = require('node:path');
try {
  const root = path.resolve(__dirname, '..');
  // Installed as a dependency, npm links the bin itself: nothing to do.
  if (root.split(path.sep).includes('node_modules')) process.exit(0);
  const binDir = path.join(root, 'node_modules', '.bin');
  const link = path.join(binDir, 'flamingo');
  fs.mkdirSync(binDir, { recursive: true });
  try { fs.unlinkSync(link); } catch { /* not there yet */ }
  fs.symlinkSync(path.relative(binDir, path.join(root, 'bin', 'flamingo.mjs')), link);
} catch (e) {
  process.stderr.write(`flamingo-ts: could not link the flamingo bin (${e.message}); use node bin/flamingo.mjs\n`);
}
