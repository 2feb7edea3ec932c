/**
 * What an account missed, read back from the logs of its conversations and merged by offset, so
 * the `seq` of every frame it gets still increases (offsets are one sequence for the whole store).
 * Direct conversations and the account's own log give everything retained; a group gives its newest
 * `groupBacklog` records, and a `limited` notice when it has more, never a silent cut.
 *
 * Memory is bounded by the number of conversations with news, not by what they hold: each keeps a
 * small page (fewer records each, the more conversations there are) and reads on as it is drained.
 *
 * Damaged records are skipped by the store's reads (counted and logged there); a conversation the
 * store cannot read at all (a corrupt page) ends where it stops reading, logged here: the rest of
 * the backlog still goes out, and no read error ends the process.
 */
import { logger } from '../log';
import { renderFrame } from '../protocol/frames';
import { StoreError, type ConversationLog, type ConvId, type ConvTop, type LogEntry, type Membership, type ReadQuery } from '../store/ports';
import { isTombstone } from './edits';
import { OffsetHeap } from './offset-heap';
import { ownRecipient, renderOwnFrame } from './own';

/** Records buffered across all conversations of one backlog (each has at least one). */
const BUFFERED = 1024;

interface Cursor {
  conv: string;
  /** Records not yet taken, oldest first; `buf[i]` is next. */
  buf: LogEntry[];
  i: number;
  /** Offset of the last record taken (at first: where reading starts). */
  at: number;
  /** A group cut at the bound, still to be announced: before its first frame delivered. */
  limited?: string;
}

export interface BacklogRange {
  account: string;
  /** Everything after this offset (the account's delivered or acknowledged offset) … */
  after: number;
  /** … up to this one (the last offset when the sign-in began; later records come live). */
  upTo: number;
  groupBacklog: number;
  epoch: string;
  /** Own-device sync (own.ts): the account's own records too, marked `"own":true`; else they are skipped. */
  own?: boolean;
}

/**
 * One frame of a backlog and the offset it sorts by, so backlogs read in several places merge in
 * offset order: a record's offset, or for a `limited` notice the offset of the record it precedes
 * (or, when the group's records within the bound were all skipped, of the last of them).
 */
export interface BacklogItem { offset: number; frame: string }

/**
 * Where one conversation of a backlog stands, so a backlog can be read in pages, each read afresh
 * (a cluster node reading for another): read on after `after`; `limited`: its notice is still due.
 */
export interface BacklogCursor { conv: ConvId; after: number; limited?: string }

export class Backlog {
  private readonly heap = new OffsetHeap<Cursor>((c) => c.buf[c.i]!.offset);
  private page: number;

  constructor(private readonly log: ConversationLog, private readonly r: BacklogRange, memberships: Membership[]) {
    const news: Array<[Membership, ConvTop]> = [];
    for (const m of memberships) {
      const top = this.unlessUnreadable(m.conv, () => log.top(m.conv), undefined);
      if (top !== undefined && top.last > r.after && top.last >= m.since) news.push([m, top]);
    }
    this.page = pageSize(news.length);
    for (const [m, top] of news) this.open(m, top);
  }

  /** The backlog read on from where `cursors` (from `cursors()` of an earlier read) stood. */
  static resume(log: ConversationLog, r: BacklogRange, cursors: BacklogCursor[]): Backlog {
    const b = new Backlog(log, r, []);
    b.page = pageSize(cursors.length);
    for (const k of cursors) b.begin({ conv: k.conv, buf: [], i: 0, at: k.after, ...(k.limited !== undefined ? { limited: k.limited } : {}) });
    return b;
  }

  /** Up to `n` frames, in offset order, and the offset of the last record taken (0: the backlog is done). */
  next(n: number): { frames: string[]; last: number } {
    const frames: string[] = [];
    const items: BacklogItem[] = [];
    let last = 0;
    while (frames.length < n) {
      const offset = this.take(items);
      if (offset === 0) break;
      last = offset;
      for (const it of items) frames.push(it.frame);
      items.length = 0;
    }
    return { frames, last };
  }

  /** Never waits: a store answers at once. */
  waiting(): undefined { return undefined; }

  /** Nothing to let go of: pages are read as they are taken. */
  close(): void {}

  /**
   * Takes the next record in offset order and adds its frames to `out` (none when the account does
   * not get it); returns its offset, or 0 when the backlog is done.
   */
  take(out: BacklogItem[]): number {
    const c = this.heap.top();
    if (c === undefined) return 0;
    const e = c.buf[c.i++]!;
    c.at = e.offset;
    // What the account sent itself is not delivered back to it, unless the socket asked for it
    // (own-device sync); a deleted message is not delivered at all (its delete record is).
    const mine = e.from === this.r.account;
    if ((!mine || this.r.own === true) && !isTombstone(e)) {
      // `before` is the first record delivered: paging back from it covers every record skipped.
      if (c.limited !== undefined) { out.push({ offset: e.offset, frame: limitedNotice(this.r.account, c.limited, e.offset, this.r.epoch) }); delete c.limited; }
      const frame = mine ? renderOwnFrame(e, ownRecipient(c.conv, this.r.account), e.offset) : renderFrame(e, this.r.account, e.offset);
      out.push({ offset: e.offset, frame });
    }
    if (c.i >= c.buf.length && !this.refill(c)) {
      // Only the account's own records were within the bound: still say what was cut.
      if (c.limited !== undefined) out.push({ offset: e.offset, frame: limitedNotice(this.r.account, c.limited, e.offset + 1, this.r.epoch) });
      this.heap.pop();
    } else this.heap.topChanged();
    return e.offset;
  }

  /** Where each conversation with records left stands (none: the backlog is done). */
  cursors(): BacklogCursor[] {
    return this.heap.items().map((c) => ({ conv: c.conv, after: c.at, ...(c.limited !== undefined ? { limited: c.limited } : {}) }));
  }

  private open(m: Membership, top: ConvTop): void {
    let after = Math.max(this.r.after, m.since - 1);
    let limited: string | undefined;
    // Offsets are shared by all conversations, so `last - after` bounds what is new here: most groups
    // need no look at their newest records to know they are within the bound.
    const mayExceed = top.count > this.r.groupBacklog && Math.min(this.r.upTo, top.last) - after > this.r.groupBacklog;
    if (m.conv.startsWith('g:') && mayExceed) {
      const newest = this.read({ conv: m.conv, after, before: this.r.upTo + 1, limit: this.r.groupBacklog + 1, direction: 'backward' });
      if (newest.length > this.r.groupBacklog) {
        after = newest[0]!.offset;
        limited = m.conv.slice(2);
      }
    }
    this.begin({ conv: m.conv, buf: [], i: 0, at: after, ...(limited !== undefined ? { limited } : {}) });
  }

  /** The cursor joins the merge if it has records. */
  private begin(c: Cursor): void {
    if (this.refill(c)) this.heap.push(c);
  }

  private refill(c: Cursor): boolean {
    c.buf = this.read({ conv: c.conv, after: c.at, before: this.r.upTo + 1, limit: this.page, direction: 'forward' });
    c.i = 0;
    return c.buf.length > 0;
  }

  private read(q: ReadQuery): LogEntry[] {
    return this.unlessUnreadable(q.conv, () => this.log.read(q), []);
  }

  /** A read of `conv`, or `otherwise` if the store cannot read it (logged: the backlog goes on without it). */
  private unlessUnreadable<T>(conv: string, fn: () => T, otherwise: T): T {
    try {
      return fn();
    } catch (e) {
      if (!(e instanceof StoreError) || (e.code !== 'corrupt' && e.code !== 'damaged')) throw e;
      logger({ part: 'delivery' }).error({ err: e, conv, account: this.r.account }, 'a conversation of a backlog could not be read: the rest of the backlog goes on');
      return otherwise;
    }
  }
}

/** Records read at a time per conversation: fewer each, the more conversations have news. */
function pageSize(conversations: number): number {
  return Math.max(1, Math.min(64, Math.floor(BUFFERED / Math.max(1, conversations))));
}

/**
 * Says that a group had more news than the sign-in delivers: `before` is the offset to page back
 * from with `history` (the first record delivered after it). It is not stored and carries no `seq`.
 */
export function limitedNotice(account: string, group: string, before: number, epoch: string): string {
  return JSON.stringify({ type: 'notice', msg: { group, limited: true, before, epoch }, to: account, method: { act: 'limited', cat: 'group' } });
}
