/**
 * The inbox state of the journal-and-checkpoint version (an account's kept messages), trimmed to
 * what replaying its journal needs: `applyInbox` as it was (git 9aa3353:src/actors/inbox-state.ts),
 * less the duplicate-detection keys, which the store's `findMid` replaced.
 */
export interface Stored {
  seq: number;
  at: number;
  head: string;
  tail: string;
}

export interface InboxState {
  /** Last sequence number given to a message for this account. */
  seq: number;
  /** Highest sequence number the account acknowledged (0: never). */
  acked: number;
  /** The account acknowledges: keep every message until acked, not only until written. */
  ackMode: boolean;
  /** Messages not yet delivered (or not yet acked in ack mode), oldest first. */
  stored: Stored[];
  /** Messages dropped by the bounds so far. */
  dropped: number;
}

export type InboxEvent =
  | { e: 'msg'; seq: number; at: number; keep: true; head: string; tail: string; key?: string }
  | { e: 'msg'; seq: number; at: number; keep: false; key?: string }
  | { e: 'done'; upTo: number }
  | { e: 'acked'; upTo: number }
  | { e: 'trimmed'; upTo: number; count: number };

export function emptyInbox(): InboxState {
  return { seq: 0, acked: 0, ackMode: false, stored: [], dropped: 0 };
}

export function applyInbox(s: InboxState, ev: InboxEvent): InboxState {
  switch (ev.e) {
    case 'msg':
      if (ev.seq > s.seq) s.seq = ev.seq;
      if (ev.keep) insertInOrder(s.stored, { seq: ev.seq, at: ev.at, head: ev.head, tail: ev.tail });
      break;
    case 'done':
      dropThrough(s, ev.upTo);
      break;
    case 'acked':
      s.ackMode = true;
      if (ev.upTo > s.acked) s.acked = ev.upTo;
      dropThrough(s, ev.upTo);
      break;
    case 'trimmed':
      dropThrough(s, ev.upTo);
      s.dropped += ev.count;
      break;
  }
  return s;
}

function dropThrough(s: InboxState, upTo: number): void {
  let i = 0;
  while (i < s.stored.length && s.stored[i]!.seq <= upTo) i++;
  if (i > 0) s.stored.splice(0, i);
}

/** Keeps `stored` ordered by seq; a bounced message may come back behind newer ones. */
function insertInOrder(list: Stored[], item: Stored): void {
  let i = list.length;
  while (i > 0 && list[i - 1]!.seq > item.seq) i--;
  if (i > 0 && list[i - 1]!.seq === item.seq) return;
  list.splice(i, 0, item);
}
