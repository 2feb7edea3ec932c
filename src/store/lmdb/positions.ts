/**
 * `Positions` on LMDB: how far each account has got (`positions`) and the conversations it takes
 * part in (`members`) of schema.ts. Writes are queued once per key and turn, with the last value
 * set (overlay.ts), so a delivery that moves an account's offset many times in a turn writes once.
 *
 * Damaged values (damage.ts) read as absent: a damaged position as none (the account is sent again
 * what is retained: duplicates, never a loss), a damaged membership as none (no read is granted on
 * a record that may have moved under another account's key).
 */
import type { AccountMembership, AccountPositions, ConvId, Membership, Positions } from '../ports';
import type { Core } from './core';
import { numberCodec, positionsCodec, seeds } from './codecs';
import { memberKey } from './overlay';
import { MAX_CONV } from './schema';

export class LmdbPositions implements Positions {
  constructor(private readonly c: Core) {}

  get(account: string): AccountPositions | undefined {
    return this.c.peek('positions.get', () => {
      const p = this.c.pending.positions(account) ?? this.stored(account);
      return p === undefined ? undefined : { delivered: p.delivered, acked: p.acked, ackMode: p.ackMode };
    });
  }

  private stored(account: string): AccountPositions | undefined {
    const raw = this.c.dbs.positions.get(account);
    if (raw === undefined) return undefined;
    const p = positionsCodec.decode(raw, seeds.positions(account));
    if (p === undefined) this.c.damage.found('positions', account, { account });
    return p;
  }

  /** A membership's `since` as stored (undefined: none, or damaged and reported). */
  private since(account: string, conv: ConvId, raw: Buffer | undefined): number | undefined {
    if (raw === undefined) return undefined;
    const since = numberCodec.decode(raw, seeds.members(account, conv));
    if (since === undefined) this.c.damage.found('members', `${account} ${conv}`, { account, conv });
    return since;
  }

  set(account: string, p: AccountPositions): void {
    this.c.writable();
    // Into the batch once, with the last value set, when it is sealed (core.ts).
    this.c.writer.touch();
    this.c.pending.current.positions.set(account, { delivered: p.delivered, acked: p.acked, ackMode: p.ackMode });
  }

  join(account: string, conv: ConvId, since: number): void {
    this.member(account, conv, since);
  }

  leave(account: string, conv: ConvId): void {
    this.member(account, conv, null);
  }

  /** A join (`since`) or a leave (null): into the batch once, the last one, when it is sealed (core.ts). */
  private member(account: string, conv: ConvId, since: number | null): void {
    this.c.writable();
    this.c.writer.touch();
    this.c.pending.current.members.set(memberKey(account, conv), { account, conv, since });
  }

  membership(account: string, conv: ConvId): Membership | undefined {
    return this.c.peek('membership', () => {
      const pending = this.c.pending.member(memberKey(account, conv));
      const since = pending === undefined ? this.since(account, conv, this.c.dbs.members.get([account, conv])) : pending;
      return since === undefined || since === null ? undefined : { conv, since };
    });
  }

  memberships(account: string): Membership[] {
    return this.c.read('memberships', () => {
      const out: Membership[] = [];
      for (const { key, value } of this.c.dbs.members.getRange({ start: [account, ''], end: [account, MAX_CONV] })) {
        if (key[0] !== account) continue;
        const since = this.since(account, key[1], value);
        if (since !== undefined) out.push({ conv: key[1], since });
      }
      return out;
    });
  }

  allMemberships(after: { account: string; conv: ConvId } | undefined, limit: number): AccountMembership[] {
    return this.c.read('allMemberships', () => {
      const out: AccountMembership[] = [];
      if (limit <= 0) return out;
      // Keys come in (account, conv) order; the range starts at `after` itself, which is skipped.
      const range = after === undefined ? {} : { start: [after.account, after.conv] as [string, ConvId] };
      for (const { key, value } of this.c.dbs.members.getRange(range)) {
        if (after !== undefined && key[0] === after.account && key[1] === after.conv) continue;
        const since = this.since(key[0], key[1], value);
        if (since === undefined) continue;
        out.push({ account: key[0], conv: key[1], since });
        if (out.length >= limit) break;
      }
      return out;
    });
  }
}
