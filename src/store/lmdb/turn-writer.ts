/**
 * Batches every write of an event-loop turn into one LMDB write transaction.
 *
 * Writes are queued as closures and run together in one `transactionSync` at the end of the turn
 * (setImmediate). Point reads do not commit: the store answers them from its overlay of the
 * queued writes (see overlay.ts) and otherwise from the committed data. A range read first
 * commits what is queued (`commitNow`), so it sees every earlier write of this process; LMDB
 * readers then see the committed data at once. Writes that must return something computed from
 * the data (trimming) run in the same transaction as the queue (`runNow`).
 */
import type { RootDatabase } from 'lmdb';
import { logger } from '../../log';
import type { StoreError } from '../ports';
import { toStoreError } from './errors';

export class TurnWriter {
  private ops: (() => void)[] = [];
  /** About how many bytes the queued writes add to the file (for the space check before a commit). */
  private bytes = 0;
  private scheduled = false;
  /** flush() callers waiting for the queued writes to commit (all share the turn's one commit). */
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  /**
   * Set once a commit failed for a reason other than a full disk (corrupt data, an I/O error): the
   * queued writes were lost, so the store takes no more. A commit that fails with 'full' loses its
   * writes too, but later writes are tried again (the store reports it through `failed`).
   */
  failure: StoreError | undefined;
  /**
   * Writes were lost to a full store and no flush has been told yet: the next `whenCommitted`
   * rejects with it (once), even if its own turn committed, so that no output waiting for a flush
   * is released for a record that was lost (a failed commit can run before the flush is asked for).
   */
  private unreported: StoreError | undefined;
  /**
   * Transactions committed (for stats): one per turn with writes, plus one per range read or trim
   * that found writes queued.
   */
  commits = 0;

  /**
   * @param finish runs last inside every transaction (records the offset counter with the records).
   * @param onCommit runs after every successful commit (schedules the background sync).
   * @param settled runs after every transaction, committed (`true`) or failed (`false`), before
   *   anything else sees the outcome: the queued writes are now in the data or lost (the store
   *   drops its overlay of them).
   * @param failed runs after a failed transaction, with what lmdb-js threw mapped to a StoreError,
   *   and returns it, possibly reclassified (an I/O error on a file system with no space left is
   *   'full'); it reports and logs a full store itself.
   * @param spaceFor runs before every transaction with about how many bytes it writes, and throws
   *   (a StoreError 'full') when the file system has not that much room to spare: the transaction
   *   then fails without running, as if LMDB had failed it (see LmdbStore: lmdb-js must not meet a
   *   failed write).
   */
  constructor(
    private readonly root: RootDatabase,
    private readonly finish: () => void,
    private readonly onCommit: () => void = () => undefined,
    private readonly settled: (committed: boolean) => void = () => undefined,
    private readonly failed: (e: StoreError, lost: number) => StoreError = (e) => e,
    private readonly spaceFor: (bytes: number) => void = () => undefined,
  ) {}

  get pending(): number { return this.ops.length; }

  /** Queues a write for the end of the turn. */
  queue(op: () => void, bytes = 64): void {
    if (this.failure !== undefined) throw this.failure;
    this.ops.push(op);
    this.bytes += bytes;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        try {
          this.commitNow();
        } catch {
          // Already recorded in `failure` and logged; flush() and later writes report it.
        }
      });
    }
  }

  /**
   * Resolves once the writes queued so far are committed: at the end of the turn, or earlier if a
   * read commits them. Does not commit by itself, so that every write of the turn still goes into
   * the one transaction.
   */
  whenCommitted(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.ops.length === 0) {
      const lost = this.unreported;
      this.unreported = undefined;
      return lost === undefined ? Promise.resolve() : Promise.reject(lost);
    }
    return new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /**
   * A loss nobody waited for is told to the flushes asked for in this turn or at its end (the
   * delivery actor asks for its flush in a setImmediate of the turn that wrote), not to a flush of
   * writes made later, which has nothing to do with it: it expires after two check phases.
   */
  private expire(err: StoreError): void {
    setImmediate(() => setImmediate(() => { if (this.unreported === err) this.unreported = undefined; }));
  }

  /** Forgets a loss not yet told (writing is on again: later flushes are about later writes). */
  forgetLoss(): void { this.unreported = undefined; }

  /** Commits the queued writes now (nothing if none). */
  commitNow(): void {
    if (this.ops.length > 0) this.runNow(() => undefined);
  }

  /** Runs `fn` in one write transaction after the queued writes, and returns its result. */
  runNow<T>(fn: () => T): T {
    if (this.failure !== undefined) throw this.failure;
    const ops = this.ops;
    const waiters = this.waiters;
    const bytes = this.bytes;
    this.ops = [];
    this.waiters = [];
    this.bytes = 0;
    try {
      this.spaceFor(bytes + 4096);
      const result = this.root.transactionSync(() => {
        for (const op of ops) op();
        const r = fn();
        this.finish();
        return r;
      });
      this.commits++;
      this.settled(true);
      const lost = waiters.length > 0 ? this.unreported : undefined;
      if (waiters.length > 0) this.unreported = undefined;
      for (const w of waiters) if (lost === undefined) w.resolve(); else w.reject(lost);
      this.onCommit();
      return result;
    } catch (e) {
      const err = this.failed(toStoreError(e, 'commit'), ops.length);
      this.settled(false);
      for (const w of waiters) w.reject(err);
      // Told now if someone waited for this commit, else to the next flush.
      if (err.code === 'full') {
        this.unreported = waiters.length > 0 ? undefined : err;
        if (this.unreported !== undefined) this.expire(err);
      }
      else {
        this.failure = err;
        logger({ mod: 'lmdb-store' }).error({ err: e, lost: ops.length, code: err.code }, 'store commit failed; the store takes no more writes');
      }
      throw err;
    }
  }
}
