/**
 * Account positions in cluster mode: an account may sign in on any node, so how far it got lives
 * in the engine (one key per account in the positions bucket); the node's replica keeps a copy.
 * Memberships are not here: they follow from the ledger (see ledger.ts) on every replica alike.
 *
 * Written coalesced: an account's acknowledgement goes at once, its delivered offset at most once
 * a second; at most IN_FLIGHT writes are under way. Delivered offsets written late cost frames
 * delivered again after a move or a crash (at least once), never one skipped.
 *
 * Merged by maximum: two nodes serving the same account (two devices) each move its offsets
 * forward, and neither takes back what the other wrote. A lost race costs frames delivered again
 * (at least once, as after a crash), never a frame skipped.
 */
import type { KV } from '@nats-io/kv';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { AccountMembership, AccountPositions, Membership, Positions } from '../store/ports';

/** Keys of the bucket: the account itself (SS58 addresses are valid key tokens). */
const keyOf = (account: string): string => `a.${account}`;

function samePositions(a: AccountPositions, b: AccountPositions): boolean {
  return a.delivered === b.delivered && a.acked === b.acked && a.ackMode === b.ackMode;
}

export function mergePositions(a: AccountPositions | undefined, b: AccountPositions | undefined): AccountPositions | undefined {
  if (!a) return b;
  if (!b) return a;
  return { delivered: Math.max(a.delivered, b.delivered), acked: Math.max(a.acked, b.acked), ackMode: a.ackMode || b.ackMode };
}

/** Writes to the engine under way at once, at most (the rest wait their turn, coalesced per account). */
const IN_FLIGHT = 64;
/** A delivered offset waits this long for the account's next moves; an acknowledgement goes at once. */
const DELIVERED_MS = 1000;

export class EnginePositions implements Positions {
  readonly counters = { written: 0, writeFailures: 0, fetched: 0, coalesced: 0 };
  /** Accounts whose newest positions are not in the engine yet (one entry each: bounded by accounts in use). */
  private readonly pending = new Map<string, AccountPositions>();
  private readonly urgent = new Set<string>();
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The acknowledged offset last handed to the engine per account (bounded): a higher one is urgent. */
  private readonly acked = new LRUCache<string, number>({ max: 100_000 });
  /** What the engine holds for an account as this node last wrote or read it, with its revision (bounded). */
  private readonly known = new LRUCache<string, { revision: number; p: AccountPositions }>({ max: 100_000 });

  constructor(private readonly local: Positions, private readonly kv: KV, private readonly log: Logger) {}

  get(account: string): AccountPositions | undefined { return this.local.get(account); }

  set(account: string, p: AccountPositions): void {
    this.local.set(account, p);
    if (this.pending.has(account)) this.counters.coalesced++;
    this.pending.set(account, { ...p });
    // An acknowledgement is a client's promise kept: it goes now; a delivered offset can wait.
    if (p.acked > (this.acked.get(account) ?? 0) || (p.ackMode && !this.acked.has(account))) { this.acked.set(account, p.acked); this.urgent.add(account); }
    if (this.urgent.size > 0) return void setImmediate(() => this.drain());
    this.timer ??= setTimeout(() => { this.timer = undefined; this.drain(true); }, DELIVERED_MS);
  }

  /** Sends what is pending (only the urgent unless `all`), at most IN_FLIGHT at a time. */
  private drain(all = false): void {
    const order = [...this.urgent, ...(all ? this.pending.keys() : [])];
    for (const account of order) {
      if (this.inFlight >= IN_FLIGHT) break;
      const p = this.pending.get(account);
      if (!p) { this.urgent.delete(account); continue; }
      this.pending.delete(account);
      this.urgent.delete(account);
      this.inFlight++;
      void this.write(account, p).finally(() => {
        this.inFlight--;
        if (this.urgent.size > 0 || (this.pending.size > 0 && this.timer === undefined)) setImmediate(() => this.drain(this.timer === undefined));
      });
    }
  }

  private async write(account: string, p: AccountPositions): Promise<void> {
    const k = keyOf(account);
    // The common case (this node alone writes the account): an update at the revision it last
    // wrote or read, no read first. Another node having written since makes it fail: read, merge.
    const known = this.known.get(account);
    if (known) {
      const merged = mergePositions(p, known.p)!;
      if (samePositions(merged, known.p)) return;
      try {
        this.known.set(account, { revision: await this.kv.update(k, JSON.stringify(merged), known.revision), p: merged });
        this.counters.written++;
        return;
      } catch {
        this.known.delete(account);
      }
    }
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const e = await this.kv.get(k);
        const stored = e && e.operation === 'PUT' ? e.json<AccountPositions>() : undefined;
        const merged = mergePositions(p, stored)!;
        if (e && stored && samePositions(merged, stored)) { this.known.set(account, { revision: e.revision, p: stored }); return; }
        const revision = e ? await this.kv.update(k, JSON.stringify(merged), e.revision) : await this.kv.create(k, JSON.stringify(merged));
        this.known.set(account, { revision, p: merged });
        this.counters.written++;
        return;
      } catch {
        // Someone wrote in between: read again and merge again.
      }
    }
    this.counters.writeFailures++;
    this.log.debug({ account }, 'position not written to the engine (contention); written with its next move');
  }

  /** Writes everything pending now and waits for it (a node stopping). */
  async settle(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const all = [...this.pending];
    this.pending.clear();
    this.urgent.clear();
    await Promise.all(all.map(([a, p]) => this.write(a, p)));
  }

  /** The account's positions as the engine has them, merged into the replica's (before a sign-in reads them). */
  async fetch(account: string): Promise<AccountPositions | undefined> {
    this.counters.fetched++;
    const e = await this.kv.get(keyOf(account));
    const stored = e && e.operation === 'PUT' ? e.json<AccountPositions>() : undefined;
    if (e && stored) this.known.set(account, { revision: e.revision, p: stored });
    const merged = mergePositions(this.local.get(account), stored);
    if (merged) this.local.set(account, merged);
    return merged;
  }

  join(account: string, conv: string, since: number): void { this.local.join(account, conv, since); }
  leave(account: string, conv: string): void { this.local.leave(account, conv); }
  membership(account: string, conv: string): Membership | undefined { return this.local.membership(account, conv); }
  memberships(account: string): Membership[] { return this.local.memberships(account); }
  allMemberships(after: { account: string; conv: string } | undefined, limit: number): AccountMembership[] { return this.local.allMemberships(after, limit); }
}
