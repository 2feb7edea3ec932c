/**
 * How far each account has got (see store/ports `AccountPositions`), cached for the accounts in use
 * and written to the store in the background: a live message moves the delivered offset of every
 * online recipient, and writing each move would make a group message cost one write per member.
 * A position written late only means that, after a crash, a few frames are delivered again
 * (at least once); it never loses one.
 */
import { LRUCache } from 'lru-cache';
import type { AccountPositions, Positions } from '../store/ports';

/** Accounts whose positions stay cached (bounded: memory does not grow with the number of accounts). */
const CACHED = 100_000;
/** Longest time a moved position stays unwritten. */
const WRITE_MS = 250;

export class PositionBook {
  private readonly dirty = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly cache: LRUCache<string, AccountPositions>;

  constructor(private readonly store: Positions) {
    this.cache = new LRUCache<string, AccountPositions>({
      max: CACHED,
      // An account pushed out of the cache with an unwritten move is written on the way out.
      dispose: (p, account) => { if (this.dirty.delete(account)) this.store.set(account, p); },
    });
  }

  get(account: string): AccountPositions {
    let p = this.cache.get(account);
    if (!p) {
      p = { ...(this.store.get(account) ?? { delivered: 0, acked: 0, ackMode: false }) };
      this.cache.set(account, p);
    }
    return p;
  }

  /** Positions read elsewhere (another node's, in cluster mode): whichever got further wins. */
  merge(account: string, q: AccountPositions): void {
    const p = this.get(account);
    if (q.delivered > p.delivered) p.delivered = q.delivered;
    if (q.acked > p.acked) p.acked = q.acked;
    if (q.ackMode) p.ackMode = true;
  }

  delivered(account: string, offset: number): void {
    const p = this.get(account);
    if (offset <= p.delivered) return;
    p.delivered = offset;
    this.moved(account);
  }

  /**
   * Acknowledges through `upTo`; the first acknowledgement puts the account in ack mode. Written in
   * this turn, not later: an acknowledgement is one request of one client (not one write per
   * member of a group), and what a client acknowledged must not come back after a crash.
   */
  acked(account: string, upTo: number): void {
    const p = this.get(account);
    if (p.ackMode && upTo <= p.acked) return;
    p.ackMode = true;
    if (upTo > p.acked) p.acked = upTo;
    this.dirty.delete(account);
    this.store.set(account, p);
  }

  private moved(account: string): void {
    this.dirty.add(account);
    this.timer ??= setTimeout(() => this.write(), WRITE_MS);
  }

  /** Writes every unwritten move now. */
  write(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const account of this.dirty) {
      const p = this.cache.get(account);
      if (p) this.store.set(account, p);
    }
    this.dirty.clear();
  }

  get size(): number { return this.cache.size; }
}
