// File I/O for checkpoints with the error contract: a failing read or write throws ERR_TALARIA_IO naming
// the path and the system's reason; writes are atomic (temp file, fsync, rename) so a crash mid-save
// never leaves a half-written checkpoint where a good one was.
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, readSync } from 'node:fs';
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

/** JSON text parsed, or ERR_TALARIA_FORMAT naming `source` (a path) and the parser's complaint. */
export function parseJsonChecked(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw talariaError('ERR_TALARIA_FORMAT', `${source}: not valid JSON (${(error as Error).message})`);
  }
}

/** A JSON file parsed: ERR_TALARIA_IO when it cannot be read, ERR_TALARIA_FORMAT when it is not JSON. */
export function readJsonChecked(path: string): unknown {
  return parseJsonChecked(readFileChecked(path).toString('utf8'), path);
}

const MAX_READ_BYTES = 2 ** 30; // one read() call moves at most 2 GiB - 1 bytes

/** A file open for reading at any position; every failure is ERR_TALARIA_IO naming the path. */
export interface RandomAccessFile {
  readonly path: string;
  readonly size: number;
  /** Fills `target` with the bytes at [position, position + target.length). */
  readAt(target: Uint8Array, position: number): void;
  close(): void;
}

/**
 * Opens `path` for positioned reads (so a large file is never held in memory whole, and tensors can be
 * read straight into their destination buffers).
 */
export function openRandomAccess(path: string): RandomAccessFile {
  let fd: number;
  let size: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw ioFailure(path, 'open', error);
  }
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    size = stat.size;
  } catch (error) {
    closeSync(fd);
    throw ioFailure(path, 'read', error);
  }
  return {
    path,
    size,
    readAt(target, position) {
      let done = 0;
      while (done < target.length) {
        let n: number;
        try {
          n = readSync(fd, target, done, Math.min(target.length - done, MAX_READ_BYTES), position + done);
        } catch (error) {
          throw ioFailure(path, 'read', error);
        }
        // The file shrank after it was opened (another process rewrote it in place).
        if (n === 0) throw ioFailure(path, 'read', Object.assign(new Error(`unexpected end of file at byte ${position + done}`), { code: 'EOF' }));
        done += n;
      }
    },
    close() {
      closeSync(fd);
    },
  };
}

/**
 * write-file-atomic's sync API issues one write() call, and Linux moves at most 0x7ffff000 bytes per
 * call: a larger file would be cut short without an error. Refuse it before anything is written.
 */
export const MAX_ATOMIC_WRITE_BYTES = 0x7ffff000;

/** Throws ERR_TALARIA_RANGE naming `path` when `bytes` is more than one atomic write can hold. */
export function checkAtomicWriteSize(path: string, bytes: number): void {
  if (bytes > MAX_ATOMIC_WRITE_BYTES)
    throw talariaError('ERR_TALARIA_RANGE', `${path}: ${bytes} bytes exceed the ${MAX_ATOMIC_WRITE_BYTES} bytes an atomic write can hold (save as BF16 to halve the file)`);
}

/** Replaces `path` whole with `data`, or throws ERR_TALARIA_IO naming the path (no temp file is left). */
export function writeFileAtomicChecked(path: string, data: Buffer | string): void {
  checkAtomicWriteSize(path, Buffer.byteLength(data));
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
