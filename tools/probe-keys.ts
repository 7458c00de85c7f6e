/**
 * Where does fast binding lose held-out classes? For a model directory (default: the bundled model), the
 * 1-shot 5-way nearest-neighbour accuracy (cosine, features centred over the class set) of
 *   - the ViT's pooled (contrastive) embedding and its mean patch token,
 *   - what each gated block writes at the `<image>` token of `This is a<image>` (output minus input),
 * on the seen and the held-out Fashion-MNIST classes (meta.json). Compare with the suite's fast-binding
 * accuracy: features that separate classes but binding that does not point at the LM's binding circuit.
 *   node --import tsx tools/probe-keys.ts [model dir] [--json]
 */
import { BUNDLED_MODEL_DIR, loadPretrained, PretrainedError } from '../src/pretrained/index.ts';
import { fashionMnistByClass } from '../src/data/fashion-mnist.ts';
import { noGrad, sub } from '../src/engine/index.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { Rng } from '../src/engine/rng.ts';

const args = process.argv.slice(2);
const dir = args.find((a) => !a.startsWith('--')) ?? BUNDLED_MODEL_DIR;
const { model, processor, meta } = loadPretrained(dir);
if (!meta) throw new PretrainedError(`${dir} has no meta.json (the seen / held-out class split)`);
const PER_CLASS = 60;
const EPISODES = 400;

interface Features { byName: Record<string, Float32Array>; cls: number }

function features(classes: number[]): Features[] {
  const out: Features[] = [];
  const S = model.config.vision.image_size;
  noGrad(() => {
    for (const [ci, c] of fashionMnistByClass(classes, PER_CLASS).entries()) {
      for (const im of c.images) {
        const byName: Record<string, Float32Array> = {};
        const tokens = model.encodeImages(new Tensor(processor.preprocessImage(im), [1, 3, S, S]));
        const [, P, W] = tokens.shape as [number, number, number];
        const mean = new Float32Array(W);
        for (let p = 0; p < P; p++) for (let j = 0; j < W; j++) mean[j]! += tokens.f32[p * W + j]! / P;
        byName.vit_mean_token = mean;
        const enc = processor.encode(['This is a<image>'], [[im]]);
        const { media, pooled } = model.encodeVisionWithPooled(enc.visionX!);
        byName.vit_pooled = pooled.f32.slice();
        const pos = [...enc.inputIds.i32].indexOf(model.config.flamingo.media_token_id);
        model.forward({
          inputIds: enc.inputIds, attentionMask: enc.attentionMask, media,
          onGated: (layer, input, output) => {
            const d = sub(output, input);
            const H = d.shape[2]!;
            byName[`gated_${layer}_write`] = d.f32.slice(pos * H, (pos + 1) * H);
          },
        });
        out.push({ byName, cls: ci });
      }
    }
  });
  return out;
}

function centre(fs: Features[], name: string): void {
  const n = fs[0]!.byName[name]!.length;
  const m = new Float32Array(n);
  for (const f of fs) f.byName[name]!.forEach((v, i) => (m[i]! += v / fs.length));
  for (const f of fs) f.byName[name]!.forEach((v, i) => (f.byName[name]![i] = v - m[i]!));
}

function cosine(a: Float32Array, b: Float32Array): number {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { d += a[i]! * b[i]!; na += a[i]! ** 2; nb += b[i]! ** 2; }
  return d / Math.sqrt(na * nb + 1e-30);
}

function nearestNeighbour(fs: Features[], name: string, ways: number, seed: number): number {
  const r = new Rng(seed);
  const byClass = Array.from({ length: ways }, (_, c) => fs.filter((f) => f.cls === c));
  let correct = 0;
  for (let e = 0; e < EPISODES; e++) {
    const support = byClass.map((xs) => xs[r.int(xs.length)]!);
    const q = r.int(ways);
    const pool = byClass[q]!.filter((f) => f !== support[q]);
    const query = pool[r.int(pool.length)]!;
    let best = -Infinity, pick = -1;
    support.forEach((s, i) => {
      const c = cosine(s.byName[name]!, query.byName[name]!);
      if (c > best) { best = c; pick = i; }
    });
    if (pick === q) correct++;
  }
  return Math.round((1000 * correct) / EPISODES) / 10;
}

const report: Record<string, Record<string, number>> = {};
for (const [split, classes] of [['seen', meta.seen_classes], ['heldout', meta.heldout_classes]] as const) {
  const ways = Math.min(5, classes.length);
  const fs = features(classes.slice(0, ways));
  report[split] = {};
  for (const name of Object.keys(fs[0]!.byName)) {
    centre(fs, name);
    report[split]![name] = nearestNeighbour(fs, name, ways, 1);
  }
}
if (args.includes('--json')) process.stdout.write(`${JSON.stringify({ model: dir, metric: '1-shot nearest-neighbour accuracy (%)', ...report })}\n`);
else {
  const names = Object.keys(report.seen!);
  process.stdout.write(`1-shot ${Math.min(5, meta.seen_classes.length)}-way nearest-neighbour accuracy (%), ${dir}\n`);
  process.stdout.write(`${'feature'.padEnd(18)} ${'seen'.padStart(6)} ${'held-out'.padStart(9)}\n`);
  for (const n of names) process.stdout.write(`${n.padEnd(18)} ${String(report.seen![n]).padStart(6)} ${String(report.heldout![n]).padStart(9)}\n`);
}
