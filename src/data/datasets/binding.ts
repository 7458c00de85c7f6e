/**
 * Training sources for fast concept binding (paper §3; the bundled model's task):
 * - `fashion-pairs`: Fashion-MNIST image–caption pairs ("a photo of a sneaker"), for contrastive pretraining;
 * - `fashion-binding`: N-way K-shot episodes on real Fashion-MNIST images with invented names, in the
 *   evaluation's prompt format (src/eval/fast-binding.ts), answer included: `This is a<image> {name}.<|endofchunk|>`…
 * - `text-binding`: the same episodes in text only, a word standing in for each image
 *   (`This is a {word} {name}.`), so LM pretraining learns to bind names in context.
 * Each is an endless generator: document i depends only on (seed, i).
 */
import { Rng } from '../../engine/rng.ts';
import { fashionMnistImage, loadFashionMnist, FASHION_MNIST_CLASSES, type FashionMnist } from '../fashion-mnist.ts';
import { drawNames, isNameInventory, NAME_INVENTORIES, type NamePieces, type NameInventory } from '../synthetic/inventories.ts';
import { randomHorizontalFlip, randomResizedCrop } from '../image-transforms.ts';
import { type RgbImage } from '../image.ts';
import { renderScene } from '../synthetic/render.ts';
import { sampleSceneWith } from '../synthetic/scene.ts';
import { resolveConfig, type SyntheticWorldOptions } from '../synthetic/config.ts';
import type { ColourName, ShapeName } from '../synthetic/vocab.ts';
import { generatorSource } from './memory.ts';
import { DatasetError, type DocSource, type RawChunk } from './types.ts';

const cache = new Map<string, { ds: FashionMnist; byClass: number[][] }>();

function fashion(split: 'train' | 'test'): { ds: FashionMnist; byClass: number[][] } {
  let c = cache.get(split);
  if (!c) {
    const ds = loadFashionMnist({ split });
    const byClass: number[][] = FASHION_MNIST_CLASSES.map(() => []);
    for (let i = 0; i < ds.n; i++) byClass[ds.labels[i]!]!.push(i);
    c = { ds, byClass };
    cache.set(split, c);
  }
  return c;
}

function checkClasses(name: string, classes: number[]): void {
  if (!Array.isArray(classes) || classes.length === 0 || classes.some((c) => !Number.isInteger(c) || c < 0 || c >= FASHION_MNIST_CLASSES.length)) {
    throw new DatasetError(name, `classes must be a non-empty list of Fashion-MNIST class indices 0..9, got ${JSON.stringify(classes)}`);
  }
}

function range(r: Rng, [lo, hi]: [number, number]): number {
  return lo + r.int(hi - lo + 1);
}

export interface FashionPairsOptions {
  name: string;
  classes?: number[];
  split?: 'train' | 'test';
}

const CAPTIONS = ['a photo of a {c}', 'a {c}', 'a picture of a {c}', 'a black and white photo of a {c}', 'this is a {c}'];

export function fashionPairs(opts: FashionPairsOptions): DocSource {
  const classes = opts.classes ?? FASHION_MNIST_CLASSES.map((_, i) => i);
  checkClasses(opts.name, classes);
  return generatorSource(opts.name, (seed, i) => {
    const { ds, byClass } = fashion(opts.split ?? 'train');
    const r = new Rng(seed).fork(i);
    const c = classes[r.int(classes.length)]!;
    const idx = byClass[c]![r.int(byClass[c]!.length)]!;
    const text = CAPTIONS[r.int(CAPTIONS.length)]!.replace('{c}', FASHION_MNIST_CLASSES[c]!.toLowerCase());
    return { key: `${opts.name}:${i}`, chunks: [{ kind: 'image', image: () => fashionMnistImage(ds, idx) }, { kind: 'text', text }] };
  });
}

export interface BindingOptions {
  name: string;
  classes?: number[];
  ways?: [number, number];
  shots?: [number, number];
  split?: 'train' | 'test';
  /**
   * `classes` (default): each way is a class, every occurrence a different photo of it.
   * `instances`: each way is one photo (any of `classes`, so two ways may share a class) and every occurrence an
   * augmented view of it (random crop of 70–100% of the area, flip).
   */
  concepts?: 'classes' | 'instances';
  /**
   * Instance episodes: the probability (default 0) that all ways of an episode are photos of one class, so
   * telling them apart takes the details a class code drops.
   */
  same_class?: number;
  /** Name inventory (src/data/synthetic/inventories.ts; default `generator`). */
  names?: NameInventory;
  /** Loss targets (default `all`); see {@link BindingLoss}. */
  loss?: BindingLoss;
  /** `names: training` also joins names from these tokenizer pieces (the training run passes its tokenizer's). */
  pieces?: NamePieces;
}

/**
 * `all`: every token is a loss target. `answers`: only the names a model can copy — those of a key that
 * already occurred earlier in the episode. The first occurrence of a name cannot be predicted; scoring it
 * teaches a prior over names (their style), which is what copying must not lean on.
 */
export type BindingLoss = 'all' | 'answers';

function checkLoss(name: string, loss: unknown): boolean {
  if (loss === undefined || loss === 'all') return false;
  if (loss === 'answers') return true;
  throw new DatasetError(name, `loss must be "all" or "answers", got ${JSON.stringify(loss)}`);
}

/** The chunks of one support or query item: the name scored only when its key came before (loss: answers). */
function itemChunks(prefix: RawChunk[], name: string, answersOnly: boolean, repeat: boolean): RawChunk[] {
  if (!answersOnly) return [...prefix, { kind: 'text', text: ` ${name}.` }];
  return [...prefix.map((c): RawChunk => (c.kind === 'text' ? { ...c, scored: false } : c)), { kind: 'text', text: ` ${name}.`, scored: repeat }];
}

/**
 * An image episode's chunks, item by item in `items` order (way indices): `This is a<image> {name}.`, the image
 * where the text episodes have their key word. `imageOf(way, item)` is called once per item, in order.
 */
function episodeChunks(items: number[], names: string[], answersOnly: boolean, imageOf: (way: number, item: number) => () => RgbImage): RawChunk[] {
  const chunks: RawChunk[] = [];
  const seen = new Set<number>();
  for (const [j, a] of items.entries()) {
    chunks.push(...itemChunks([{ kind: 'text', text: 'This is a' }, { kind: 'image', image: imageOf(a, j) }], names[a]!, answersOnly, seen.has(a)));
    seen.add(a);
  }
  return chunks;
}

/** An augmented view (crop + flip), reproducible from `r`. */
function augmentedView(img: RgbImage, r: Rng): RgbImage {
  const rand = (): number => r.uniform();
  return randomHorizontalFlip(randomResizedCrop(img, img.width, rand, { scale: [0.7, 1], ratio: [0.85, 1 / 0.85] }), rand);
}

/**
 * Image episodes: support `This is a<image> {name}.<|endofchunk|>` chunks (shuffled), then the query with its
 * answer. The image takes the place of the key word of the text episodes, so the LM's in-context binding
 * (learned on text) applies once the gated cross-attention writes a class-consistent key at the <image> position.
 */
export function fashionBinding(opts: BindingOptions): DocSource {
  const classes = opts.classes ?? FASHION_MNIST_CLASSES.map((_, i) => i);
  checkClasses(opts.name, classes);
  const ways = opts.ways ?? [2, 5];
  const shots = opts.shots ?? [1, 3];
  const instances = opts.concepts === 'instances';
  const inventory = checkNames(opts.name, opts.names);
  const answersOnly = checkLoss(opts.name, opts.loss);
  if (opts.concepts !== undefined && opts.concepts !== 'classes' && !instances) {
    throw new DatasetError(opts.name, `concepts must be "classes" or "instances", got ${JSON.stringify(opts.concepts)}`);
  }
  const sameClass = opts.same_class ?? 0;
  if (!(typeof sameClass === 'number' && sameClass >= 0 && sameClass <= 1)) throw new DatasetError(opts.name, `same_class must be a probability in [0, 1], got ${JSON.stringify(opts.same_class)}`);
  if (sameClass > 0 && !instances) throw new DatasetError(opts.name, 'same_class applies to instance episodes (concepts: "instances") only');
  if (!instances && ways[1] > classes.length) throw new DatasetError(opts.name, `${ways[1]}-way episodes need ${ways[1]} classes, have ${classes.length}`);
  return generatorSource(opts.name, (seed, i) => {
    const { ds, byClass } = fashion(opts.split ?? 'train');
    const r = new Rng(seed).fork(i);
    const w = range(r, ways);
    const k = range(r, shots);
    // the draw for same_class happens only when it is set, so episodes without it stay as they were
    const pool = instances && sameClass > 0 && r.uniform() < sameClass ? [classes[r.int(classes.length)]!] : classes;
    const chosen = instances ? distinctPhotos(r, byClass, pool, w) : r.shuffle([...classes]).slice(0, w);
    const names = drawNames(r, w, inventory, { pieces: opts.pieces });
    const chunks = episodeChunks(episodeOrder(r, w, k), names, answersOnly, (a, j) => {
      if (instances) {
        const idx = chosen[a]!;
        return () => augmentedView(fashionMnistImage(ds, idx), new Rng(seed).fork(i).fork('view').fork(j));
      }
      const pool = byClass[chosen[a]!]!;
      const idx = pool[r.int(pool.length)]!;
      return () => fashionMnistImage(ds, idx);
    });
    return { key: `${opts.name}:${i}`, chunks };
  });
}

export interface SceneBindingOptions {
  name: string;
  ways?: [number, number];
  shots?: [number, number];
  world?: SyntheticWorldOptions;
  /** Name inventory (default `generator`). */
  names?: NameInventory;
  /** Loss targets (default `all`); see {@link BindingLoss}. */
  loss?: BindingLoss;
  /** `names: training` also joins names from these tokenizer pieces (the training run passes its tokenizer's). */
  pieces?: NamePieces;
}

/**
 * Fast-binding episodes on synthetic scenes, in the fashion episodes' exact text: each way is a (shape, colour)
 * concept, every occurrence a fresh rendering (size, position, background and texture vary).
 * Five Fashion-MNIST classes are few concepts: trained on them alone, the cross-attention learns a code for
 * those five that the LM reads well and that separates unseen classes poorly. The synthetic world offers
 * dozens of concepts per episode draw, so the code that works is one for "this image", not for five classes.
 */
export function sceneBinding(opts: SceneBindingOptions): DocSource {
  const ways = opts.ways ?? [2, 5];
  const shots = opts.shots ?? [1, 3];
  const cfg = resolveConfig(opts.world);
  const inventory = checkNames(opts.name, opts.names);
  const answersOnly = checkLoss(opts.name, opts.loss);
  const concepts: Array<[ShapeName, ColourName]> = [];
  for (const shape of cfg.shapes) for (const colour of cfg.colours) concepts.push([shape, colour]);
  if (ways[1] > concepts.length) throw new DatasetError(opts.name, `${ways[1]}-way episodes need ${ways[1]} concepts, the world has ${concepts.length}`);
  return generatorSource(opts.name, (seed, i) => {
    const r = new Rng(seed).fork(i);
    const w = range(r, ways);
    const k = range(r, shots);
    const chosen = r.shuffle([...concepts]).slice(0, w);
    const names = drawNames(r, w, inventory, { pieces: opts.pieces });
    const chunks = episodeChunks(episodeOrder(r, w, k), names, answersOnly, (a, j) => {
      const [shape, colour] = chosen[a]!;
      return () => renderScene(sampleSceneWith(new Rng(seed).fork(i).fork('scene').fork(j), cfg, { count: 1, constraints: [{ shape, colour }] }), cfg.imageSize);
    });
    return { key: `${opts.name}:${i}`, chunks };
  });
}

function checkNames(name: string, names: unknown): NameInventory {
  if (names === undefined) return 'generator';
  if (!isNameInventory(names)) throw new DatasetError(name, `names must be one of ${NAME_INVENTORIES.join(', ')}, got ${JSON.stringify(names)}`);
  return names;
}

/** Way index of every item of a w-way k-shot episode: the k·w supports shuffled, then the query. */
function episodeOrder(r: Rng, w: number, k: number): number[] {
  const items: number[] = [];
  for (let a = 0; a < w; a++) for (let b = 0; b < k; b++) items.push(a);
  r.shuffle(items);
  items.push(r.int(w)); // the query, last
  return items;
}

/** `w` distinct photo indices drawn from the given classes. */
function distinctPhotos(r: Rng, byClass: number[][], classes: number[], w: number): number[] {
  const total = classes.reduce((n, c) => n + byClass[c]!.length, 0);
  if (total < w) throw new DatasetError('fashion-binding', `${w}-way instance episodes need ${w} photos, the classes have ${total}`);
  const out = new Set<number>();
  while (out.size < w) {
    const pool = byClass[classes[r.int(classes.length)]!]!;
    out.add(pool[r.int(pool.length)]!);
  }
  return [...out];
}

export const BINDING_WORDS = [
  'red', 'blue', 'green', 'yellow', 'purple', 'orange', 'small', 'big', 'round', 'square', 'striped', 'dotted', 'shiny', 'soft',
  'old', 'new', 'dark', 'light', 'tall', 'short', 'long', 'wide', 'flat', 'warm', 'cold', 'heavy', 'wooden', 'woolen', 'plain', 'fancy',
];

/** A broader key vocabulary, so the LM learns to bind names to any word rather than to a handful. */
export const BINDING_WORDS_EXTENDED = [
  ...BINDING_WORDS,
  'pink', 'brown', 'black', 'white', 'grey', 'golden', 'silver', 'tiny', 'huge', 'thin', 'thick', 'narrow', 'bright', 'pale',
  'rough', 'smooth', 'wet', 'dry', 'hot', 'quiet', 'loud', 'fast', 'slow', 'young', 'happy', 'sad', 'angry', 'calm', 'brave',
  'clever', 'funny', 'strange', 'simple', 'broken', 'clean', 'dirty', 'empty', 'full', 'hard', 'sharp', 'sweet', 'bitter',
  'fresh', 'rare', 'cheap', 'rich', 'poor', 'proud', 'gentle', 'wild', 'quick', 'lazy', 'early', 'late', 'left', 'right',
  'upper', 'lower', 'inner', 'outer', 'north', 'south', 'east', 'west', 'summer', 'winter', 'spring', 'autumn', 'morning',
  'evening', 'night', 'paper', 'glass', 'metal', 'stone', 'cotton', 'leather', 'silk', 'plastic', 'rubber', 'velvet',
  'cat', 'dog', 'bird', 'fish', 'horse', 'mouse', 'lion', 'bear', 'fox', 'wolf', 'apple', 'lemon', 'cherry', 'banana',
  'river', 'forest', 'garden', 'city', 'village', 'market', 'castle', 'bridge', 'tower', 'island', 'ocean', 'desert',
  'star', 'moon', 'cloud', 'rain', 'snow', 'wind', 'fire', 'water', 'sand', 'shell', 'leaf', 'flower', 'tree', 'grass',
];

export interface TextBindingOptions {
  name: string;
  ways?: [number, number];
  items?: [number, number];
  /** Key vocabulary of word episodes. */
  words?: 'basic' | 'extended';
  /** `words` (default): a word is the key. `vectors`: an `<image>` placeholder plus a vector is the key. */
  keys?: 'words' | 'vectors';
  /**
   * Vector episodes: the norm of each key vector (default 2), or a range [min, max] each episode draws its norm
   * from, so the matching works at whatever scale the cross-attention later writes its keys.
   */
  vector_norm?: number | [number, number];
  /** Vector episodes: the largest relative size of the per-occurrence noise (default 0.6). */
  vector_noise?: number;
  /**
   * Vector episodes: the largest factor by which the tokens after an `<image>` get its vector too (default 1;
   * each episode draws its own in [0, max]), so the LM tolerates cross-attention writing to them.
   */
  vector_spread?: number;
  /**
   * Name inventory (default `generator`). `training` draws names of any syllable inventory, letter strings,
   * real words, capitals, digits and two-word names, so the binding circuit the LM learns copies whatever
   * tokens followed the matching key instead of producing names of one style.
   */
  names?: NameInventory;
  /** Loss targets (default `all`); see {@link BindingLoss}. */
  loss?: BindingLoss;
  /** `names: training` also joins names from these tokenizer pieces (the training run passes its tokenizer's). */
  pieces?: NamePieces;
}

/**
 * Text episodes: `This is a {word} {name}.` chunks where each word stands for one class of the episode;
 * repeated words must get the name bound to them earlier in the same document.
 *
 * With `keys: 'vectors'` the key is `<image>` plus a vector (RawDoc.keyVectors): `This is a<image> {name}.`, in
 * the fashion-binding episodes' exact text.
 * A small LM trained only on word keys binds names to token identities and nothing else — vectors that are
 * not word embeddings (what the gated cross-attention writes) are ignored by its circuit. Vector keys teach
 * it to bind by similarity of continuous content instead. Each key has a base direction, episodes share a
 * common component (keys of one episode resemble each other, like images of related classes) and every
 * occurrence gets its own noise (like two photos of one class), so the circuit learns to match the nearest key.
 */
export function textBinding(opts: TextBindingOptions): DocSource {
  const ways = opts.ways ?? [2, 5];
  const vocabulary = opts.words === 'extended' ? BINDING_WORDS_EXTENDED : BINDING_WORDS;
  const itemsRange = opts.items ?? [6, 12];
  const vectors = opts.keys === 'vectors';
  if (opts.keys !== undefined && opts.keys !== 'words' && !vectors) throw new DatasetError(opts.name, `keys must be "words" or "vectors", got ${JSON.stringify(opts.keys)}`);
  const normRange = opts.vector_norm ?? 2;
  const [normLo, normHi] = typeof normRange === 'number' ? [normRange, normRange] : Array.isArray(normRange) && normRange.length === 2 ? normRange : [NaN, NaN];
  const maxNoise = opts.vector_noise ?? 0.6;
  const maxSpread = opts.vector_spread ?? 1;
  const inventory = checkNames(opts.name, opts.names);
  const answersOnly = checkLoss(opts.name, opts.loss);
  if (!(normLo > 0 && normHi >= normLo) || !(maxNoise >= 0) || !(maxSpread >= 0)) {
    throw new DatasetError(opts.name, `vector_norm must be > 0 (or a range [min, max] of such), vector_noise and vector_spread >= 0, got ${JSON.stringify(normRange)}, ${maxNoise}, ${maxSpread}`);
  }
  return generatorSource(opts.name, (seed, i) => {
    const r = new Rng(seed).fork(i);
    const w = range(r, ways);
    const words = r.shuffle([...vocabulary]).slice(0, w);
    const names = drawNames(r, w, inventory, { pieces: opts.pieces });
    const n = Math.max(w + 1, range(r, itemsRange));
    const items: number[] = [...Array(w).keys()];
    while (items.length < n) items.push(r.int(w));
    const head = r.shuffle(items.slice(0, w));
    const order = [...head, ...items.slice(w)];
    // the key: a word, or exactly the Flamingo episodes' text (docToText: `<|endofchunk|>` before every image but the first)
    const keyText = (a: number, j: number): string => (vectors ? `This is a${j ? '<|endofchunk|>' : ''}<image>` : `This is a ${words[a]}`);
    // chunks are joined with a space (docPlainText): the name chunk is the one after its key
    const chunks: RawChunk[] = answersOnly
      ? order.flatMap((a, j): RawChunk[] => [{ kind: 'text', text: keyText(a, j), scored: false }, { kind: 'text', text: `${names[a]}.`, scored: j >= w }])
      : [{ kind: 'text', text: order.map((a, j) => `${keyText(a, j)} ${names[a]}.`).join(' ') }];
    if (!vectors) return { key: `${opts.name}:${i}`, chunks };
    const keyVectors = (dim: number): Float32Array[] => {
      const vr = new Rng(seed).fork(i).fork('vectors');
      const common = gaussian(vr, dim);
      const shared = vr.uniform() * 0.8; // how much the keys of this episode resemble each other
      const noise = vr.uniform() * maxNoise;
      const bases = Array.from({ length: w }, () => mixUnit(common, gaussian(vr, dim), shared));
      // a range draws from its own stream, so a fixed norm leaves the vectors as they were
      const norm = normHi > normLo ? normLo + new Rng(seed).fork(i).fork('norm').uniform() * (normHi - normLo) : normLo;
      return order.map((a) => scaleTo(mixUnit(bases[a]!, gaussian(vr, dim), noise), norm));
    };
    const keySpread = new Rng(seed).fork(i).fork('spread').uniform() * maxSpread;
    return { key: `${opts.name}:${i}`, chunks, keyVectors, keySpread };
  });
}

function gaussian(r: Rng, dim: number): Float32Array {
  const v = new Float32Array(dim);
  for (let j = 0; j < dim; j++) v[j] = r.normal();
  return scaleTo(v, 1);
}

function scaleTo(v: Float32Array, n: number): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const f = n / Math.sqrt(s || 1);
  for (let j = 0; j < v.length; j++) v[j]! *= f;
  return v;
}

/** Unit vector (1 − t)·a + t·b, renormalised (a, b unit). */
function mixUnit(a: Float32Array, b: Float32Array, t: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let j = 0; j < a.length; j++) out[j] = (1 - t) * a[j]! + t * b[j]!;
  return scaleTo(out, 1);
}
