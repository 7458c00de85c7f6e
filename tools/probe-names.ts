/**
 * Does a model copy any name its prompt binds, or only names in the style it trained on? 5-way fast binding on
 * Fashion-MNIST test photos in the suite's layout (`This is a<image> NAME.` …), once per name inventory
 * (src/data/synthetic/inventories.ts), on the seen and held-out classes of meta.json, plus the LM alone
 * (gates at 0) on the same episodes in text, with a word for each image (`This is a red NAME.`). Beside each
 * accuracy: the share of answers that are another name of the prompt (matching failed, copying worked).
 *   node --import tsx tools/probe-names.ts [model dir] [--episodes N] [--shots 1,3] [--inventories a,b] [--json]
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadPretrained, PretrainedError } from '../src/pretrained/index.ts';
import { fashionMnistByClass } from '../src/data/fashion-mnist.ts';
import { noGrad } from '../src/engine/index.ts';
import { Rng } from '../src/engine/rng.ts';
import { generate } from '../src/model/generate.ts';
import { answerSpan, answersName, evaluateBinding } from '../src/eval/fast-binding.ts';
import { drawNames, isNameInventory, NAME_INVENTORIES, type NameInventory } from '../src/data/synthetic/inventories.ts';
import { BINDING_WORDS } from '../src/data/datasets/binding.ts';

const { values, positionals } = parseArgs({
  args: process.argv.slice(2), allowPositionals: true,
  options: { episodes: { type: 'string' }, shots: { type: 'string' }, inventories: { type: 'string' }, json: { type: 'boolean' }, 'no-text': { type: 'boolean' } },
});
const dir = positionals[0] ?? join('models', 'flamingo-fmnist');
const episodes = Number(values.episodes ?? 40);
const shots = (values.shots ?? '1').split(',').map(Number);
const inventories = (values.inventories ?? NAME_INVENTORIES.filter((i) => i !== 'training' && i !== 'pieces').join(',')).split(',');
for (const i of inventories) if (!isNameInventory(i)) throw new Error(`unknown inventory ${i} (${NAME_INVENTORIES.join(', ')})`);
const { model, processor, meta } = loadPretrained(dir);
if (!meta) throw new PretrainedError(`${dir} has no meta.json (the seen / held-out class split)`);
const seen = fashionMnistByClass(meta.seen_classes, 40);
const held = fashionMnistByClass(meta.heldout_classes, 40);

/** The LM alone on text episodes: w words as keys, k shots each, the query a repeated word. */
function textBinding(inventory: NameInventory, k: number, n: number, seed: number): { acc: number; other: number; examples: string[] } {
  const rng = new Rng(seed);
  const gates = [...model.lang_encoder.gated.values()];
  const saved = gates.map((g) => [g.attn_gate!.f32[0]!, g.ff_gate!.f32[0]!]);
  gates.forEach((g) => { g.attn_gate!.f32[0] = 0; g.ff_gate!.f32[0] = 0; });
  let correct = 0;
  let other = 0;
  const examples: string[] = [];
  const prompts: string[] = [];
  const answers: string[] = [];
  const allNames: string[][] = [];
  for (let e = 0; e < n; e++) {
    const words = rng.shuffle([...BINDING_WORDS]).slice(0, 5);
    const names = drawNames(rng, 5, inventory);
    const items: number[] = [];
    for (let a = 0; a < 5; a++) for (let b = 0; b < k; b++) items.push(a);
    rng.shuffle(items);
    const q = rng.int(5);
    prompts.push(`${items.map((a) => `This is a ${words[a]} ${names[a]}.`).join(' ')} This is a ${words[q]}`);
    answers.push(names[q]!);
    allNames.push(names);
  }
  for (let i = 0; i < n; i += 16) {
    const enc = processor.encode(prompts.slice(i, i + 16), prompts.slice(i, i + 16).map(() => []));
    const out = generate(model, { inputIds: enc.inputIds, attentionMask: enc.attentionMask }, { maxNewTokens: 16, strategy: 'greedy' });
    out.generated.forEach((g, j) => {
      const t = processor.decode(g);
      if (answersName(t, answers[i + j]!)) correct++;
      else if (allNames[i + j]!.some((x) => answersName(t, x))) other++;
      if (examples.length < 4) examples.push(`${answers[i + j]} → ${answerSpan(t)}`);
    });
  }
  gates.forEach((g, i) => { g.attn_gate!.f32[0] = saved[i]![0]!; g.ff_gate!.f32[0] = saved[i]![1]!; });
  return { acc: correct / n, other: other / n, examples };
}

const rows: Record<string, unknown>[] = [];
noGrad(() => {
  for (const inv of inventories as NameInventory[]) {
    for (const k of shots) {
      const a = evaluateBinding(model, processor, seen, { ways: 5, shots: k, episodes, seed: 11 + k, inventory: inv });
      const b = evaluateBinding(model, processor, held, { ways: 5, shots: k, episodes, seed: 111 + k, inventory: inv });
      const t = values['no-text'] ? null : textBinding(inv, k, episodes, 211 + k);
      const row = { inventory: inv, shots: k, seen: a.accuracy, heldout: b.accuracy, lm_text: t?.acc ?? null,
        other_name: { seen: a.otherName / a.total, heldout: b.otherName / b.total, lm_text: t?.other ?? null },
        examples: [...a.examples.slice(0, 2), ...b.examples.slice(0, 2)].map((x) => `${x.answer} → ${x.predicted}`), text_examples: t?.examples ?? [] };
      rows.push(row);
      if (!values.json) {
        const p = (x: number): string => `${(100 * x).toFixed(0).padStart(3)}%`;
        process.stdout.write(`${inv.padEnd(11)} ${k}-shot  seen ${p(a.accuracy)} (other name ${p(a.otherName / a.total)})  held-out ${p(b.accuracy)} (${p(b.otherName / b.total)})`
          + `${t ? `  LM text ${p(t.acc)} (${p(t.other)})` : ''}   ${row.examples.join(', ')}${t ? ` | ${t.examples.join(', ')}` : ''}\n`);
      }
    }
  }
});
if (values.json) process.stdout.write(JSON.stringify({ model: dir, episodes, rows }, null, 2) + '\n');
