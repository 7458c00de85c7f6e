// The closed vocabulary of the synthetic world: every word a generator can say about an image lives here,
// so text, rendering and tests agree on names and colour values.

export const SHAPES = ['circle', 'square', 'triangle', 'star', 'cross', 'ring', 'diamond'] as const;
export type ShapeName = (typeof SHAPES)[number];

/** Object colours, chosen so every pair is at least ~85 apart in RGB (pixels can be classified back to names). */
export const COLOURS = {
  red: [220, 30, 30],
  green: [30, 170, 50],
  blue: [35, 70, 225],
  yellow: [245, 220, 35],
  purple: [140, 45, 185],
  orange: [245, 135, 20],
  white: [245, 245, 245],
  black: [15, 15, 15],
  grey: [128, 128, 128],
  pink: [250, 140, 200],
  brown: [125, 75, 30],
} as const satisfies Record<string, readonly [number, number, number]>;
export type ColourName = keyof typeof COLOURS;
export const COLOUR_NAMES = Object.keys(COLOURS) as ColourName[];

/** Background colours, each at least ~70 away from every object colour so objects never blend into the page. */
export const BACKGROUNDS = {
  teal: [40, 115, 120],
  sand: [205, 190, 150],
  sky: [150, 190, 225],
  navy: [35, 40, 90],
  mint: [170, 220, 190],
  lavender: [190, 170, 225],
} as const satisfies Record<string, readonly [number, number, number]>;
export type BackgroundName = keyof typeof BACKGROUNDS;
export const BACKGROUND_NAMES = Object.keys(BACKGROUNDS) as BackgroundName[];

export const TEXTURES = ['plain', 'stripes', 'checker', 'noise'] as const;
export type TextureName = (typeof TEXTURES)[number];
/** Texture amplitude (± per channel); small so backgrounds stay far from object colours. */
export const TEXTURE_AMPLITUDE = 12;

export const SIZES = ['small', 'large'] as const;
export type SizeName = (typeof SIZES)[number];
/** Object radius as a fraction of the image side. Large still fits inside one 3x3 grid cell. */
export const SIZE_RADIUS: Record<SizeName, number> = { small: 0.095, large: 0.155 };

/** Named positions: cells of a 3x3 grid (column, row). Objects in a scene occupy distinct cells, so they never overlap. */
export const POSITIONS = {
  'top left': [0, 0],
  top: [1, 0],
  'top right': [2, 0],
  left: [0, 1],
  center: [1, 1],
  right: [2, 1],
  'bottom left': [0, 2],
  bottom: [1, 2],
  'bottom right': [2, 2],
} as const satisfies Record<string, readonly [number, number]>;
export type PositionName = keyof typeof POSITIONS;
export const POSITION_NAMES = Object.keys(POSITIONS) as PositionName[];

/** Phrase used in descriptions: "a red star on the left", "a blue ring in the center". */
export function positionPhrase(p: PositionName): string {
  if (p === 'center') return 'in the center';
  if (p === 'left' || p === 'right') return `on the ${p}`;
  return `at the ${p}`;
}

const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
export function numberWord(n: number): string {
  return NUMBER_WORDS[n] ?? String(n);
}

export function plural(noun: string, n: number): string {
  if (n === 1) return noun;
  if (noun.endsWith('s') || noun.endsWith('x')) return `${noun}es`;
  return `${noun}s`;
}

/** "a" / "an" for the word that follows. */
export function article(nextWord: string): string {
  return /^[aeiou]/.test(nextWord) ? 'an' : 'a';
}
