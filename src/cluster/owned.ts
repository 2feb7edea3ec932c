/**
 * What the node that keeps a conversation's records decides before it goes into the ledger (cluster
 * mode): a resend of a direct message (the same conversation, sender and `mid`) is found and
 * answered, not stored twice; an edit or delete is checked against its original. Both need the
 * conversation's log, which only the owner of its partition has; once in the ledger, every node
 * applies the entry alike (counting the same records), so nothing is decided while applying.
 */
import type { ChangeCall, Local } from '../carrier/port';
import type { Op } from '../carrier/ops';
import { Code } from '../protocol/codes';
import { errorFrame, refusedAnswer } from '../protocol/frames';
import type { Store } from '../store/ports';

type PostOp = Extract<Op, { t: 'post' }>;

/** A call for the owner of a conversation's partition, as it travels between nodes. */
export type OwnedCall =
  | { t: 'post'; op: PostOp; hops?: number }
  /** `after`: the ledger sequence the asking node had applied (the original it names is in it). */
  | { t: 'change'; call: ChangeCall; after: number; hops?: number };

export interface OwnedDeps {
  readonly store: Store;
  local(): Local;
  /** Into the partition's ledger route (fenced: refused if this node no longer owns it). */
  submit(partition: number, ops: Op[]): void;
  sendTo(conn: number, frame: string): void;
  /** `fn` once what this node published so far is stored and applied; `lost` if it never will be. */
  afterPublished(fn: () => void, lost: () => void): void;
  appliedThrough(seq: number): Promise<void>;
}

const midKey = (conv: string, from: string, mid: string): string => `${conv}\u0000${from}\u0000${mid}`;

export class Owned {
  /** Posts with a `mid` handed to the ledger here and not applied yet (bounded by what is in flight). */
  private readonly inFlight = new Map<string, number>();
  readonly counters = { duplicates: 0, changesRefused: 0 };

  constructor(private readonly deps: OwnedDeps) {}

  /** A post for a partition this node serves: into the ledger, unless it resends one stored or in flight. */
  post(op: PostOp, partition: number): void {
    const p = op.post;
    if (p.mid !== undefined && p.from !== null) {
      const key = midKey(p.conv, p.from, p.mid);
      if (this.inFlight.has(key)) return this.duplicate(op, true);
      if (this.deps.store.log.findMid(p.conv, p.from, p.mid) !== undefined) return this.duplicate(op, false);
      this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
    }
    this.deps.submit(partition, [op]);
  }

  /** A resend is acknowledged as its original is: at once if stored, else once the original is. */
  private duplicate(op: PostOp, pending: boolean): void {
    this.counters.duplicates++;
    const ack = op.post.ackTo;
    if (!ack) return;
    if (!pending) return this.deps.sendTo(ack.conn, ack.frame);
    this.deps.afterPublished(() => this.deps.sendTo(ack.conn, ack.frame), () => this.deps.sendTo(ack.conn, refusedAnswer(ack.frame, Code.UNAVAILABLE, 'the cluster\'s store did not take this message, please retry')));
  }

  /** Operations this node published were applied or refused: their posts are no longer in flight. */
  settled(ops: readonly Op[]): void {
    for (const op of ops) {
      if (op.t !== 'post' || op.post.mid === undefined || op.post.from === null) continue;
      const key = midKey(op.post.conv, op.post.from, op.post.mid);
      const n = this.inFlight.get(key);
      if (n === undefined) continue;
      if (n <= 1) this.inFlight.delete(key); else this.inFlight.set(key, n - 1);
    }
  }

  /** An edit or delete: decided once this node has applied what the asker had (its original among it). */
  change(call: ChangeCall, after: number, partition: number): void {
    void this.deps.appliedThrough(after).then(() => {
      const d = this.deps.local().decideChange(call);
      if (!d.ok) {
        this.counters.changesRefused++;
        return this.deps.sendTo(call.conn, errorFrame(d.code, d.error, call.request));
      }
      const callback = call.request.callback;
      this.deps.submit(partition, [{ t: 'change', change: d, conn: call.conn, at: call.at, ...(callback !== undefined ? { callback } : {}) }]);
    });
  }

  get pending(): number { return this.inFlight.size; }
}
