/**
 * Bench dispatcher: `npm run bench -- <name> [args]` imports `./<name>.ts` and awaits its
 * exported `run(args)`. Each bench owns its flags (e.g. `--json`).
 */
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface BenchModule {
  run(args: string[]): Promise<void>;
}

const here = fileURLToPath(new URL('.', import.meta.url));

function available(): string[] {
  return readdirSync(here)
    .filter((f) => f.endsWith('.ts') && f !== 'main.ts')
    .map((f) => f.slice(0, -3))
    .sort();
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    process.stdout.write(`usage: npm run bench -- <name> [args]\nbenches: ${available().join(', ')}\n`);
    return name ? 0 : 2;
  }
  if (!/^[a-z0-9_-]+$/i.test(name) || !existsSync(`${here}${name}.ts`)) {
    process.stderr.write(`bench: unknown bench '${name}' (available: ${available().join(', ')})\n`);
    return 2;
  }
  const mod = (await import(`./${name}.ts`)) as Partial<BenchModule>;
  if (typeof mod.run !== 'function') {
    process.stderr.write(`bench: bench/${name}.ts does not export run(args)\n`);
    return 2;
  }
  await mod.run(rest);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
