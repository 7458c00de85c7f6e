#!/usr/bin/env node
// In a checkout (src/ present) the TypeScript CLI runs through tsx's loader, so development needs no
// build; an installed package runs the compiled dist/.
import { existsSync } from 'node:fs';
const src = new URL('../src/cli/main.ts', import.meta.url);
let main;
if (existsSync(src)) {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import(src.href));
} else {
  ({ main } = await import('../dist/cli/main.js'));
}
process.exitCode = await main(process.argv.slice(2));
