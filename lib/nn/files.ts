// File I/O for checkpoints with the error contract: a failing read or write throws ERR_TALARIA_IO naming
// the path and the system's reason; writes are atomic (temp file, fsync, rename) so a crash mid-save
// never leaves a half-written checkpoint where a good one was.
import { mkdirSync, readFileSync } from 'node:fs';
import writeFileAtomic from 'write-file-atomic';
import { talariaError } from '../native.js';

function ioFailure(path: string, doing: string, error: unknown): Error {
  const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  return talariaError('ERR_TALARIA_IO', `${path}: cannot ${doing} (${reason}: ${(error as Error).message})`);
}

/** The whole file, or ERR_TALARIA_IO naming the path. */
export function readFileChecked(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw ioFailure(path, 'read', error);
  }
}

/** Replaces `path` whole with `data`, or throws ERR_TALARIA_IO naming the path (no temp file is left). */
export function writeFileAtomicChecked(path: string, data: Buffer | string): void {
  try {
    writeFileAtomic.sync(path, data, { fsync: true });
  } catch (error) {
    throw ioFailure(path, 'write', error);
  }
}

/** Creates `dir` and its parents when missing, or throws ERR_TALARIA_IO naming it. */
export function makeDirectoryChecked(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw ioFailure(dir, 'create the directory', error);
  }
}
