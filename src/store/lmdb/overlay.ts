/**
 * What the writes queued in this turn change, by key, so that point reads see them without
 * committing (read-your-writes with one transaction per turn): the store looks here first and in
 * the committed data otherwise. Each map holds the newest value a queued write gives its key;
 * `null` is a queued removal. Cleared when the turn's transaction commits (the values are then
 * in the data) or fails (they are lost), so it holds at most one turn's writes.
 *
 * The queued write of a key reads its value from here when the transaction runs, so a key
 * written many times in a turn is written to LMDB once, with its last value.
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
  readonly members = new Map<string, number | null>();
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
