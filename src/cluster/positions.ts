/**
 * Account positions in cluster mode: an account may sign in on any node, so how far it got lives
 * in the engine (one key per account in the positions bucket); the node's replica keeps a copy.
 * Memberships are not here: they follow from the ledger (see ledger.ts) on every replica alike.
 *
 * Merged by maximum: two nodes serving the same account (two devices) each move its offsets
 * forward, and neither takes back what the other wrote. A lost race costs frames delivered again
 * (at least once, as after a crash), never a frame skipped.
 */
import type { KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import type { AccountPositions, Membership, Positions } from '../store/ports';

/** Keys of the bucket: the account itself (SS58 addresses are valid key tokens). */
const keyOf = (account: string): string => `a.${account}`;

export function mergePositions(a: AccountPositions | undefined, b: AccountPositions | undefined): AccountPositions | undefined {
  if (!a) return b;
  if (!b) return a;
  return { delivered: Math.max(a.delivered, b.delivered), acked: Math.max(a.acked, b.acked), ackMode: a.ackMode || b.ackMode };
}

export class EnginePositions implements Positions {
  readonly counters = { written: 0, writeFailures: 0, fetched: 0 };

  constructor(private readonly local: Positions, private readonly kv: KV, private readonly log: Logger) {}

  get(account: string): AccountPositions | undefined { return this.local.get(account); }

  set(account: string, p: AccountPositions): void {
    this.local.set(account, p);
    void this.write(account, p);
  }

  private async write(account: string, p: AccountPositions): Promise<void> {
    const k = keyOf(account);
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const e = await this.kv.get(k);
        const stored = e && e.operation === 'PUT' ? (e.json<AccountPositions>()) : undefined;
        const merged = mergePositions(p, stored)!;
        if (stored && merged.delivered === stored.delivered && merged.acked === stored.acked && merged.ackMode === stored.ackMode) return;
        if (e && e.operation === 'PUT') await this.kv.update(k, JSON.stringify(merged), e.revision);
        else if (e) await this.kv.update(k, JSON.stringify(merged), e.revision);
        else await this.kv.create(k, JSON.stringify(merged));
        this.counters.written++;
        return;
      } catch {
        // Someone wrote in between: read again and merge again.
      }
    }
    this.counters.writeFailures++;
    this.log.debug({ account }, 'position not written to the engine (contention); written with its next move');
  }

  /** The account's positions as the engine has them, merged into the replica's (before a sign-in reads them). */
  async fetch(account: string): Promise<AccountPositions | undefined> {
    this.counters.fetched++;
    const e = await this.kv.get(keyOf(account));
    const stored = e && e.operation === 'PUT' ? e.json<AccountPositions>() : undefined;
    const merged = mergePositions(this.local.get(account), stored);
    if (merged) this.local.set(account, merged);
    return merged;
  }

  join(account: string, conv: string, since: number): void { this.local.join(account, conv, since); }
  leave(account: string, conv: string): void { this.local.leave(account, conv); }
  membership(account: string, conv: string): Membership | undefined { return this.local.membership(account, conv); }
  memberships(account: string): Membership[] { return this.local.memberships(account); }
}
