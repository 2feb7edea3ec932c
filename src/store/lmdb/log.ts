/**
 * `ConversationLog` on LMDB: the records (`log`), the conversation tops (`convs`) and the client
 * message ids (`mids`) of schema.ts. Appends are queued for the turn's commit and seen by point
 * reads through the overlay and the top cache (core.ts); trimming and redaction run in a
 * transaction of their own with the queued writes, since they return what they found in the data.
 * An append at a given offset (a cluster's) may land anywhere in its conversation: keys are
 * [conv, offset], so ranges come out in offset order whatever the order of the appends.
 *
 * A record whose checksum fails is skipped by every read (and reported once, damage.ts): a page
 * still holds `limit` genuine records when there are that many, so a reader paging on never stops
 * early at it. A damaged top is counted again from the records; a damaged mid key is not found.
 */
import type { ConvId, ConvTop, ConversationLog, LogEntry, NewEntry, ReadQuery } from '../ports';
import { checkOffset, hasMidKey, toLogEntry } from '../common';
import type { Core } from './core';
import { logCodec, numberCodec, seeds, topCodec } from './codecs';
import { midKey, recordKey } from './overlay';
import { MAX_OFFSET, type LogKey, type LogValue } from './schema';

function toEntry(conv: ConvId, offset: number, v: LogValue): LogEntry {
  const e: LogEntry = { conv, offset, at: v[0], from: v[1], head: v[3], tail: v[4] };
  if (v[2] !== null) e.mid = v[2];
  return e;
}

/** Records of `range` that pass their checksum, at most `limit`; the others reported. */
function genuine(c: Core, range: Iterable<{ key: LogKey; value: Buffer }>, limit: number): LogEntry[] {
  const out: LogEntry[] = [];
  if (limit <= 0) return out;
  for (const { key, value } of range) {
    const [conv, offset] = key;
    const v = logCodec.decode(value, seeds.log(conv, offset));
    if (v === undefined) {
      c.damage.found('log', `${conv} offset ${offset}`, { conv, offset });
      continue;
    }
    out.push(toEntry(conv, offset, v));
    if (out.length >= limit) break;
  }
  return out;
}

function copyTop(t: ConvTop): ConvTop {
  return { first: t.first, last: t.last, count: t.count };
}

export class LmdbLog implements ConversationLog {
  constructor(private readonly c: Core) {}

  append(entry: NewEntry, offset?: number): LogEntry {
    this.c.writable();
    if (offset !== undefined) return this.appendAt(entry, offset);
    const c = this.c;
    const conv = entry.conv;
    // Before the offset is taken: a failed read of the top gives no offset away.
    const prev = c.peek('append', () => this.currentTop(conv));
    const e = toLogEntry(entry, ++c.lastOffset);
    if (c.pending.current.numberedFrom === 0) c.pending.current.numberedFrom = e.offset;
    c.appended++;
    const top: ConvTop = prev === undefined
      ? { first: e.offset, last: e.offset, count: 1 }
      : { first: prev.first, last: e.offset, count: prev.count + 1 };
    this.queueRecord(e);
    this.queueTop(conv, top);
    return { ...e };
  }

  /**
   * An append at a given offset (the port's contract): anywhere in the conversation, not only
   * above its last; a no-op returning the record if the conversation holds that offset already.
   * Only an offset within the conversation's [first, last] can be held, so a cluster's appends
   * in ledger order read nothing more than the top; one inside the range (a backfill below newer
   * records, an entry applied again) costs one point read of the record, no commit.
   */
  private appendAt(entry: NewEntry, offset: number): LogEntry {
    checkOffset(offset);
    const c = this.c;
    const conv = entry.conv;
    const prev = c.peek('append', () => this.currentTop(conv));
    const held = prev !== undefined && offset >= prev.first && offset <= prev.last
      ? c.peek('append', () => this.heldAt(conv, offset))
      : undefined;
    if (held !== undefined && held !== null) return held;
    const e = toLogEntry(entry, offset);
    this.queueRecord(e);
    c.pending.current.records.set(recordKey(conv, offset), e);
    // A damaged record there (held: null) is written over with the record applied again: the
    // top counts it already.
    if (held === null) return { ...e };
    if (offset > c.lastOffset) c.lastOffset = offset;
    c.appended++;
    this.queueTop(conv, prev === undefined
      ? { first: offset, last: offset, count: 1 }
      : { first: Math.min(prev.first, offset), last: Math.max(prev.last, offset), count: prev.count + 1 });
    return { ...e };
  }

  /** The record at (conv, offset) with the writes not committed; null: one is there, damaged. */
  private heldAt(conv: ConvId, offset: number): LogEntry | null | undefined {
    const { pending } = this.c;
    const queued = pending.record(recordKey(conv, offset));
    if (queued !== undefined) return { ...queued };
    // One of the store's own numbering not committed yet could be it: commit, then look (rare:
    // only a store given offsets and numbering within a batch gets here).
    const numbered = pending.numberedFrom();
    if (numbered !== 0 && offset >= numbered) this.c.writer.commitNow();
    const raw = this.c.dbs.log.get([conv, offset]);
    if (raw === undefined) return undefined;
    return genuine(this.c, [{ key: [conv, offset], value: raw }], 1)[0] ?? null;
  }

  /** Writes the record (and its mid key, if it has one) into the turn's batch. */
  private queueRecord(e: LogEntry): void {
    const c = this.c;
    const conv = e.conv;
    const value: LogValue = [e.at, e.from, e.mid ?? null, e.head, e.tail];
    // Encoded (and checksummed) into a reused buffer, which the batch copies.
    c.writer.put('log', [conv, e.offset], logCodec.encode(value, seeds.log(conv, e.offset)));
    if (hasMidKey(e)) {
      const { from, mid, offset } = e;
      c.writer.put('mids', [conv, from, mid], numberCodec.encode(offset, seeds.mids(conv, from, mid)));
      c.pending.current.mids.set(midKey(conv, from, mid), offset);
    }
  }

  /** The conversation's top goes into the batch once, with its last value, when it is sealed (core.ts). */
  private queueTop(conv: ConvId, top: ConvTop): void {
    this.c.writer.touch();
    this.c.pending.current.tops.set(conv, top);
    this.c.tops?.set(conv, top);
  }

  /** A conversation's top with the writes not committed (the caller must not change it). */
  private currentTop(conv: ConvId): ConvTop | undefined {
    const pending = this.c.pending.top(conv);
    if (pending !== undefined) return pending;
    const cached = this.c.tops?.get(conv);
    if (cached !== undefined) return cached;
    // Nothing queued for it: the committed top is the current one.
    const top = this.storedTop(conv);
    if (top !== undefined) this.c.tops?.set(conv, top);
    return top;
  }

  /** The committed top; a damaged one is counted again from the records (and rewritten by the next append or trim). */
  private storedTop(conv: ConvId): ConvTop | undefined {
    const raw = this.c.dbs.convs.get(conv);
    if (raw === undefined) return undefined;
    const t = topCodec.decode(raw, seeds.convs(conv));
    if (t !== undefined) return t;
    this.c.damage.found('convs', conv, { conv });
    let top: ConvTop | undefined;
    for (const { offset } of genuine(this.c, this.c.dbs.log.getRange({ start: [conv, 0], end: [conv, MAX_OFFSET] }), Infinity)) {
      top = top === undefined ? { first: offset, last: offset, count: 1 } : { first: top.first, last: offset, count: top.count + 1 };
    }
    return top;
  }

  read(q: ReadQuery): LogEntry[] {
    return this.c.read('read', () => {
      if (q.limit <= 0) return [];
      const lo = q.after ?? 0;
      const hi = q.before ?? MAX_OFFSET;
      if (hi - lo <= 1) return [];
      return q.direction === 'forward' ? this.readForward(q.conv, lo, hi, q.limit) : this.readBackward(q.conv, lo, hi, q.limit);
    });
  }

  private readForward(conv: ConvId, lo: number, hi: number, limit: number): LogEntry[] {
    return genuine(this.c, this.c.dbs.log.getRange({ start: [conv, lo + 1], end: [conv, hi] }), limit);
  }

  private readBackward(conv: ConvId, lo: number, hi: number, limit: number): LogEntry[] {
    // Reverse ranges run from `start` down to `end` (exclusive).
    return genuine(this.c, this.c.dbs.log.getRange({ start: [conv, hi - 1], end: [conv, lo], reverse: true }), limit).reverse();
  }

  top(conv: ConvId): ConvTop | undefined {
    return this.c.peek('top', () => {
      const t = this.currentTop(conv);
      return t === undefined ? undefined : copyTop(t);
    });
  }

  trimThrough(conv: ConvId, upTo: number): number {
    this.c.writable();
    // In one transaction with the queued writes: the count returned must be of the data as this
    // process last wrote it.
    const [n, after] = this.c.writer.runNow(() => this.trimInTxn(conv, upTo));
    // Committed: the cache follows.
    if (after === undefined) this.c.tops?.delete(conv);
    else this.c.tops?.set(conv, copyTop(after));
    this.c.trimmed += n;
    return n;
  }

  /** Inside the transaction: removes the records and returns how many went and the top left. */
  private trimInTxn(conv: ConvId, upTo: number): [number, ConvTop | undefined] {
    const { log, convs, mids } = this.c.dbs;
    const top = this.storedTop(conv);
    if (top === undefined || top.first > upTo) return [0, top];
    // Collected first (offset and mid key only, not the frames): a cursor is not walked while
    // the tree under it changes. A damaged record goes too (its mid key, unknown, stays).
    const gone: [offset: number, from: string | null, mid: string | null][] = [];
    for (const { key, value } of log.getRange({ start: [conv, 0], end: [conv, upTo + 1] })) {
      const v = logCodec.decode(value, seeds.log(conv, key[1]));
      gone.push([key[1], v?.[1] ?? null, v?.[2] ?? null]);
    }
    for (const [offset, from, mid] of gone) {
      log.removeSync([conv, offset]);
      if (from !== null && mid !== null && this.midOf(conv, from, mid) === offset) mids.removeSync([conv, from, mid]);
    }
    const count = top.count - gone.length;
    if (count <= 0) {
      convs.removeSync(conv);
      return [gone.length, undefined];
    }
    let first = top.last;
    for (const k of log.getKeys({ start: [conv, upTo + 1], end: [conv, MAX_OFFSET], limit: 1 })) first = k[1];
    const left: ConvTop = { first, last: top.last, count };
    convs.putSync(conv, topCodec.encode(left, seeds.convs(conv)));
    return [gone.length, left];
  }

  redact(conv: ConvId, offset: number, replacement: { head: string; tail: string }): boolean {
    this.c.writable();
    const { log } = this.c.dbs;
    // In one transaction with the queued writes (the record may have been appended this turn).
    // LMDB copies the page on write: the old page with the content goes to the free list and is
    // overwritten when a later commit reuses it; a compacting backup never copies it.
    return this.c.writer.runNow(() => {
      const raw = log.get([conv, offset]);
      const seed = seeds.log(conv, offset);
      const v = raw === undefined ? undefined : logCodec.decode(raw, seed);
      if (v === undefined) {
        if (raw !== undefined) this.c.damage.found('log', `${conv} offset ${offset}`, { conv, offset });
        return false;
      }
      log.putSync([conv, offset], logCodec.encode([v[0], v[1], v[2], replacement.head, replacement.tail], seed));
      return true;
    });
  }

  findMid(conv: ConvId, from: string, mid: string): number | undefined {
    return this.c.peek('findMid', () => this.c.pending.mid(midKey(conv, from, mid)) ?? this.midOf(conv, from, mid));
  }

  /** The committed offset of a mid key (a damaged one is not found: at worst a resend is stored again). */
  private midOf(conv: ConvId, from: string, mid: string): number | undefined {
    const raw = this.c.dbs.mids.get([conv, from, mid]);
    if (raw === undefined) return undefined;
    const offset = numberCodec.decode(raw, seeds.mids(conv, from, mid));
    if (offset === undefined) this.c.damage.found('mids', `${conv} ${from} ${mid}`, { conv, from, mid });
    return offset;
  }

  conversations(afterConv: ConvId | undefined, limit: number): ConvId[] {
    return this.c.read('conversations', () => {
      if (limit <= 0) return [];
      const out: ConvId[] = [];
      const opts = afterConv === undefined ? {} : { start: afterConv };
      for (const k of this.c.dbs.convs.getKeys(opts)) {
        if (afterConv !== undefined && k <= afterConv) continue;
        out.push(k);
        if (out.length >= limit) break;
      }
      return out;
    });
  }
}
