/**
 * What the node that keeps a conversation's records decides before it goes into the ledger (cluster
 * mode): a resend of a direct message (the same conversation, sender and `mid`) is found and
 * answered, not stored twice; an edit or delete is checked against its original. Both need the
 * conversation's log, which only the owner of its partition has; once in the ledger, every node
 * applies the entry alike (counting the same records), so nothing is decided while applying.
 */
import type { ChangeCall, Local } from '../carrier/port';
import { changeOp, type Op } from '../carrier/ops';
import { Code } from '../protocol/codes';
import { errorFrame, refusedAnswer } from '../protocol/frames';
import type { Store } from '../store/ports';
import { VOID_AFTER_MS } from './entry';

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
  /** Resolves once this node applied everything the ledger holds now. */
  caughtUp(): Promise<void>;
}

/**
 * How long a post whose publish failed without an answer stays in doubt: JetStream may still store
 * it, and an entry stored more than VOID_AFTER_MS after it was published is void (entry.ts); after
 * that (and a margin) it is either applied, and found in the log, or never will be.
 */
const DOUBT_MS = VOID_AFTER_MS + 1000;
/** Posts in doubt remembered at most (the oldest go first; each is forgotten after DOUBT_MS anyway). */
const DOUBT_MAX = 10_000;

/** A post's resend key (conversation, sender, `mid`); undefined for a post that has none (a notice, or no `mid`). */
function midKeyOf(op: Op): string | undefined {
  if (op.t !== 'post' || op.post.mid === undefined || op.post.from === null) return undefined;
  return `${op.post.conv}\u0000${op.post.from}\u0000${op.post.mid}`;
}

export class Owned {
  /** Posts with a `mid` handed to the ledger here and not applied yet (bounded by what is in flight). */
  private readonly inFlight = new Map<string, number>();
  /** Posts whose publish failed without an answer (key → when): a resend waits until it is known whether they were stored. */
  private readonly doubt = new Map<string, number>();
  readonly counters = { duplicates: 0, changesRefused: 0, deferred: 0 };

  constructor(private readonly deps: OwnedDeps) {}

  /** A post for a partition this node serves: into the ledger, unless it resends one stored or in flight. */
  post(op: PostOp, partition: number): void {
    if (this.screen(op, partition)) this.deps.submit(partition, [op]);
  }

  /**
   * A partition's operations about to go into the ledger (a group actor's batch): its resent posts
   * taken out (answered as their originals were, or decided later when in doubt); what is left.
   */
  screened(ops: Op[], partition: number): Op[] {
    return ops.filter((op) => op.t !== 'post' || this.screen(op, partition));
  }

  /** Whether the post goes into the ledger now; if not, it was answered or will be decided later. */
  private screen(op: PostOp, partition: number): boolean {
    const key = midKeyOf(op);
    if (key === undefined) return true;
    const since = this.doubt.get(key);
    if (since !== undefined) {
      // Its original may still be stored: decided once that is known (then found in the log, or not).
      this.counters.deferred++;
      const wait = Math.max(0, since + DOUBT_MS - Date.now());
      setTimeout(() => { this.doubt.delete(key); void this.deps.caughtUp().then(() => this.post(op, partition), () => this.post(op, partition)); }, wait).unref();
      return false;
    }
    if (this.inFlight.has(key)) { this.duplicate(op, true); return false; }
    const p = op.post;
    if (this.deps.store.log.findMid(p.conv, p.from!, p.mid!) !== undefined) { this.duplicate(op, false); return false; }
    this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
    return true;
  }

  /** Published without an answer (a timeout): JetStream may have stored them after all. */
  doubtful(ops: readonly Op[]): void {
    const now = Date.now();
    for (const [key, at] of this.doubt) if (now - at > DOUBT_MS || this.doubt.size > DOUBT_MAX) this.doubt.delete(key); else break;
    for (const op of ops) {
      const key = midKeyOf(op);
      if (key !== undefined) this.doubt.set(key, now);
    }
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
      const key = midKeyOf(op);
      if (key === undefined) continue;
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
      this.deps.submit(partition, [changeOp(d, call.conn, call.request, call.at)]);
    });
  }

  get pending(): number { return this.inFlight.size; }
}
