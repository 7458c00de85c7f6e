/**
 * The `flamingo` command: dispatches to one module per sub-command under src/cli/.
 * Each module exports `run(args: string[]): Promise<number>` returning the exit code, and throws for
 * errors: this is the one place that turns a thrown error into one line on stderr and an exit code
 * (1 bad data, files or model; 2 bad usage; see src/errors.ts). Stack traces only with `--debug`
 * (anywhere before a `--`) or FLAMINGO_DEBUG=1.
 */
import { describeError, exitCodeOf, FlamingoError } from '../errors.ts';

type CommandModule = { run(args: string[]): Promise<number> };
const COMMANDS: Record<string, { load: () => Promise<CommandModule>; help: string }> = {};

export function registerCommand(name: string, help: string, load: () => Promise<CommandModule>): void {
  COMMANDS[name] = { load, help };
}

registerCommand('demo', 'the main job: few-shot fast binding on real Fashion-MNIST images with the bundled model', () => import('./demo.ts'));
registerCommand('generate', 'few-shot generation from a model directory and images', () => import('./generate.ts'));
registerCommand('convert', 'a released OpenFlamingo\'s three sources (open_clip file, HF LM directory, checkpoint) → one model directory', () => import('./convert.ts'));
registerCommand('export', 'a model directory → the three sources PyTorch OpenFlamingo loads', () => import('./export.ts'));
registerCommand('verify', 'run fixture directories (parity, parity-real, …) against their expected outputs; --json: one line per case', () => import('./verify.ts'));
registerCommand('score', 'score a results file against annotations (captioning | vqa | classification)', () => import('./score.ts'));
registerCommand('train', 'train a Flamingo from a config: contrastive ViT, LM, then Flamingo stages', () => import('./train.ts'));
registerCommand('serve', 'HTTP server: OpenAI-compatible chat completions, generate/score API, /healthz, /metrics', () => import('./serve.ts'));
registerCommand('ablate', 'the paper\'s ablations: train and evaluate each variant of an ablation file, print the table', () => import('./ablate.ts'));
registerCommand('eval', 'few-shot evaluation on an official-format dataset (OpenFlamingo protocol) or --suite builtin', () => import('./eval.ts'));

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(10)} ${c.help}`);
  return `usage: flamingo [--debug] <command> [options]\n\ncommands:\n${lines.join('\n')}\n\n` +
    `Errors print one line and exit 1 (bad data, files or model) or 2 (bad usage); --debug or FLAMINGO_DEBUG=1 adds the stack trace.\n`;
}

/** Removes `--debug` from the arguments (not after a `--` terminator); says whether it was there. */
function takeDebugFlag(argv: string[]): { args: string[]; debug: boolean } {
  const end = argv.indexOf('--');
  const head = end === -1 ? argv : argv.slice(0, end);
  const tail = end === -1 ? [] : argv.slice(end);
  const kept = head.filter((a) => a !== '--debug');
  return { args: [...kept, ...tail], debug: kept.length !== head.length };
}

/** Writes one line for an error thrown by command `cmd` (plus the stack with `debug`) and returns the exit code. */
export function reportError(cmd: string | undefined, e: unknown, debug: boolean): number {
  const code = exitCodeOf(e);
  let line = `flamingo${cmd ? ` ${cmd}` : ''}: ${describeError(e)}`;
  if (code === 2 && !(e instanceof FlamingoError && e.hint)) line += ` (see 'flamingo${cmd ? ` ${cmd}` : ''} --help')`;
  if (!(e instanceof FlamingoError) && !debug) line += ' (rerun with --debug for the stack trace)';
  process.stderr.write(`${line}\n`);
  if (debug && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return code;
}

/** Runs the command line `argv` (without node and the script) and returns the exit code; never throws. */
export async function main(argv: string[]): Promise<number> {
  const { args, debug: debugFlag } = takeDebugFlag(argv);
  const debug = debugFlag || process.env.FLAMINGO_DEBUG === '1';
  const [cmd, ...rest] = args;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(usage());
    return cmd ? 0 : 2;
  }
  const entry = COMMANDS[cmd];
  if (!entry) {
    process.stderr.write(`flamingo: unknown command '${cmd}'\n${usage()}`);
    return 2;
  }
  try {
    const mod = await entry.load();
    return await mod.run(rest);
  } catch (e) {
    return reportError(cmd, e, debug);
  }
}

const isEntry = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isEntry) process.exitCode = await main(process.argv.slice(2));
