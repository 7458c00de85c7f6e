/**
 * Whole-file reads and writes past Node's 2 GiB-per-call limit, in chunks.
 */
import * as fs from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { FlamingoError } from '../errors.ts';

/** Largest single read/write request; one fs call is limited to 2 GiB. */
export const IO_CHUNK = 1 << 30;

/** A file that cannot be read whole (larger than a Buffer can hold, or changed while reading). */
export class FileReadError extends FlamingoError {
  constructor(readonly file: string, readonly reason: string) {
    super(`${file}: ${reason}`);
  }
}

/**
 * Read a whole file into one unpooled Buffer (own ArrayBuffer, byteOffset 0, so file alignment is memory alignment).
 * Unlike fs.readFileSync this works past 2 GiB (up to the 4 GiB Buffer limit). Throws FileReadError, or the
 * system error of open/read.
 */
export function readFileOnce(file: string): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    if (size > bufferConstants.MAX_LENGTH) throw new FileReadError(file, `file is ${size} bytes, larger than the ${bufferConstants.MAX_LENGTH}-byte Buffer limit`);
    const buf = Buffer.allocUnsafeSlow(size);
    let off = 0;
    while (off < size) {
      const got = fs.readSync(fd, buf, off, Math.min(size - off, IO_CHUNK), off);
      if (got === 0) throw new FileReadError(file, `file shrank while reading (${off} of ${size} bytes)`);
      off += got;
    }
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

/** Why a whole-file read failed, without the file name (the caller's error names it). */
export function readFailure(err: unknown): string {
  return err instanceof FileReadError ? err.reason : (err as Error).message;
}

/** Write all of `bytes` at the file position. */
export function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += fs.writeSync(fd, bytes, off, Math.min(bytes.length - off, IO_CHUNK));
}
