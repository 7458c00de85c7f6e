/**
 * Tux Paint stamps (Debian package `tuxpaint-stamps-default`, GPL-2): ~800 PNG pictures, many of
 * them real photos cut out on a transparent background, each normally with a `.txt` beside it whose
 * first line is the English caption and whose other lines are translations (`de.utf8=Eine Amsel.`).
 * Fetch them with scripts/fetch-tuxpaint.sh (no need to install the 160 MB package).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { FlamingoError } from '../errors.ts';

export interface TuxpaintItem {
  /** Absolute path of the PNG. */
  path: string;
  /** English caption, e.g. "A blackbird." */
  caption: string;
  /** Folder below stamps/, '/'-separated, e.g. "animals/birds". */
  category: string;
}

export interface TuxpaintScan {
  items: TuxpaintItem[];
  /** PNGs left out because they have no caption (mostly `*_mirror.png` variants). */
  skipped: string[];
  /** The stamps folder that was read. */
  root: string;
}

export class TuxpaintMissingError extends FlamingoError {
  constructor(tried: string[]) {
    super(
      `Tux Paint stamps not found (looked in ${tried.join(', ')}); run scripts/fetch-tuxpaint.sh ` +
        '(downloads the Debian package tuxpaint-stamps-default and extracts only its PNG and TXT files)',
    );
  }
}

/** Where fetch-tuxpaint.sh puts the data: $FLAMINGO_DATA/tuxpaint, else ~/.cache/flamingo-ts/tuxpaint. */
export function defaultTuxpaintDir(): string {
  const base = process.env.FLAMINGO_DATA ?? join(homedir(), '.cache', 'flamingo-ts');
  return join(base, 'tuxpaint');
}

/** A cache folder (with stamps/ inside) or a stamps folder itself → the stamps folder, or null. */
function stampsRoot(dir: string): string | null {
  if (existsSync(join(dir, 'stamps')) && statSync(join(dir, 'stamps')).isDirectory()) return join(dir, 'stamps');
  if (existsSync(dir) && statSync(dir).isDirectory()) return dir;
  return null;
}

/** Candidate locations in search order: explicit dir only, or the cache then an installed package. */
export function findTuxpaintRoot(dir?: string): string | null {
  const tries = dir ? [dir] : [defaultTuxpaintDir(), '/usr/share/tuxpaint/stamps'];
  for (const t of tries) {
    const r = stampsRoot(t);
    if (r) return r;
  }
  return null;
}

// Translation lines: locale, optional _REGION and @variant, then ".utf8=" (e.g. "sr@latin.utf8=").
const LOCALE_LINE = /^[a-z]{2,3}(_[A-Z]{2})?(@[a-z]+)?\.utf8=/;

/** The English caption of a stamp .txt: its first line that is not a translation, trimmed. */
export function parseStampCaption(text: string): string | null {
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '') continue;
    return LOCALE_LINE.test(line) ? null : line;
  }
  return null;
}

function walkPngs(dir: string, out: string[]): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) walkPngs(p, out);
    else if (entry.isFile() && entry.name.toLowerCase().endsWith('.png')) out.push(p);
  }
}

/** All captioned stamps plus the list of skipped ones. Sorted by path, so order is stable. */
export function scanTuxpaint(dir?: string): TuxpaintScan {
  const root = findTuxpaintRoot(dir);
  if (!root) throw new TuxpaintMissingError(dir ? [dir] : [defaultTuxpaintDir(), '/usr/share/tuxpaint/stamps']);
  const pngs: string[] = [];
  walkPngs(root, pngs);
  pngs.sort();
  const items: TuxpaintItem[] = [];
  const skipped: string[] = [];
  for (const path of pngs) {
    const txt = path.slice(0, -4) + '.txt';
    const caption = existsSync(txt) ? parseStampCaption(readFileSync(txt, 'utf8')) : null;
    if (!caption) {
      skipped.push(path);
      continue;
    }
    const category = relative(root, join(path, '..')).split(sep).join('/');
    items.push({ path, caption, category });
  }
  return { items, skipped, root };
}

/** Captioned stamps only; see scanTuxpaint for the skipped count. */
export function loadTuxpaint(dir?: string): TuxpaintItem[] {
  return scanTuxpaint(dir).items;
}
