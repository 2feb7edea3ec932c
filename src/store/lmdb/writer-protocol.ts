/** The messages between the socket thread's ThreadCommitter and the store's writer thread. */
import type { MessagePort } from 'node:worker_threads';
import type { LmdbFsync } from './durability';

/** What the writer thread is started with. */
export interface WriterData {
  envDir: string;
  fsync: LmdbFsync;
  /** Where results go (a port of their own, so the socket thread can read one synchronously). */
  results: MessagePort;
  /** A counter the writer bumps after each result (Atomics.wait on it while blocked). */
  signal: SharedArrayBuffer;
}

export type WriterRequest =
  /** The batch is the first `length` bytes of `buffer` (transferred). */
  | { kind: 'commit'; id: number; buffer: ArrayBuffer; length: number }
  | { kind: 'close' }
  /** Tests only: the thread dies as on an uncaught error. */
  | { kind: 'crash' };

/**
 * What became of a batch. 'committed': its writes are in the data (only under 'grouped', where the
 * sync follows); 'done': committed and on disk (under 'off': committed), or failed with `error`, as
 * lmdb-js threw it (message and code, mapped by errors.ts).
 */
export interface WriterResult {
  id: number;
  phase: 'committed' | 'done';
  /** The batch's buffer, handed back (transferred) with the first result after the commit. */
  buffer?: ArrayBuffer;
  error?: { message: string; code: string | number | undefined };
}
