// Build-time probe used by binding.gyp: decides whether to link OpenBLAS and which SIMD flags the
// compiler may use. Run as `node detect.cjs <what>`; prints gyp list items (one per line) or nothing.
// Detection happens on the build machine, which is also where `npm install` runs the addon.
'use strict';
const fs = require('node:fs');

const what = process.argv[2];
const noBlas = process.env.FLAMINGO_NO_BLAS === '1';

function findOpenBlas() {
  if (noBlas) return null;
  const incCandidates = [
    '/usr/include/x86_64-linux-gnu/openblas-pthread',
    '/usr/include/aarch64-linux-gnu/openblas-pthread',
    '/usr/include/openblas',
    '/usr/include/x86_64-linux-gnu',
    '/usr/local/include',
    '/usr/include',
  ];
  const libCandidates = [
    '/usr/lib/x86_64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
    '/usr/local/lib',
    '/usr/lib64',
    '/usr/lib',
  ];
  // The header must be OpenBLAS's own cblas.h (it declares openblas_set_num_threads).
  const inc = incCandidates.find((d) => {
    try {
      return fs.readFileSync(`${d}/cblas.h`, 'utf8').includes('openblas_set_num_threads');
    } catch {
      return false;
    }
  });
  const lib = libCandidates.find((d) => fs.existsSync(`${d}/libopenblas.so`));
  return inc && lib ? { inc, lib } : null;
}

function cpuFlags() {
  let info = '';
  try {
    info = fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return [];
  }
  const flagsLine = info.split('\n').find((l) => l.startsWith('flags')) ?? '';
  const flags = new Set(flagsLine.split(/\s+/));
  if (process.env.FLAMINGO_NO_SIMD !== '1' && flags.has('avx2') && flags.has('fma') && flags.has('f16c')) {
    return ['-mavx2', '-mfma', '-mf16c'];
  }
  return [];
}

const blas = findOpenBlas();
const out = {
  'blas-defines': blas ? ['FLAMINGO_OPENBLAS=1'] : [],
  'blas-include': blas ? [blas.inc] : [],
  'blas-libs': blas ? [`-L${blas.lib}`, '-lopenblas', `-Wl,-rpath,${blas.lib}`] : [],
  'simd-flags': cpuFlags(),
}[what];
if (!out) {
  process.stderr.write(`detect.cjs: unknown query '${what}'\n`);
  process.exit(1);
}
process.stdout.write(out.join('\n'));
