/**
 * The `flamingo` command: dispatches to one module per sub-command under src/cli/.
 * Each module exports `run(args: string[]): Promise<number>` returning the exit code.
 */
const COMMANDS: Record<string, { load: () => Promise<{ run(args: string[]): Promise<number> }>; help: string }> = {};

export function registerCommand(
  name: string, help: string, load: () => Promise<{ run(args: string[]): Promise<number> }>,
): void {
  COMMANDS[name] = { load, help };
}

registerCommand('demo', 'the main job: few-shot fast binding on real Fashion-MNIST images with the bundled model', () => import('./demo.ts'));
registerCommand('generate', 'few-shot generation from a model directory and images', () => import('./generate.ts'));
registerCommand('verify', 'run parity cases (fixture directories) against the reference outputs', () => import('./verify.ts'));
registerCommand('score', 'score a results file against annotations (captioning | vqa | classification)', () => import('./score.ts'));
registerCommand('train', 'train a Flamingo from a config: contrastive ViT, LM, then Flamingo stages', () => import('./train.ts'));
registerCommand('serve', 'HTTP server: OpenAI-compatible chat completions, generate/score API, /healthz, /metrics', () => import('./serve.ts'));
registerCommand('eval', 'few-shot evaluation on an official-format dataset (OpenFlamingo protocol) or --suite builtin', () => import('./eval.ts'));

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(10)} ${c.help}`);
  return `usage: flamingo <command> [options]\n\ncommands:\n${lines.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(usage());
    return cmd ? 0 : 2;
  }
  const entry = COMMANDS[cmd];
  if (!entry) {
    process.stderr.write(`flamingo: unknown command '${cmd}'\n${usage()}`);
    return 2;
  }
  const mod = await entry.load();
  return mod.run(rest);
}

const isEntry = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isEntry) {
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (err: unknown) => {
      process.stderr.write(`flamingo: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
