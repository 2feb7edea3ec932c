/**
 * The port through which the delivery actor reads logs: a sign-in backlog and a `history` page.
 * Embedded, every log is in this node's store (`LocalReads`, below); in a partitioned cluster a
 * conversation's log is stored by the owner of its partition, and the cluster's implementation
 * (cluster/reads.ts) asks the owner, so a backlog may have to wait for a page to arrive and a
 * history page may be answered later.
 */
import type { Request } from '../protocol/frames';
import type { Membership, Store } from '../store/ports';
import { Backlog, type BacklogCursor, type BacklogRange } from './backlog';
import { readHistory, type HistoryAnnotate, type HistoryAnswer } from './history';

/** A backlog as it is read: frames in offset order, some of which may still be on their way. */
export interface BacklogSource {
  /**
   * Up to `n` frames that are here now, in offset order (a `limited` notice may come as one more),
   * and the offset of the last record taken; `last` 0: none taken now (done, unless `waiting`).
   */
  next(n: number): { frames: string[]; last: number };
  /** A promise while more may come but none is here yet (it never rejects); undefined otherwise. */
  waiting(): Promise<void> | undefined;
  /** The reader is gone (its connection closed, or a new pass began): nothing more is fetched. */
  close(): void;
  /**
   * Part of it could not be read (another node did not answer in time): the pass ended early and
   * must not count as caught up. Absent: always complete.
   */
  incomplete?(): boolean;
}

export interface LogReads {
  backlog(range: BacklogRange, memberships: Membership[]): BacklogSource;
  /** A `history` page for `account`; frames of it at most `maxBytes` (see history.ts). */
  history(account: string, r: Request, maxBytes: number): HistoryAnswer | Promise<HistoryAnswer>;
}

/** Where a backlog starts: the account's memberships, or the cursors of a page read before (backlog.ts). */
export type BacklogStart = { memberships: Membership[] } | { cursors: BacklogCursor[] };

/** Reads of this node's own store: what every log answers embedded, and a cluster node answers for what it stores. */
export class LocalReads implements LogReads {
  /** `annotate`: the added keys of history answers (read positions), once the node has them. */
  constructor(private readonly store: Store, private readonly annotate: () => HistoryAnnotate | undefined = () => undefined) {}

  backlog(range: BacklogRange, memberships: Membership[]): Backlog {
    return this.open(range, { memberships });
  }

  /** A backlog of this store, from its start or read on from where a page before ended. */
  open(range: BacklogRange, start: BacklogStart): Backlog {
    return 'cursors' in start ? Backlog.resume(this.store.log, range, start.cursors) : new Backlog(this.store.log, range, start.memberships);
  }

  history(account: string, r: Request, maxBytes: number): HistoryAnswer {
    return readHistory(this.store.log, this.store.positions, this.store.epoch, account, r, maxBytes, this.annotate());
  }
}
