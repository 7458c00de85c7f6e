// Invented words ("dax", "blicket", "zorp"): built from syllables so each document can draw fresh names that no
// other document shares, which forces the model to bind them from context rather than memorise them.

import { SyntheticDataError } from './errors.ts';
import { intBetween, pick, type Random } from './random.ts';
import { COLOUR_NAMES, SHAPES, SIZES } from './vocab.ts';

const ONSETS = ['b', 'd', 'f', 'g', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'w', 'z', 'bl', 'br', 'dr', 'fl', 'gr', 'kr', 'pl', 'sk', 'sn', 'tr', 'zw'];
const VOWELS = ['a', 'e', 'i', 'o', 'u', 'oo', 'ee', 'ai', 'ou'];
const CODAS = ['', '', 'x', 'k', 'p', 't', 'g', 'b', 'm', 'n', 'rp', 'sh', 'nk', 'ck', 'l', 'z'];

/**
 * Real words the generator could stumble on; an invented name must never collide with the world's own vocabulary
 * or with common English, or the binding would not be purely in-context.
 */
const RESERVED = new Set<string>([
  ...SHAPES, ...COLOUR_NAMES, ...SIZES,
  'a', 'an', 'the', 'is', 'it', 'of', 'to', 'in', 'on', 'at', 'as', 'be', 'or', 'and', 'this', 'that', 'what', 'yes', 'no', 'top', 'left', 'right', 'bottom', 'center',
  'bat', 'bet', 'bit', 'but', 'bag', 'bib', 'bob', 'bog', 'bug', 'bun', 'dig', 'dog', 'dot', 'dug', 'fat', 'fit', 'fig',
  'fog', 'fun', 'gap', 'get', 'got', 'gum', 'gun', 'kit', 'lap', 'let', 'lit', 'log', 'lot', 'mad', 'map', 'mat', 'men',
  'mob', 'mop', 'mud', 'mug', 'nap', 'net', 'nut', 'pan', 'pat', 'peg', 'pen', 'pet', 'pig', 'pin', 'pit', 'pot', 'pun',
  'pup', 'rat', 'red', 'rib', 'rig', 'rip', 'rot', 'rub', 'rug', 'run', 'rut', 'sat', 'set', 'sit', 'sob', 'sun', 'tab',
  'tag', 'tan', 'tap', 'ten', 'tin', 'tip', 'top', 'tot', 'tub', 'tug', 'van', 'vet', 'wet', 'wig', 'win', 'wit', 'zip',
  'ban', 'bin', 'den', 'din', 'don', 'fan', 'fin', 'gin', 'man', 'nun', 'sin', 'son', 'tun', 'won', 'ton', 'sum', 'bum',
  'dim', 'him', 'rim', 'rum', 'tum', 'gem', 'hem', 'sex', 'box', 'fox', 'fix', 'mix', 'six', 'tax', 'wax', 'lax', 'max',
  'pox', 'sox', 'vex', 'back', 'deck', 'dock', 'duck', 'kick', 'lack', 'lick', 'lock', 'luck', 'neck', 'pick', 'pack',
  'rack', 'rock', 'sack', 'sick', 'sock', 'suck', 'tack', 'tick', 'tuck', 'wick', 'bank', 'dunk', 'junk', 'link', 'pink',
  'rank', 'sink', 'tank', 'wink', 'bash', 'dash', 'fish', 'gush', 'lash', 'mash', 'mesh', 'push', 'rash', 'rush', 'wish',
  'gal', 'pal', 'sal', 'bell', 'fool', 'pool', 'tool', 'boot', 'root', 'toot', 'moon', 'noon', 'soon', 'boon', 'loon',
  'book', 'look', 'took', 'nook', 'rook', 'cook', 'feet', 'meet', 'beet', 'deep', 'keep', 'peep', 'seek', 'week',
  'bait', 'wait', 'rain', 'pain', 'main', 'gain', 'tail', 'mail', 'nail', 'sail', 'rail', 'fail', 'bail', 'pail',
  'out', 'pout', 'loud', 'noun', 'gout', 'bout', 'tout', 'lout', 'rout', 'snot', 'trip', 'trap', 'drop', 'drip',
  'flip', 'flap', 'flat', 'skip', 'snap', 'snip', 'trek', 'grin', 'grip', 'brag', 'brim', 'plan', 'plot', 'plum',
  'slot', 'blot', 'blob', 'drum', 'krill', 'tram', 'trim', 'zen', 'zoo', 'moo', 'boo', 'too', 'see', 'bee', 'fee',
  'lee', 'pee', 'tee', 'wee', 'sue', 'due', 'rue', 'toe', 'foe', 'doe', 'roe', 'woe', 'tie', 'lie', 'pie', 'die',
]);

/** The generator's syllable inventory (other inventories are built beside it: inventories.ts). */
export const GENERATOR_SYLLABLES: { readonly onsets: readonly string[]; readonly vowels: readonly string[]; readonly codas: readonly string[] } = { onsets: ONSETS, vowels: VOWELS, codas: CODAS };

/** One pronounceable syllable: onset + vowel + optional coda. */
function syllable(rng: Random): string {
  return pick(rng, ONSETS) + pick(rng, VOWELS) + pick(rng, CODAS);
}

/** A single invented word with syllables in [minSyl, maxSyl]. May be a reserved word; use inventNames for safe lists. */
export function nonsenseWord(rng: Random, minSyl = 1, maxSyl = 2): string {
  const n = intBetween(rng, minSyl, maxSyl);
  let w = '';
  for (let i = 0; i < n; i++) w += syllable(rng);
  return w;
}

/** Is a word (lower case) one of the world's or common English words that must never serve as a name? */
export function isReservedWord(w: string): boolean {
  return RESERVED.has(w);
}

/** Is a word unusable as an invented name (too short, reserved, or awkward triple letters)? */
export function isReservedName(w: string): boolean {
  return w.length < 3 || w.length > 10 || RESERVED.has(w) || /(.)\1\1/.test(w);
}

/** n distinct invented names, none reserved and none in `avoid`. */
export function inventNames(rng: Random, n: number, opts: { syllables?: [number, number]; avoid?: Iterable<string> } = {}): string[] {
  const [lo, hi] = opts.syllables ?? [1, 2];
  const taken = new Set<string>(opts.avoid ?? []);
  const out: string[] = [];
  for (let tries = 0; out.length < n; tries++) {
    if (tries > 1000 * (n + 1)) {
      throw new SyntheticDataError('inventNames', `could not find ${n} distinct names with syllables [${lo}, ${hi}]`);
    }
    const w = nonsenseWord(rng, lo, hi);
    if (isReservedName(w) || taken.has(w)) continue;
    taken.add(w);
    out.push(w);
  }
  return out;
}
