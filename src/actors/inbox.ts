/**
 * The inbox actor of one account: gives every message for the account its sequence number, keeps
 * what cannot be written yet (the account is away, or it acknowledges and has not yet), bounds what
 * it keeps, and hands the backlog to a connection that signs in.
 */
import { renderFrame, type Template } from '../protocol/frames';
import { logger } from '../log';
import type { InboxEvent, InboxState } from './inbox-state';

export interface InboxLimits { inboxMax: number; inboxMaxAgeMs: number }

const log = logger({ actor: 'inbox' });

/** One message for the account: the event that records it, and whether to push it now. */
export function deliverTo(s: InboxState, account: string, online: boolean, tpl: Template, now: number, limits: InboxLimits, key?: string): { events: InboxEvent[]; push: number | null } {
  // A client's resend (same sender, same client message id) is taken once.
  if (key !== undefined && s.recent.some(([k]) => k === key)) return { events: [], push: null };
  const seq = s.seq + 1;
  const keep = !online || s.ackMode;
  const msg: InboxEvent = keep
    ? { e: 'msg', seq, at: now, keep, head: tpl.head, tail: tpl.tail }
    : { e: 'msg', seq, at: now, keep };
  if (key !== undefined) msg.key = key;
  const events: InboxEvent[] = [msg];
  if (keep) events.push(...bound(s, account, now, limits, 1));
  return { events, push: online ? seq : null };
}

/**
 * Drops what is beyond the count or age bounds, oldest first, and says so in the log: nothing is
 * lost silently. `incoming` counts messages about to be added by events not yet applied.
 */
export function bound(s: InboxState, account: string, now: number, limits: InboxLimits, incoming = 0): InboxEvent[] {
  const over = s.stored.length + incoming - limits.inboxMax;
  let count = Math.max(0, over);
  const oldest = now - limits.inboxMaxAgeMs;
  while (count < s.stored.length && s.stored[count]!.at < oldest) count++;
  if (count === 0 || s.stored.length === 0) return [];
  count = Math.min(count, s.stored.length);
  const upTo = s.stored[count - 1]!.seq;
  log.warn({ account, dropped: count, upTo, total: s.dropped + count }, 'stored messages dropped by the inbox bounds');
  return [{ e: 'trimmed', upTo, count }];
}

/** The frames kept for the account, in order; without acknowledgements they count as delivered now. */
export function drain(s: InboxState, account: string): { frames: string[]; events: InboxEvent[] } {
  const frames = s.stored.map((m) => renderFrame(m, account, m.seq));
  const last = s.stored.at(-1);
  const events: InboxEvent[] = !s.ackMode && last ? [{ e: 'done', upTo: last.seq }] : [];
  return { frames, events };
}

export function ack(s: InboxState, upTo: number): InboxEvent[] {
  const through = Math.min(upTo, s.seq);
  return through > s.acked || !s.ackMode ? [{ e: 'acked', upTo: through }] : [];
}

/** Frames that found no socket go back to being kept, under their own sequence numbers. */
export function bounce(s: InboxState, account: string, seqs: number[], tpl: Template, now: number, limits: InboxLimits): InboxEvent[] {
  const events: InboxEvent[] = seqs
    .filter((seq) => seq > s.acked && !s.stored.some((m) => m.seq === seq))
    .map((seq) => ({ e: 'msg', seq, at: now, keep: true, head: tpl.head, tail: tpl.tail }));
  return events.length > 0 ? [...events, ...bound(s, account, now, limits, events.length)] : [];
}
