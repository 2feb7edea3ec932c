/**
 * What the writes not yet committed change, by key, so that point reads see them without waiting
 * for a commit (read-your-writes with one transaction per batch): the store looks here first and in
 * the committed data otherwise. Each map holds the newest value a write gives its key; `null` is a
 * removal. Two of them (`Pending`): the turn's writes, and those of the batch under way on the
 * writer. The batch's is cleared once that commits (the values are then in the data) or fails
 * (they are lost).
 *
 * The batch is sealed from here (except log records, written into it as they are appended), so a
 * key written many times in a turn is written to LMDB once, with its last value.
 */
import type { AccountPositions, ConvId, ConvTop, LogEntry } from '../ports';

export class Overlay {
  /** A conversation's top after the appends queued (trimming commits first, so never a removal). */
  readonly tops = new Map<ConvId, ConvTop>();
  /** midKey(conv, from, mid) → offset of the queued append. */
  readonly mids = new Map<string, number>();
  /**
   * recordKey(conv, offset) → a record queued by an append at a given offset, so that the same
   * offset given again in this turn is found. The store's own appends are not kept here (that
   * would cost every append a key): they are above every offset before them, so `numberedFrom`
   * (the first offset the store gave in this turn, 0: none) tells when one might be it.
   */
  readonly records = new Map<string, LogEntry>();
  numberedFrom = 0;
  readonly positions = new Map<string, AccountPositions>();
  /** memberKey(account, conv) → since, or null: left. */
  readonly members = new Map<string, PendingMember>();
  /** address → the state as JSON text, or null: deleted. */
  readonly states = new Map<string, string | null>();

  get size(): number {
    return this.tops.size + this.mids.size + this.records.size + this.positions.size + this.members.size + this.states.size;
  }

  clear(): void {
    this.tops.clear();
    this.mids.clear();
    this.records.clear();
    this.numberedFrom = 0;
    this.positions.clear();
    this.members.clear();
    this.states.clear();
  }
}

export interface PendingMember { account: string; conv: ConvId; since: number | null }

/**
 * The turn's overlay (`current`, where writes go) and the one of the batch under way (`sealed`):
 * reads look at the newer first.
 */
export class Pending {
  current = new Overlay();
  sealed = new Overlay();

  top(conv: ConvId): ConvTop | undefined { return this.current.tops.get(conv) ?? this.sealed.tops.get(conv); }
  mid(key: string): number | undefined { return this.current.mids.get(key) ?? this.sealed.mids.get(key); }
  record(key: string): LogEntry | undefined { return this.current.records.get(key) ?? this.sealed.records.get(key); }
  positions(account: string): AccountPositions | undefined { return this.current.positions.get(account) ?? this.sealed.positions.get(account); }
  /** since, null (a leave), undefined: nothing pending. */
  member(key: string): number | null | undefined { return (this.current.members.get(key) ?? this.sealed.members.get(key))?.since; }
  /** JSON text, null (a removal), undefined: nothing pending. */
  state(address: string): string | null | undefined {
    const v = this.current.states.get(address);
    return v !== undefined ? v : this.sealed.states.get(address);
  }

  /** An offset the store numbered itself may be pending at or above this (0: none). */
  numberedFrom(): number {
    const a = this.sealed.numberedFrom;
    const b = this.current.numberedFrom;
    return a === 0 ? b : a;
  }

  /** The turn's overlay becomes the one under way (which must be empty: its batch is done). */
  seal(): void {
    const done = this.sealed;
    done.clear();
    this.sealed = this.current;
    this.current = done;
  }
}

/** A key for (conv, from, mid): lengths first, so no choice of the strings makes two keys alike. */
export function midKey(conv: ConvId, from: string, mid: string): string {
  return `${conv.length}:${conv}${from.length}:${from}${mid}`;
}

export function recordKey(conv: ConvId, offset: number): string {
  return `${offset}:${conv}`;
}

export function memberKey(account: string, conv: ConvId): string {
  return `${account.length}:${account}${conv}`;
}
