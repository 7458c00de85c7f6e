/**
 * `flamingo eval --suite builtin`: options, model loading and output files of the built-in suite
 * (src/eval/suite/ runs it). Exit codes as every command: 1 bad model or data, 2 bad usage.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { BUNDLED_MODEL_DIR, BUNDLED_MODEL_HINT, loadPretrained } from '../pretrained/index.ts';
import { runSuite, suiteSvg, suiteTable, type SuiteOptions } from '../eval/suite/index.ts';
import { tokenizerCodec } from '../eval/tasks.ts';
import { intArg, parseOptions } from './args.ts';

const USAGE = `usage: flamingo eval --suite builtin [--model DIR] [--json] [--quick] [--out DIR] [options]

  --model <dir>        model directory: config.json, weights.safetensors, tokenizer.json and meta.json
                       (seen_classes / heldout_classes for fast binding); default: the bundled model
  --json               print one JSON object {model, tasks: [{task, metric, shots: {k: score}}], seconds}
  --quick              fewer items and shot counts (well under a minute)
  --out <dir>          results.json, prompts.json, outputs.json and score_vs_shots.svg (default runs/builtin)
  --seed <n>           data, demonstrations and episodes (default 0)
  --items <n>          queries (episodes) per shot count for every task
  --num-beams <n>      beam width for captioning / VQA / video QA (default 1 = greedy)
  --tuxpaint <dir>     Tux Paint stamps folder (default: scripts/fetch-tuxpaint.sh's cache)
  --quiet              no progress lines on stderr
`;

export async function runBuiltinSuite(args: string[]): Promise<number> {
  const { values } = parseOptions(args, {
    model: { type: 'string' }, json: { type: 'boolean' }, quick: { type: 'boolean' }, out: { type: 'string' },
    seed: { type: 'string' }, items: { type: 'string' }, 'num-beams': { type: 'string' }, tuxpaint: { type: 'string' },
    quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const cfg = {
    seed: intArg('seed', values.seed) ?? 0,
    items: intArg('items', values.items, { min: 1 }),
    numBeams: intArg('num-beams', values['num-beams'], { min: 1 }) ?? 1,
  };
  const dir = resolve(values.model ?? BUNDLED_MODEL_DIR);
  const quiet = values.quiet === true;
  const log = (line: string): void => { if (!quiet) process.stderr.write(`[builtin] ${line}\n`); };
  const { model, processor, meta } = loadPretrained(dir, { hint: values.model === undefined ? BUNDLED_MODEL_HINT : undefined });
  const classes: SuiteOptions['classes'] = meta ? { seen: meta.seen_classes, heldout: meta.heldout_classes } : null;
  log(`model ${dir} (${(model.numParameters() / 1e6).toFixed(2)}M parameters)${values.quick ? ', quick' : ''}`);
  const { report, prompts, outputs } = runSuite(model, processor, tokenizerCodec(processor.tokenizer), basename(dir), {
    quick: values.quick === true, seed: cfg.seed, items: cfg.items, numBeams: cfg.numBeams, tuxpaintDir: values.tuxpaint, classes, onLog: log,
  });
  const outDir = resolve(values.out ?? join('runs', 'builtin'));
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'results.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(outDir, 'prompts.json'), `${JSON.stringify(prompts, null, 2)}\n`);
  writeFileSync(join(outDir, 'outputs.json'), `${JSON.stringify(outputs, null, 2)}\n`);
  writeFileSync(join(outDir, 'score_vs_shots.svg'), suiteSvg(report));
  if (values.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else process.stdout.write(`${suiteTable(report)}results ${join(outDir, 'results.json')}; picture ${join(outDir, 'score_vs_shots.svg')}\n`);
  return 0;
}
