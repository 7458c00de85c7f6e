/**
 * Answer normalization of OpenFlamingo's vqa_metric.py (its port of the official VQA evaluation),
 * applied identically to the prediction and to every human answer.
 */
import { PY_WHITESPACE_CLASS, splitWhitespace } from './ngrams.ts';

const PUNCT = [';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!'];
// Python 3 `\d` in a str pattern matches any Unicode decimal digit.
const COMMA_BETWEEN_DIGITS = /\p{Nd},\p{Nd}/u;
const PERIOD_NOT_BEFORE_DIGIT = /\.(?!\p{Nd})/gu;
// Upstream passes re.UNICODE (= 32) positionally as re.sub's `count`, so at most 32 periods go.
const MAX_PERIOD_REMOVALS = 32;
const PY_STRIP = new RegExp(`^[${PY_WHITESPACE_CLASS}]+|[${PY_WHITESPACE_CLASS}]+$`, 'gu');

const NUMBER_WORDS: ReadonlyMap<string, string> = new Map([
  ['none', '0'], ['zero', '0'], ['one', '1'], ['two', '2'], ['three', '3'], ['four', '4'],
  ['five', '5'], ['six', '6'], ['seven', '7'], ['eight', '8'], ['nine', '9'], ['ten', '10'],
]);
const ARTICLES: ReadonlySet<string> = new Set(['a', 'an', 'the']);

// The upstream contraction table, verbatim in content (including its oddities such as
// "somebody'd" -> "somebodyd" and the capitalised keys that can never match after lowercasing).
const CONTRACTIONS: ReadonlyMap<string, string> = new Map(Object.entries({
  aint: "ain't", arent: "aren't", cant: "can't", couldve: "could've", couldnt: "couldn't",
  "couldn'tve": "couldn't've", "couldnt've": "couldn't've", didnt: "didn't", doesnt: "doesn't",
  dont: "don't", hadnt: "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", hasnt: "hasn't",
  havent: "haven't", hed: "he'd", "hed've": "he'd've", "he'dve": "he'd've", hes: "he's", howd: "how'd",
  howll: "how'll", hows: "how's", "Id've": "I'd've", "I'dve": "I'd've", Im: "I'm", Ive: "I've",
  isnt: "isn't", itd: "it'd", "itd've": "it'd've", "it'dve": "it'd've", itll: "it'll", "let's": "let's",
  maam: "ma'am", mightnt: "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
  mightve: "might've", mustnt: "mustn't", mustve: "must've", neednt: "needn't", notve: "not've",
  oclock: "o'clock", oughtnt: "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
  "'ow'sat": "'ow's'at", shant: "shan't", "shed've": "she'd've", "she'dve": "she'd've",
  "she's": "she's", shouldve: "should've", shouldnt: "shouldn't", "shouldnt've": "shouldn't've",
  "shouldn'tve": "shouldn't've", "somebody'd": 'somebodyd', "somebodyd've": "somebody'd've",
  "somebody'dve": "somebody'd've", somebodyll: "somebody'll", somebodys: "somebody's",
  someoned: "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
  someonell: "someone'll", someones: "someone's", somethingd: "something'd",
  "somethingd've": "something'd've", "something'dve": "something'd've", somethingll: "something'll",
  thats: "that's", thered: "there'd", "thered've": "there'd've", "there'dve": "there'd've",
  therere: "there're", theres: "there's", theyd: "they'd", "theyd've": "they'd've",
  "they'dve": "they'd've", theyll: "they'll", theyre: "they're", theyve: "they've", twas: "'twas",
  wasnt: "wasn't", "wed've": "we'd've", "we'dve": "we'd've", weve: "we've", werent: "weren't",
  whatll: "what'll", whatre: "what're", whats: "what's", whatve: "what've", whens: "when's",
  whered: "where'd", wheres: "where's", whereve: "where've", whod: "who'd", "whod've": "who'd've",
  "who'dve": "who'd've", wholl: "who'll", whos: "who's", whove: "who've", whyll: "why'll",
  whyre: "why're", whys: "why's", wont: "won't", wouldve: "would've", wouldnt: "wouldn't",
  "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", yall: "y'all", "yall'll": "y'all'll",
  "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've",
  "y'all'dve": "y'all'd've", youd: "you'd", "youd've": "you'd've", "you'dve": "you'd've",
  youll: "you'll", youre: "you're", youve: "you've",
}));

/** Step 1: newline/tab to space, then Python `str.strip()`. */
export function cleanWhitespace(s: string): string {
  return s.replaceAll('\n', ' ').replaceAll('\t', ' ').replace(PY_STRIP, '');
}

/** Step 2: punctuation handling. The deletion test looks at the *input* string, not the partly processed one. */
export function processPunctuation(input: string): string {
  const hasDigitComma = COMMA_BETWEEN_DIGITS.test(input);
  let out = input;
  for (const p of PUNCT) {
    const touchesSpace = input.includes(`${p} `) || input.includes(` ${p}`);
    out = out.replaceAll(p, touchesSpace || hasDigitComma ? '' : ' ');
  }
  let removed = 0;
  return out.replace(PERIOD_NOT_BEFORE_DIGIT, (m) => (removed++ < MAX_PERIOD_REMOVALS ? '' : m));
}

/** Steps 3-7: lowercase, whitespace split, number words, articles, contractions, single-space join. */
export function processDigitArticle(input: string): string {
  const words: string[] = [];
  for (const raw of splitWhitespace(input.toLowerCase())) {
    const w = NUMBER_WORDS.get(raw) ?? raw;
    if (!ARTICLES.has(w)) words.push(w);
  }
  return words.map((w) => CONTRACTIONS.get(w) ?? w).join(' ');
}

export function normalizeVqaAnswer(s: string): string {
  return processDigitArticle(processPunctuation(cleanWhitespace(s)));
}
