/**
 * The one error base class. Every error the project throws on purpose extends `FlamingoError`, so a
 * caller (the CLI, the server, a library user) can tell "the input was wrong" from "the program is
 * wrong" with one `instanceof`, and report it as one line: the message says what and where, the
 * optional `hint` says what to do about it.
 *
 * This module sits below every layer (it imports nothing) so that engine/ can use it as freely as cli/.
 */

/** Process exit code for an error: 1 for bad data, files or models; 2 for bad usage (options, arguments). */
export type ExitCode = 1 | 2;

export interface FlamingoErrorOptions {
  /** What the user can do about it, e.g. "pass --model DIR" (printed after the message). */
  hint?: string;
  cause?: unknown;
}

export class FlamingoError extends Error {
  readonly hint: string | undefined;

  constructor(message: string, options: FlamingoErrorOptions = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    // The subclass's own name ("SafetensorsError", …), without each subclass repeating it.
    this.name = new.target.name;
    this.hint = options.hint;
  }

  /** Bad data by default; `UsageError` overrides. */
  get exitCode(): ExitCode {
    return 1;
  }
}

/** A wrong command-line option or argument, or a wrong option value passed to a library function. */
export class UsageError extends FlamingoError {
  override get exitCode(): ExitCode {
    return 2;
  }
}

/**
 * A broken invariant of the code itself (a bug in flamingo-ts, not bad input): the message names the
 * place and what did not hold. The server answers it with 500, like any error that is not about the request.
 */
export class InternalError extends FlamingoError {
  constructor(where: string, message: string) {
    super(`internal error in ${where}: ${message} (a bug in flamingo-ts; please report it)`);
  }
}

/** Node's own argument parser (`node:util` parseArgs) reports unknown or malformed options with these codes. */
export function isParseArgsError(e: unknown): e is Error & { code: string } {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && (e as NodeJS.ErrnoException).code!.startsWith('ERR_PARSE_ARGS');
}

/** A failed system call (ENOENT, EACCES, …) with the path it was about. */
export function isSystemError(e: unknown): e is NodeJS.ErrnoException & { code: string } {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && typeof (e as NodeJS.ErrnoException).syscall === 'string';
}

/** Exit code for any thrown value: a `FlamingoError` says its own; parseArgs errors are usage; everything else 1. */
export function exitCodeOf(e: unknown): ExitCode {
  if (e instanceof FlamingoError) return e.exitCode;
  if (isParseArgsError(e)) return 2;
  return 1;
}

const SYSCALL_WORDS: Record<string, string> = {
  ENOENT: 'no such file or directory', EACCES: 'permission denied', EISDIR: 'is a directory', ENOTDIR: 'not a directory',
  ENOSPC: 'no space left on device', EMFILE: 'too many open files', EEXIST: 'already exists', EROFS: 'read-only file system',
};

/**
 * One line describing an error for a person: the message with its hint, or for errors that are not
 * ours (a bug, or a Node/system error we did not wrap) the class name so the kind is visible.
 */
export function describeError(e: unknown): string {
  if (e instanceof FlamingoError) return e.hint ? `${e.message} (hint: ${e.hint})` : e.message;
  if (isParseArgsError(e)) return e.message;
  if (isSystemError(e)) {
    const what = SYSCALL_WORDS[e.code] ?? e.code;
    return e.path !== undefined ? `cannot ${e.syscall} ${e.path}: ${what}` : `${e.syscall} failed: ${what}`;
  }
  if (e instanceof Error) return `${e.name}: ${e.message.split('\n')[0]}`;
  return String(e);
}
