/**
 * Free-space checks around commits. lmdb-js must never meet a failed write (see FREE_RESERVE), so
 * the store refuses a commit the file system may not have room for, and reads an I/O error with
 * almost no space left as a full store.
 */
import { statfsSync } from 'node:fs';
import { StoreError } from '../ports';

/**
 * Free bytes the file system keeps beyond what a commit writes: below that the commit is not tried
 * and counts as failed for lack of space. lmdb-js must not meet a failed write: lmdb-js 3.5.6
 * formats the message of a write that fails with an errno (ENOSPC) into a 100-byte heap buffer it
 * overruns (mdb.c, mdb_page_flush: `last_error = malloc(100); sprintf(...)`), and the process then
 * aborts ("munmap_chunk(): invalid pointer") or carries a corrupt heap. A short write is reported
 * as EIO without that message; an I/O error with less than this free also counts as full.
 */
export const FREE_RESERVE = 1024 * 1024;
/** Free bytes the probe wants before it turns writing back on (more than the reserve: no flapping). */
export const PROBE_FREE = 4 * FREE_RESERVE;
/** What the probe writes (and removes again): a write of some pages, not only of the meta page. */
export const PROBE_BYTES = 64 * 1024;

/** Free bytes for an unprivileged writer on the file system holding `dir` (Infinity if unknown). */
export function freeBytes(dir: string): number {
  try {
    const f = statfsSync(dir);
    return f.bavail * f.bsize;
  } catch {
    return Infinity;
  }
}

/** Before a commit of about `bytes`: the file system has room for them and the reserve (statfs, about 1 µs). */
export function ensureSpace(dir: string, bytes: number): void {
  const free = freeBytes(dir);
  if (free < FREE_RESERVE + 2 * bytes) {
    throw new StoreError(`commit: store full (${free} bytes free on the file system, ${bytes} to write and ${FREE_RESERVE} kept in reserve)`, 'full');
  }
}

/** A failed commit's error, with an I/O error on a file system without space left reported as full. */
export function fullIfNoSpace(err: StoreError, dir: string): StoreError {
  if (err.code === 'io' && freeBytes(dir) < FREE_RESERVE) {
    return new StoreError(`commit: store full (${err.message}; the file system has no space left)`, 'full', { cause: err });
  }
  return err;
}
