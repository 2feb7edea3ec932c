/**
 * An account's inbox: the per-recipient sequence counter and the messages kept for it
 * (while it is away, or until it acknowledges them). `applyInbox` is the one place it changes.
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
  /** Keys (sender and client message id) of the latest messages, to drop a resend. */
  recent: Array<[key: string, seq: number]>;
}

/** How many message keys an inbox remembers for duplicate detection. */
export const RECENT_KEYS = 128;

export type InboxEvent =
  /** A message kept for the account (away, or not yet acknowledged). */
  | { e: 'msg'; seq: number; at: number; keep: true; head: string; tail: string; key?: string }
  /** A message written straight to the account's sockets: only its number (and key) is recorded. */
  | { e: 'msg'; seq: number; at: number; keep: false; key?: string }
  | { e: 'done'; upTo: number }
  | { e: 'acked'; upTo: number }
  | { e: 'trimmed'; upTo: number; count: number };

export function emptyInbox(): InboxState {
  return { seq: 0, acked: 0, ackMode: false, stored: [], dropped: 0, recent: [] };
}

export function applyInbox(s: InboxState, ev: InboxEvent): InboxState {
  switch (ev.e) {
    case 'msg':
      if (ev.seq > s.seq) s.seq = ev.seq;
      if (ev.keep) insertInOrder(s.stored, { seq: ev.seq, at: ev.at, head: ev.head, tail: ev.tail });
      if (ev.key !== undefined) {
        s.recent.push([ev.key, ev.seq]);
        if (s.recent.length > RECENT_KEYS) s.recent.shift();
      }
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
