// Name inventories for fast binding. A model that binds names in context must copy whatever string the
// prompt bound, not produce a name in the style it was trained on; so training draws its names from many
// inventories and evaluation measures each inventory on its own, including inventories training never used.

import { SyntheticDataError } from './errors.ts';
import { readFileSync } from 'node:fs';
import { GENERATOR_SYLLABLES, inventNames, isReservedWord } from './names.ts';
import { intBetween, pick, sample, type Random } from './random.ts';

/**
 * - `generator`: src/data/synthetic/names.ts (1–2 syllables), the names the earlier bundled models trained on;
 * - `unseen`: pronounceable words whose onsets and vowels are disjoint from every syllable inventory used in
 *   training (`generator` and `training`'s random inventories), 1–2 syllables like the generator's: `wrowch`,
 *   `knauthey`; `unseen-long`: the same with 2–3 syllables (`heassjauknay`);
 * - `letters`: random lowercase letter strings of 3–8 letters (`xqvtre`);
 * - `rare`: rare real English words that training never draws (`gnomon`, `zither`);
 * - `two-word`: two generator-style words (`blicket zorp`);
 * - `training`: the mixture that teaches copying any name — any syllable inventory of 1–4 syllables (a fresh random
 *   inventory per episode, from pools that exclude `unseen`'s onsets and vowels), random letter strings, pieces
 *   of real words joined, real words (WordNet nouns, never `rare`'s), with capitals, digits and two-word names
 *   mixed in, and in some episodes a start that all names share; given a tokenizer's pieces (NamePieces), also
 *   names joined from them;
 * - `pieces` (training only): every name joined from a tokenizer's pieces (NamePieces must be given), so each
 *   token of the vocabulary is copied often, capitals and digits mixed in as in `training`.
 */
export const NAME_INVENTORIES = ['generator', 'unseen', 'unseen-long', 'letters', 'rare', 'two-word', 'training', 'pieces'] as const;
export type NameInventory = (typeof NAME_INVENTORIES)[number];

export function isNameInventory(s: unknown): s is NameInventory {
  return typeof s === 'string' && (NAME_INVENTORIES as readonly string[]).includes(s);
}

// Held out: no training inventory uses these onsets or vowels.
const UNSEEN_ONSETS = ['ch', 'h', 'j', 'y', 'qu', 'th', 'ph', 'wh', 'gl', 'cl', 'cr', 'str', 'spr', 'sc', 'kn', 'wr'];
const UNSEEN_VOWELS = ['oa', 'au', 'oi', 'ie', 'ea', 'ue', 'ay', 'aw', 'ey', 'ow'];
const UNSEEN_CODAS = ['', '', '', 'th', 'ch', 'ft', 'sp', 'nd', 'rk', 'ss', 'lf', 'mp', 'st'];

// Pools the training inventories are drawn from (the generator's units and more, none of UNSEEN's onsets/vowels).
export const TRAINING_ONSETS = [
  ...GENERATOR_SYLLABLES.onsets, 'fr', 'pr', 'gw', 'dw', 'tw', 'sl', 'sm', 'sw', 'sp', 'st', 'c', 'x', 'vr', 'zl', 'mb', 'nd', 'ts',
];
export const TRAINING_VOWELS = [...GENERATOR_SYLLABLES.vowels, 'ui', 'eo', 'ae', 'ia', 'oe', 'ei', 'uu', 'aa', 'io'];
const TRAINING_CODAS = [...GENERATOR_SYLLABLES.codas, 'll', 'rr', 'ng', 'ps', 'ts', 'dd', 'f', 'v', 'r', 's'];

export const UNSEEN_INVENTORY = { onsets: UNSEEN_ONSETS, vowels: UNSEEN_VOWELS, codas: UNSEEN_CODAS } as const;

/**
 * Rare real words for evaluation only (training's real words exclude them): objects, instruments and
 * creatures a small model's corpus does not mention.
 */
export const RARE_WORDS = [
  'gnomon', 'zither', 'sextant', 'bodkin', 'cravat', 'dirndl', 'fichu', 'galosh', 'jerkin', 'kirtle', 'mukluk', 'puttee',
  'snood', 'wimple', 'cassock', 'doublet', 'tabard', 'ocarina', 'theorbo', 'sackbut', 'crumhorn', 'shawm', 'rebec',
  'psaltery', 'dulcimer', 'calliope', 'astrolabe', 'orrery', 'quern', 'astragal', 'finial', 'corbel', 'plinth', 'lintel',
  'cupola', 'oriel', 'wainscot', 'yurt', 'quokka', 'numbat', 'dugong', 'axolotl', 'pangolin', 'tapir', 'okapi', 'gharial',
  'jerboa', 'kinkajou', 'margay', 'potoroo', 'quoll', 'saiga', 'takin', 'tarsier', 'vicuna', 'wombat', 'zorilla', 'bittern',
  'grebe', 'hoopoe', 'jacana', 'kakapo', 'motmot', 'potoo', 'quetzal', 'sora', 'tinamou', 'wryneck', 'bezoar', 'cairn',
  'dolmen', 'escutcheon', 'fardel', 'gimbal', 'halyard', 'inkhorn', 'jackstay', 'kedge', 'lanyard', 'mizzen', 'nacelle',
  'ormolu', 'pintle', 'quoin', 'reliquary', 'sconce', 'trivet', 'umiak', 'vambrace', 'whelk', 'xebec', 'yawl', 'zarf',
];

const RARE = new Set(RARE_WORDS);
const WORDNET_INDEX = '/usr/share/wordnet/index.noun';
let wordnetNouns: string[] | null = null;

/** Single-word WordNet nouns of 4–10 letters, minus RARE_WORDS (read once from wordnet-base's index.noun). */
function trainingWords(readFile: (f: string) => string): string[] {
  if (wordnetNouns) return wordnetNouns;
  let text: string;
  try {
    text = readFile(WORDNET_INDEX);
  } catch (e) {
    throw new SyntheticDataError('names', `training names need WordNet's ${WORDNET_INDEX} (apt-get install wordnet-base): ${(e as Error).message}`);
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith(' ') || line.length === 0) continue;
    const w = line.slice(0, line.indexOf(' '));
    if (/^[a-z]{4,10}$/.test(w) && !RARE.has(w)) out.push(w);
  }
  wordnetNouns = out;
  return out;
}

interface SyllableInventory {
  onsets: readonly string[];
  vowels: readonly string[];
  codas: readonly string[];
}

function wordFrom(rng: Random, inv: SyllableInventory, syllables: [number, number]): string {
  const n = intBetween(rng, syllables[0], syllables[1]);
  let w = '';
  for (let i = 0; i < n; i++) w += pick(rng, inv.onsets) + pick(rng, inv.vowels) + pick(rng, inv.codas);
  return w;
}

/** A fresh syllable inventory from the training pools: 3–12 onsets, 2–6 vowels, 2–8 codas. */
function randomInventory(rng: Random): SyllableInventory {
  return {
    onsets: sample(rng, TRAINING_ONSETS, intBetween(rng, 3, 12)),
    vowels: sample(rng, TRAINING_VOWELS, intBetween(rng, 2, 6)),
    codas: sample(rng, TRAINING_CODAS, intBetween(rng, 2, 8)),
  };
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

function letterString(rng: Random, lo: number, hi: number): string {
  const n = intBetween(rng, lo, hi);
  let s = '';
  for (let i = 0; i < n; i++) s += LETTERS[rng.int(26)]!;
  return s;
}

type Maker = () => string;

/**
 * The alphabetic pieces of a tokenizer's vocabulary: `initial` those that begin a word (after a space, the
 * space removed), `inner` those that continue one. Names joined from them make every such token a copy target,
 * so the LM's copying is trained on each token the tokenizer has rather than on the tokens of a few styles.
 */
export interface NamePieces {
  initial: readonly string[];
  inner: readonly string[];
}

/** NamePieces of a vocabulary given as decoded token strings. */
export function namePiecesOf(tokens: Iterable<string>): NamePieces {
  const initial = new Set<string>();
  const inner = new Set<string>();
  for (const t of tokens) {
    if (/^ [A-Za-z]+$/.test(t)) initial.add(t.slice(1));
    else if (/^[A-Za-z]+$/.test(t)) inner.add(t);
  }
  if (initial.size === 0 || inner.size === 0) throw new SyntheticDataError('names', `a vocabulary without alphabetic word-start and word-inner pieces (${initial.size}, ${inner.size})`);
  return { initial: [...initial].sort(), inner: [...inner].sort() };
}

/** A word-start piece and 0–3 inner pieces (`quadbrnet`): an order of tokens no word or syllable inventory has. */
function pieceName(rng: Random, pieces: NamePieces): string {
  let s = pick(rng, pieces.initial);
  const more = intBetween(rng, 0, 3);
  for (let i = 0; i < more; i++) s += pick(rng, pieces.inner);
  return s;
}

/** One training name maker for a whole episode, or per name; with `pieces`, a fifth are joined vocabulary pieces. */
function trainingMaker(rng: Random, readFile: (f: string) => string, pieces?: NamePieces): Maker {
  const kind = rng.int(pieces ? 25 : 20);
  if (kind >= 20) return () => pieceName(rng, pieces!);
  if (kind < 3) return () => wordFrom(rng, GENERATOR_SYLLABLES, [1, 4]);
  if (kind < 9) {
    const inv = randomInventory(rng);
    const syl: [number, number] = [1, intBetween(rng, 1, 4)];
    return () => wordFrom(rng, inv, syl);
  }
  if (kind < 12) return () => letterString(rng, 2, 9);
  const words = trainingWords(readFile);
  if (kind < 15) return () => fragments(rng, words);
  return () => pick(rng, words);
}

/**
 * 2–3 pieces of 2–4 letters cut from real words and joined (`ingaustrel`): such names are made of the
 * tokenizer's common multi-letter pieces in orders no word has, so copying them cannot lean on knowing the
 * word — only on the tokens that followed the matching key (random letter strings give mostly one-letter tokens).
 */
function fragments(rng: Random, words: readonly string[]): string {
  const n = intBetween(rng, 2, 3);
  let s = '';
  for (let i = 0; i < n; i++) {
    const w = pick(rng, words);
    const len = Math.min(w.length, intBetween(rng, 2, 4));
    const at = rng.int(w.length - len + 1);
    s += w.slice(at, at + len);
  }
  return s;
}


/** Capitalised, all capitals, or with digits (training only). */
function decorate(rng: Random, w: string): string {
  const u = rng.uniform();
  if (u < 0.12) return w[0]!.toUpperCase() + w.slice(1);
  if (u < 0.16) return w.length <= 5 ? w.toUpperCase() : w;
  if (u < 0.24) {
    const d = String(rng.int(rng.uniform() < 0.5 ? 10 : 100));
    return rng.uniform() < 0.7 ? w + d : d + w;
  }
  return w;
}

export interface DrawNamesOptions {
  /** Names that must not be drawn (nor share a first word with a drawn name). */
  avoid?: Iterable<string>;
  /** Reads a file (WordNet, for `training`); default node:fs readFileSync. */
  readFile?: (file: string) => string;
  /** `training`: also join names from these tokenizer pieces (namePiecesOf). */
  pieces?: NamePieces;
}

/**
 * n distinct names of one inventory for one episode. No name is a common word of the prompts (names.ts'
 * reserved list), and no two share their first word (so the first words already tell them apart).
 */
export function drawNames(rng: Random, n: number, inventory: NameInventory, opts: DrawNamesOptions = {}): string[] {
  if (!isNameInventory(inventory)) {
    throw new SyntheticDataError('names', `unknown name inventory ${JSON.stringify(inventory)} (expected one of ${NAME_INVENTORIES.join(', ')})`);
  }
  if (inventory === 'generator') return inventNames(rng, n, { avoid: opts.avoid });
  if (inventory === 'pieces' && !opts.pieces) throw new SyntheticDataError('names', 'inventory pieces joins names from a tokenizer\'s pieces; none were given (training runs pass their tokenizer)');
  const readFile = opts.readFile ?? defaultReadFile;
  const taken = new Set<string>();
  for (const a of opts.avoid ?? []) taken.add(firstWordOf(a));
  let make: Maker;
  if (inventory === 'unseen') make = () => wordFrom(rng, UNSEEN_INVENTORY, [1, 2]);
  else if (inventory === 'unseen-long') make = () => wordFrom(rng, UNSEEN_INVENTORY, [2, 3]);
  else if (inventory === 'letters') make = () => letterString(rng, 3, 8);
  else if (inventory === 'rare') {
    if (n > RARE_WORDS.length) throw new SyntheticDataError('names', `${n} rare words asked for, the list has ${RARE_WORDS.length}`);
    make = () => pick(rng, RARE_WORDS);
  } else if (inventory === 'two-word') make = () => `${inventNames(rng, 1)[0]!} ${inventNames(rng, 1)[0]!}`;
  else if (inventory === 'pieces') make = () => decorate(rng, pieceName(rng, opts.pieces!));
  else {
    // training: one maker for the whole episode (like the evaluation's inventories) or one per name
    const pieces = opts.pieces;
    const shared = rng.uniform() < 0.7 ? trainingMaker(rng, readFile, pieces) : null;
    const twoWord = rng.uniform() < 0.1;
    // In 30% of episodes every name starts with the same 1–4 letters (`plo…`): copying must then follow the
    // matched name token by token past the shared start, not jump to another name that begins alike.
    // (A start that leaves too few usable names, e.g. `ss` before an inventory of s-onsets, is dropped.)
    const prefix = rng.uniform() < 0.3 ? (shared ?? trainingMaker(rng, readFile, pieces))().slice(0, intBetween(rng, 1, 4)) : '';
    let made = 0;
    make = () => {
      const m = shared ?? trainingMaker(rng, readFile, pieces);
      let w = decorate(rng, (made++ < 100 * (n + 1) ? prefix : '') + m());
      if (twoWord || rng.uniform() < 0.05) w += ' ' + decorate(rng, m());
      return w;
    };
  }
  const out: string[] = [];
  for (let tries = 0; out.length < n; tries++) {
    if (tries > 1000 * (n + 1)) throw new SyntheticDataError('names', `could not draw ${n} distinct names from inventory ${inventory}`);
    const w = make();
    const first = firstWordOf(w);
    if (taken.has(first) || unusable(w)) continue;
    taken.add(first);
    out.push(w);
  }
  return out;
}

function firstWordOf(w: string): string {
  return w.split(' ')[0]!.toLowerCase();
}

/** Too short, a reserved word of the prompts, or awkward triple letters (as names.ts). */
function unusable(w: string): boolean {
  return w.split(' ').some((part) => {
    const p = part.toLowerCase();
    return p.length < 2 || isReservedWord(p) || /(.)\1\1/.test(p);
  });
}

function defaultReadFile(f: string): string {
  return readFileSync(f, 'utf8');
}
