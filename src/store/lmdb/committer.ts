/**
 * Where a turn's writes are committed: the turn writer (turn-writer.ts) hands each turn's batch
 * (write-batch.ts) to a `Committer` and never asks which one it has.
 *
 * - `ThreadCommitter` (thread-committer.ts, the default): the store's writer thread puts, commits
 *   and fsyncs, so the socket thread spends none of that time. It takes the next batch once the
 *   last has committed, and the batches committed during an fsync share the next one, so under load
 *   the turns that end meanwhile share one transaction, and the transactions one fsync (group
 *   commit): the busier the store, the fewer commits and syncs per record;
 * - `InlineCommitter` (below): one transaction on the calling thread, as the store did before
 *   (`--store-writer inline`; the baseline of bench/ and the path of the unit tests' fake roots).
 */
import type { RootDatabase } from 'lmdb';
import { applyBatch } from './write-batch';
import type { Dbs } from './schema';

/** What a committer tells of a batch, in this order. */
export interface CommitEvents {
  /**
   * The batch's writes are in the data: readers of any thread see them. `buffer`: the batch's
   * buffer, handed back for a later batch.
   */
  committed(buffer?: ArrayBuffer): void;
  /**
   * The batch is finished: committed and, if the committer syncs, on disk; or it failed (`err`),
   * before or after `committed`.
   */
  done(err?: unknown): void;
}

export interface Committer {
  /**
   * `done` means on disk under every fsync policy (the writer syncs each batch itself under
   * 'grouped'), so a flush needs no sync of its own for the batches.
   */
  readonly syncs: boolean;
  /**
   * Commits `batch` in one write transaction. A batch may be handed over once the one before it
   * has committed (it may still be syncing); `done` comes in the order of the batches.
   */
  commit(batch: Buffer, events: CommitEvents): void;
  /** Returns once the batch handed over last has `committed` (or is done): blocks this thread until then. */
  wait(): void;
  /** After every batch's `done`: ends the writer. */
  close(): Promise<void>;
}

/** Commits on the calling thread, before `commit` returns; syncing is left to the store's flush. */
export class InlineCommitter implements Committer {
  readonly syncs = false;

  constructor(private readonly root: Pick<RootDatabase, 'transactionSync'>, private readonly dbs: Dbs) {}

  commit(batch: Buffer, events: CommitEvents): void {
    try {
      this.root.transactionSync(() => applyBatch(this.dbs, batch));
    } catch (e) {
      events.done(e ?? new Error('commit failed'));
      return;
    }
    events.committed(batch.buffer as ArrayBuffer);
    events.done();
  }

  wait(): void {
    // Nothing is ever under way: `commit` has finished by the time it returns.
  }

  close(): Promise<void> { return Promise.resolve(); }
}
