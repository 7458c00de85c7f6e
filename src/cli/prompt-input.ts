/**
 * Where `flamingo generate` gets its prompt: `--prompt TEXT`, or `--prompt-file PATH` (`-` = standard input) for
 * prompts longer than one shell argument (128 KiB on Linux). Files are read up to a byte limit, never trusted to
 * end (a FIFO or /dev/zero is cut off at the limit), and must be UTF-8.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { FlamingoError, UsageError } from '../errors.ts';

/** Largest prompt file accepted: far beyond any model's context, small enough to tokenise quickly. */
export const MAX_PROMPT_BYTES = 4 * 1024 * 1024;

export class PromptFileError extends FlamingoError {}

function decode(bytes: Buffer, where: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new PromptFileError(`prompt file ${where} is not valid UTF-8 text`);
  }
}

/** Read at most `limit` + 1 bytes from an open descriptor (sync, so a pipe or device never runs unbounded). */
function readBounded(fd: number, limit: number, where: string): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const buf = Buffer.allocUnsafe(Math.min(1 << 20, limit + 1 - total));
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      // A non-blocking stdin (a terminal or some pipes) says EAGAIN when no data is ready yet: wait and retry.
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10); continue; }
      throw e;
    }
    if (n === 0) break;
    chunks.push(buf.subarray(0, n));
    total += n;
    if (total > limit) throw new PromptFileError(`prompt file ${where} is larger than ${limit} bytes`);
  }
  return Buffer.concat(chunks, total);
}

/** The prompt text from exactly one of --prompt / --prompt-file. */
export function readPrompt(prompt: string | undefined, promptFile: string | undefined, limit = MAX_PROMPT_BYTES): string {
  if (prompt !== undefined && promptFile !== undefined) throw new UsageError('give either --prompt or --prompt-file, not both');
  if (prompt !== undefined) return prompt;
  if (promptFile === undefined) throw new UsageError('--prompt TEXT or --prompt-file PATH is required');
  if (promptFile === '-') return decode(readBounded(0, limit, '(standard input)'), '(standard input)');
  let fd: number;
  try {
    fd = openSync(promptFile, 'r');
  } catch (e) {
    throw new PromptFileError(`cannot open prompt file ${promptFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new PromptFileError(`prompt file ${promptFile} is a directory`);
    if (st.isFile() && st.size > limit) throw new PromptFileError(`prompt file ${promptFile} is ${st.size} bytes, larger than ${limit}`);
    return decode(readBounded(fd, limit, promptFile), promptFile);
  } finally {
    closeSync(fd);
  }
}
