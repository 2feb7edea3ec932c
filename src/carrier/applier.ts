/**
 * The one applier of decided output, for both modes: each operation (carrier/ops.ts) carried out
 * on this node's store and the sockets it holds. Embedded, a batch is applied as it is decided; in a
 * cluster, as its ledger entry is replayed. Either way the same code runs, so a post, a state or an
 * answer means the same thing in both.
 */
import { Code } from '../protocol/codes';
import { refusedAnswer, STORAGE_FULL_TEXT } from '../protocol/frames';
import type { ChangeMade } from '../actors/edits';
import type { Post, StateOut } from '../actors/envelopes';
import type { ConvId, NewEntry, Positions } from '../store/ports';
import type { Op } from './ops';

/**
 * A ledger entry being applied (cluster mode): its records are numbered from `first` on, and stored
 * only where `stores(conv)` says; the rest of what it does (sockets, answers, states) happens alike.
 */
export interface EntryContext {
  first: number;
  stores(conv: ConvId): boolean;
}

/** What the applier writes through: the delivery actor (src/actors/delivery.ts) and the store's positions. */
export interface ApplyTarget {
  readonly delivery: {
    post(p: Post, now: number): void;
    changed(d: ChangeMade, conn: number, callback: string | undefined, now: number): void;
    afterDurable(fn: () => void, lost?: () => void): void;
    importRecord(e: NewEntry, offset?: number): number;
    trimApplied(conv: ConvId, upTo: number): void;
    beginEntry(first: number, stores: (conv: ConvId) => boolean): void;
    endEntry(): void;
  };
  readonly positions: Pick<Positions, 'join'>;
  /** An actor's new state, through the node (revocations merged, group counts kept) into the store. */
  state(s: StateOut): void;
  /** Whether a socket of this node has the id `conn` (answers for other nodes' sockets are theirs). */
  holds(conn: number): boolean;
  /** A frame to a socket of this node. */
  send(conn: number, frame: string): void;
}

export class Applier {
  constructor(private readonly target: ApplyTarget) {}

  apply(ops: readonly Op[], entry?: EntryContext): void {
    if (entry === undefined) {
      for (const op of ops) this.one(op);
      return;
    }
    this.target.delivery.beginEntry(entry.first, entry.stores);
    try {
      for (const op of ops) this.one(op);
    } finally {
      this.target.delivery.endEntry();
    }
  }

  private one(op: Op): void {
    const t = this.target;
    switch (op.t) {
      case 'post': t.delivery.post(op.post, op.at); break;
      case 'state': t.state(op.state); break;
      case 'change': t.delivery.changed(op.change, op.conn, op.callback, op.at); break;
      case 'reply': this.reply(op.conn, op.frame); break;
      case 'append': t.delivery.importRecord(op.entry, op.offset); break;
      case 'join': t.positions.join(op.account, op.conv, op.since); break;
      case 'trim': t.delivery.trimApplied(op.conv, op.upTo); break;
      case 'claim': break;
    }
  }

  /** An answer that confirms a change leaves once the change is durable; if it was lost (a full disk), 45007. */
  private reply(conn: number, frame: string): void {
    const t = this.target;
    if (!t.holds(conn)) return;
    t.delivery.afterDurable(() => t.send(conn, frame), () => t.send(conn, refusedAnswer(frame, Code.STORAGE_FULL, STORAGE_FULL_TEXT)));
  }
}
