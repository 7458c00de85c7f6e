// Language about scenes: alt-text, long descriptions, paraphrased captions and VQA-style question–answer pairs.
// Everything is derived from the scene JSON, so text and pixels cannot disagree.

import { pick, sample, type Random } from './random.ts';
import type { Scene, SceneObject } from './types.ts';
import {
  COLOUR_NAMES, POSITIONS, SHAPES, article, numberWord, plural, positionPhrase,
  type ColourName, type PositionName, type ShapeName,
} from './vocab.ts';

interface Group {
  members: SceneObject[];
  first: SceneObject;
}

function groupBy(objects: readonly SceneObject[], key: (o: SceneObject) => string): Group[] {
  const groups = new Map<string, Group>();
  for (const o of objects) {
    const k = key(o);
    const g = groups.get(k);
    if (g) g.members.push(o);
    else groups.set(k, { members: [o], first: o });
  }
  return [...groups.values()];
}

/** "a", "b and c", "a, b and c". */
export function joinList(items: readonly string[]): string {
  if (items.length <= 1) return items[0] ?? '';
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

/** "a red circle" / "two red circles"; words is the noun phrase without the determiner. */
function counted(n: number, words: string[]): string {
  const noun = plural(words[words.length - 1]!, n);
  const phrase = [...words.slice(0, -1), noun].join(' ');
  return n === 1 ? `${article(phrase)} ${phrase}` : `${numberWord(n)} ${phrase}`;
}

/** Short alt-text: colours and shapes only ("a red circle", "two blue squares and a red star"). */
export function altText(scene: Scene): string {
  const groups = groupBy(scene.objects, (o) => `${o.colour} ${o.shape}`);
  return joinList(groups.map((g) => counted(g.members.length, [g.first.colour, g.first.shape])));
}

/** Where a group is: a shared column or row when there is one, else each member's cell. */
function groupLocation(members: readonly SceneObject[]): string {
  if (members.length === 1) return positionPhrase(members[0]!.position);
  const cols = new Set(members.map((m) => POSITIONS[m.position][0]));
  const rows = new Set(members.map((m) => POSITIONS[m.position][1]));
  if (cols.size === 1 && cols.has(0)) return 'on the left';
  if (cols.size === 1 && cols.has(2)) return 'on the right';
  if (rows.size === 1 && rows.has(0)) return 'at the top';
  if (rows.size === 1 && rows.has(2)) return 'at the bottom';
  return joinList(members.map((m) => positionPhrase(m.position)));
}

/** Long description with sizes and locations: "two small blue squares on the left and a large red star in the center". */
export function longDescription(scene: Scene): string {
  const groups = groupBy(scene.objects, (o) => `${o.size} ${o.colour} ${o.shape}`);
  return joinList(
    groups.map((g) => `${counted(g.members.length, [g.first.size, g.first.colour, g.first.shape])} ${groupLocation(g.members)}`),
  );
}

const capitalise = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

/** Caption paraphrases; each takes the alt-text, the long description and the background name. */
export const CAPTION_TEMPLATES: ReadonlyArray<(alt: string, long: string, bg: string) => string> = [
  // "There is a red circle and two squares" / "There are two squares and a red circle": agree with the first item.
  (alt) => `A picture of ${alt}.`,
  (_alt, long) => `${capitalise(long)}.`,
  (_alt, long) => `An image with ${long}.`,
  (alt, _long, bg) => `There ${/^(a|an) /.test(alt) ? 'is' : 'are'} ${alt} on a ${bg} background.`,
  (_alt, long) => `This image shows ${long}.`,
  (alt, _long, bg) => `${capitalise(alt)} on a ${bg} background.`,
  (alt) => `A simple drawing of ${alt}.`,
];

/** All caption paraphrases of a scene, in template order. */
export function captionVariants(scene: Scene): string[] {
  const alt = altText(scene);
  const long = longDescription(scene);
  return CAPTION_TEMPLATES.map((t) => t(alt, long, scene.background.colour));
}

export function caption(rng: Random, scene: Scene): string {
  return pick(rng, captionVariants(scene));
}

/** A page's caption style (world option `conventions: "page"`): one template, numbers as words or digits. */
export interface CaptionStyle {
  /** Index into CAPTION_TEMPLATES. */
  template: number;
  digits: boolean;
}

const NUMBER_WORDS_TO_DIGITS: Record<string, number> = { two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9 };
const COUNT_WORDS = /\b(two|three|four|five|six|seven|eight|nine)\b/gi;

/** The scene's caption in a page's style ("Two red circles." / "2 red circles."). */
export function captionInStyle(scene: Scene, style: CaptionStyle): string {
  const text = captionVariants(scene)[style.template];
  if (text === undefined) throw new RangeError(`caption template ${style.template} does not exist (0..${CAPTION_TEMPLATES.length - 1})`);
  // Counts are the only number words captions use (a single object takes an article).
  return style.digits ? text.replace(COUNT_WORDS, (w) => String(NUMBER_WORDS_TO_DIGITS[w.toLowerCase()])) : text;
}

export type QAKind = 'count' | 'colour' | 'shape' | 'exists' | 'where' | 'size' | 'background' | 'motion';

/** Question kinds about a still scene (`motion` is asked of videos only). */
export const SCENE_QA_KINDS = ['count', 'colour', 'shape', 'exists', 'where', 'size', 'background'] as const satisfies readonly QAKind[];

export interface QAPair {
  kind: QAKind;
  question: string;
  /** VQA style: lowercase, short, numbers as digits. */
  answer: string;
}

/**
 * An answer as a sentence rather than VQA's bare word ("it is red", "there are 3", "yes, there is"): pages with
 * `conventions: "page"` answer some kinds this way.
 */
export function phrasedAnswer(qa: QAPair): string {
  switch (qa.kind) {
    case 'count': return qa.answer === '1' ? 'there is 1' : `there are ${qa.answer}`;
    case 'exists': return qa.answer === 'yes' ? 'yes, there is' : 'no, there is not';
    case 'shape': return `it is ${article(qa.answer)} ${qa.answer}`;
    case 'where': return `it is ${positionPhrase(qa.answer as PositionName)}`;
    default: return `it is ${qa.answer}`;
  }
}

/**
 * One question about the scene, its kind drawn first (uniformly over the kinds the scene allows) and then a
 * question of that kind: drawing from qaPairs directly would make most of them counting questions.
 */
export function balancedQuestion(
  rng: Random, scene: Scene, vocab: { shapes?: readonly ShapeName[]; colours?: readonly ColourName[] } = {},
): QAPair {
  const qa = qaPairs(rng, scene, vocab);
  const kinds = [...new Set(qa.map((q) => q.kind))];
  const kind = kinds[rng.int(kinds.length)]!;
  const ofKind = qa.filter((q) => q.kind === kind);
  return ofKind[rng.int(ofKind.length)]!;
}

function countOf(scene: Scene, pred: (o: SceneObject) => boolean): number {
  return scene.objects.filter(pred).length;
}

/**
 * Every unambiguous question about the scene, plus negatives for "is there" and "how many" drawn with rng.
 * Questions about a specific object are only asked when the description picks out exactly one object.
 */
export function qaPairs(
  rng: Random,
  scene: Scene,
  vocab: { shapes?: readonly ShapeName[]; colours?: readonly ColourName[] } = {},
): QAPair[] {
  const shapes = vocab.shapes ?? SHAPES;
  const colours = vocab.colours ?? COLOUR_NAMES;
  const objs = scene.objects;
  const out: QAPair[] = [];
  const n = objs.length;
  out.push({ kind: 'count', question: 'how many objects are there?', answer: String(n) });
  out.push({ kind: 'background', question: 'what colour is the background?', answer: scene.background.colour });

  const presentShapes = [...new Set(objs.map((o) => o.shape))];
  const absentShapes = shapes.filter((s) => !presentShapes.includes(s));
  for (const s of [...presentShapes, ...sample(rng, absentShapes, 1)]) {
    out.push({ kind: 'count', question: `how many ${plural(s, 2)} are there?`, answer: String(countOf(scene, (o) => o.shape === s)) });
  }
  const presentColours = [...new Set(objs.map((o) => o.colour))];
  for (const c of presentColours) {
    out.push({ kind: 'count', question: `how many ${c} objects are there?`, answer: String(countOf(scene, (o) => o.colour === c)) });
  }

  for (const s of presentShapes) {
    const members = objs.filter((o) => o.shape === s);
    const cs = new Set(members.map((o) => o.colour));
    // "what colour is the square?" is answerable when every square has the same colour.
    if (cs.size === 1) out.push({ kind: 'colour', question: `what colour is the ${s}?`, answer: members[0]!.colour });
  }
  for (const c of presentColours) {
    const members = objs.filter((o) => o.colour === c);
    const ss = new Set(members.map((o) => o.shape));
    if (ss.size === 1) out.push({ kind: 'shape', question: `what shape is the ${c} object?`, answer: members[0]!.shape });
  }

  const seen = new Set<string>();
  for (const o of objs) {
    const key = `${o.colour} ${o.shape}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ kind: 'exists', question: `is there ${article(o.colour)} ${key}?`, answer: 'yes' });
    const members = objs.filter((m) => m.colour === o.colour && m.shape === o.shape);
    if (members.length === 1) {
      out.push({ kind: 'where', question: `where is the ${key}?`, answer: o.position });
      out.push({ kind: 'size', question: `is the ${key} small or large?`, answer: o.size });
    }
  }
  // One negative existence question: a colour–shape pair absent from the scene.
  for (let tries = 0; tries < 20; tries++) {
    const c = pick(rng, colours);
    const s = pick(rng, shapes);
    if (!seen.has(`${c} ${s}`)) {
      out.push({ kind: 'exists', question: `is there ${article(c)} ${c} ${s}?`, answer: 'no' });
      break;
    }
  }
  return out;
}

