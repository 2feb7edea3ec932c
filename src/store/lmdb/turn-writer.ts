/**
 * Batches every write of an event-loop turn into one LMDB write transaction.
 *
 * Writes are queued as closures and run together in one `transactionSync` at the end of the turn
 * (setImmediate). A read first commits what is queued (`commitNow`), so it sees every earlier write
 * of this process; LMDB readers then see the committed data at once. Writes that must return
 * something computed from the data (trimming) run in the same transaction as the queue (`runNow`).
 */
import type { RootDatabase } from 'lmdb';
import { logger } from '../../log';
import type { StoreError } from '../ports';
import { toStoreError } from './errors';

export class TurnWriter {
  private ops: (() => void)[] = [];
  private scheduled = false;
  /** Set once a commit failed: the queued writes were lost, so the store takes no more. */
  failure: StoreError | undefined;
  /** Transactions committed (for stats: one per turn with writes, plus one per read after a write). */
  commits = 0;

  /**
   * @param finish runs last inside every transaction (records the offset counter with the records).
   * @param flags transactionSync flags (whether the commit waits for its fsync).
   */
  constructor(
    private readonly root: RootDatabase,
    private readonly finish: () => void,
    private readonly flags: number,
  ) {}

  get pending(): number { return this.ops.length; }

  /** Queues a write for the end of the turn. */
  queue(op: () => void): void {
    if (this.failure !== undefined) throw this.failure;
    this.ops.push(op);
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

  /** Commits the queued writes now (nothing if none). */
  commitNow(): void {
    if (this.ops.length > 0) this.runNow(() => undefined);
  }

  /** Runs `fn` in one write transaction after the queued writes, and returns its result. */
  runNow<T>(fn: () => T): T {
    if (this.failure !== undefined) throw this.failure;
    const ops = this.ops;
    this.ops = [];
    try {
      const result = this.root.transactionSync(() => {
        for (const op of ops) op();
        const r = fn();
        this.finish();
        return r;
      }, this.flags);
      this.commits++;
      return result;
    } catch (e) {
      this.failure = toStoreError(e, 'commit');
      logger({ mod: 'lmdb-store' }).error({ err: e, lost: ops.length, code: this.failure.code }, 'store commit failed; the store takes no more writes');
      throw this.failure;
    }
  }
}
