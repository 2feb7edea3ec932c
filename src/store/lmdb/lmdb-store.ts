/**
 * `Store` on LMDB (lmdb-js): one environment at `<dir>/store`, seven named databases (their
 * layout: schema.ts). What the port implementations share (databases, turn writer and overlay,
 * guards, probe) is in core.ts.
 *
 * Nothing of the data is kept in process memory beyond the queued writes of the current turn and
 * a bounded cache of conversation tops: reads go to the memory-mapped file.
 *
 * Durability (see `flush`): 'always' fsyncs inside every commit (one per turn with writes);
 * 'grouped' commits without fsync (MDB_NOSYNC) and runs one shared `mdb_env_sync` on a worker
 * thread per group of flushes, and at most BACKGROUND_SYNC_MS after any commit; 'off' never fsyncs.
 * Under all three a killed process loses nothing committed (the pages are in the OS cache). Under
 * 'grouped' and 'off' a power loss can lose the unsynced tail, and, as LMDB documents for NOSYNC,
 * may leave that tail torn; 'always' keeps LMDB's full crash safety.
 */
import { mkdirSync, statSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import type {
  ActorStates, AccountPositions, ConvId, ConvTop, ConversationLog, LogEntry, Membership, NewEntry, Positions,
  ReadQuery, Store, StoreHealth, StoreStats,
} from '../ports';
import { StoreError } from '../ports';
import { closedError, hasMidKey, jsonCopy, newEpoch, toLogEntry } from '../common';
import { logger } from '../../log';
import { Core } from './core';
import { toStoreError } from './errors';
import { GroupSync } from './group-sync';
import { memberKey, midKey } from './overlay';
import { MAX_CONV, MAX_OFFSET, openDbs, type Dbs, type LogValue } from './schema';

export type LmdbFsync = 'always' | 'grouped' | 'off';

export interface LmdbOpenOptions {
  dir: string;
  fsync: LmdbFsync;
  /** Conversation tops kept in memory for `append` and `top` (default TOP_CACHE; 0: none). */
  topCache?: number;
}

/** Default size of the top cache: the conversations active at once on a busy node. */
const TOP_CACHE = 10_000;

/**
 * 'grouped': longest time a commit nobody flushed stays without fsync. Bounds what a power loss
 * can take (and the window in which LMDB without sync-on-commit is exposed to a torn write).
 */
const BACKGROUND_SYNC_MS = 100;

function toEntry(conv: ConvId, offset: number, v: LogValue): LogEntry {
  const e: LogEntry = { conv, offset, at: v[0], from: v[1], head: v[3], tail: v[4] };
  if (v[2] !== null) e.mid = v[2];
  return e;
}

function copyTop(t: ConvTop): ConvTop {
  return { first: t.first, last: t.last, count: t.count };
}

class LmdbLog implements ConversationLog {
  constructor(private readonly c: Core) {}

  append(entry: NewEntry): LogEntry {
    this.c.writable();
    const c = this.c;
    const conv = entry.conv;
    // Before the offset is taken: a failed read of the top gives no offset away.
    const prev = c.peek('append', () => this.currentTop(conv));
    const e = toLogEntry(entry, ++c.lastOffset);
    c.appended++;
    const top: ConvTop = prev === undefined
      ? { first: e.offset, last: e.offset, count: 1 }
      : { first: prev.first, last: e.offset, count: prev.count + 1 };
    this.queueRecord(e);
    this.queueTop(conv, top);
    return { ...e };
  }

  /** Queues the record (and its mid key, if it has one) for the turn's commit. */
  private queueRecord(e: LogEntry): void {
    const c = this.c;
    const { log, mids } = c.dbs;
    const conv = e.conv;
    const value: LogValue = [e.at, e.from, e.mid ?? null, e.head, e.tail];
    if (hasMidKey(e)) {
      const { from, mid, offset } = e;
      c.writer.queue(() => {
        log.putSync([conv, offset], value);
        mids.putSync([conv, from, mid], offset);
      }, e.head.length + e.tail.length + conv.length + from.length + mid.length + 64);
      c.overlay.mids.set(midKey(conv, from, mid), offset);
    } else {
      c.writer.queue(() => log.putSync([conv, e.offset], value), e.head.length + e.tail.length + conv.length + 64);
    }
  }

  /** The conversation's top is written once per transaction, with its value when it runs. */
  private queueTop(conv: ConvId, top: ConvTop): void {
    const { overlay } = this.c;
    const { convs } = this.c.dbs;
    if (!overlay.tops.has(conv)) this.c.writer.queue(() => convs.putSync(conv, overlay.tops.get(conv)!));
    overlay.tops.set(conv, top);
    this.c.tops?.set(conv, top);
  }

  /** A conversation's top with the queued writes (the caller must not change it). */
  private currentTop(conv: ConvId): ConvTop | undefined {
    const pending = this.c.overlay.tops.get(conv);
    if (pending !== undefined) return pending;
    const cached = this.c.tops?.get(conv);
    if (cached !== undefined) return cached;
    // Nothing queued for it: the committed top is the current one.
    const t = this.c.dbs.convs.get(conv);
    if (t === undefined) return undefined;
    const top = copyTop(t);
    this.c.tops?.set(conv, top);
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
    const out: LogEntry[] = [];
    for (const { key, value } of this.c.dbs.log.getRange({ start: [conv, lo + 1], end: [conv, hi], limit })) {
      out.push(toEntry(conv, key[1], value));
    }
    return out;
  }

  private readBackward(conv: ConvId, lo: number, hi: number, limit: number): LogEntry[] {
    const out: LogEntry[] = [];
    // Reverse ranges run from `start` down to `end` (exclusive).
    for (const { key, value } of this.c.dbs.log.getRange({ start: [conv, hi - 1], end: [conv, lo], reverse: true, limit })) {
      out.push(toEntry(conv, key[1], value));
    }
    return out.reverse();
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
    const top = convs.get(conv);
    if (top === undefined || top.first > upTo) return [0, top];
    // Collected first (offset and mid key only, not the frames): a cursor is not walked while
    // the tree under it changes.
    const gone: [offset: number, from: string | null, mid: string | null][] = [];
    for (const { key, value } of log.getRange({ start: [conv, 0], end: [conv, upTo + 1] })) gone.push([key[1], value[1], value[2]]);
    for (const [offset, from, mid] of gone) {
      log.removeSync([conv, offset]);
      if (from !== null && mid !== null && mids.get([conv, from, mid]) === offset) mids.removeSync([conv, from, mid]);
    }
    const count = top.count - gone.length;
    if (count <= 0) {
      convs.removeSync(conv);
      return [gone.length, undefined];
    }
    let first = top.last;
    for (const k of log.getKeys({ start: [conv, upTo + 1], end: [conv, MAX_OFFSET], limit: 1 })) first = k[1];
    const left: ConvTop = { first, last: top.last, count };
    convs.putSync(conv, left);
    return [gone.length, left];
  }

  redact(conv: ConvId, offset: number, replacement: { head: string; tail: string }): boolean {
    this.c.writable();
    const { log } = this.c.dbs;
    // In one transaction with the queued writes (the record may have been appended this turn).
    // LMDB copies the page on write: the old page with the content goes to the free list and is
    // overwritten when a later commit reuses it; a compacting backup never copies it.
    return this.c.writer.runNow(() => {
      const v = log.get([conv, offset]);
      if (v === undefined) return false;
      log.putSync([conv, offset], [v[0], v[1], v[2], replacement.head, replacement.tail]);
      return true;
    });
  }

  findMid(conv: ConvId, from: string, mid: string): number | undefined {
    return this.c.peek('findMid', () => this.c.overlay.mids.get(midKey(conv, from, mid)) ?? this.c.dbs.mids.get([conv, from, mid]));
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

class LmdbPositions implements Positions {
  constructor(private readonly c: Core) {}

  get(account: string): AccountPositions | undefined {
    return this.c.peek('positions.get', () => {
      const p = this.c.overlay.positions.get(account) ?? this.c.dbs.positions.get(account);
      return p === undefined ? undefined : { delivered: p.delivered, acked: p.acked, ackMode: p.ackMode };
    });
  }

  set(account: string, p: AccountPositions): void {
    this.c.writable();
    const { overlay } = this.c;
    const { positions } = this.c.dbs;
    // Once per transaction, with the last value set.
    if (!overlay.positions.has(account)) this.c.writer.queue(() => positions.putSync(account, overlay.positions.get(account)!));
    overlay.positions.set(account, { delivered: p.delivered, acked: p.acked, ackMode: p.ackMode });
  }

  join(account: string, conv: ConvId, since: number): void {
    this.member(account, conv, since);
  }

  leave(account: string, conv: ConvId): void {
    this.member(account, conv, null);
  }

  /** Queues a join (`since`) or a leave (null): written once per transaction, the last one. */
  private member(account: string, conv: ConvId, since: number | null): void {
    this.c.writable();
    const { overlay } = this.c;
    const { members } = this.c.dbs;
    const key = memberKey(account, conv);
    if (!overlay.members.has(key)) {
      this.c.writer.queue(() => {
        const v = overlay.members.get(key)!;
        if (v === null) members.removeSync([account, conv]);
        else members.putSync([account, conv], v);
      });
    }
    overlay.members.set(key, since);
  }

  membership(account: string, conv: ConvId): Membership | undefined {
    return this.c.peek('membership', () => {
      const pending = this.c.overlay.members.get(memberKey(account, conv));
      const since = pending === undefined ? this.c.dbs.members.get([account, conv]) : pending;
      return since === undefined || since === null ? undefined : { conv, since };
    });
  }

  memberships(account: string): Membership[] {
    return this.c.read('memberships', () => {
      const out: Membership[] = [];
      for (const { key, value } of this.c.dbs.members.getRange({ start: [account, ''], end: [account, MAX_CONV] })) {
        if (key[0] === account) out.push({ conv: key[1], since: value });
      }
      return out;
    });
  }
}

class LmdbStates implements ActorStates {
  constructor(private readonly c: Core) {}

  get(address: string): unknown {
    return this.c.peek('states.get', () => {
      const pending = this.c.overlay.states.get(address);
      if (pending === undefined) return this.c.dbs.states.get(address);
      // A fresh copy each time, as from the data.
      return pending === null ? undefined : JSON.parse(pending);
    });
  }

  put(address: string, state: unknown): void {
    this.c.writable();
    const { overlay } = this.c;
    const { states } = this.c.dbs;
    // Copied now (as JSON text): the caller may change its object before the end of the turn.
    const text = state === undefined ? null : jsonCopy(state);
    if (!overlay.states.has(address)) {
      // Once per transaction, with the last state put.
      this.c.writer.queue(() => {
        const v = overlay.states.get(address)!;
        if (v === null) states.removeSync(address);
        else states.putSync(address, JSON.parse(v));
      }, (text?.length ?? 0) + address.length + 64);
    }
    overlay.states.set(address, text);
  }

  list(prefix: string, after: string | undefined, limit: number): string[] {
    return this.c.read('states.list', () => {
      if (limit <= 0) return [];
      const start = after !== undefined && after > prefix ? after : prefix;
      const out: string[] = [];
      for (const k of this.c.dbs.states.getKeys({ start })) {
        if (!k.startsWith(prefix)) {
          if (k > prefix) break; // keys are in byte order: past the prefix, nothing more matches
          continue;
        }
        if (after !== undefined && k <= after) continue;
        out.push(k);
        if (out.length >= limit) break;
      }
      return out;
    });
  }
}

/** The environment's epoch, made and kept at its first open. */
function epochOf(root: RootDatabase, dbs: Dbs): string {
  const epoch = dbs.meta.get('epoch');
  if (typeof epoch === 'string') return epoch;
  const made = newEpoch();
  root.transactionSync(() => dbs.meta.putSync('epoch', made));
  return made;
}

export class LmdbStore implements Store {
  readonly epoch: string;
  readonly log: ConversationLog;
  readonly positions: Positions;
  readonly states: ActorStates;
  private readonly core: Core;
  private readonly groupSync: GroupSync | undefined;

  private constructor(private readonly envDir: string, private readonly fsync: LmdbFsync, root: RootDatabase, dbs: Dbs, topCache: number) {
    this.core = new Core(root, dbs, () => this.afterCommit(), topCache, envDir);
    this.epoch = epochOf(root, dbs);
    this.log = new LmdbLog(this.core);
    this.positions = new LmdbPositions(this.core);
    this.states = new LmdbStates(this.core);
    if (fsync === 'grouped') {
      // `sync(cb)` exists on the lmdb-js root (mdb_env_sync(force) on a libuv worker thread, so
      // the event loop goes on) but is missing from its typings.
      const syncable = root as unknown as { sync(cb: (err?: unknown) => void): void };
      this.groupSync = new GroupSync((done) => syncable.sync(done));
    }
  }

  private backgroundSync: NodeJS.Timeout | undefined;

  /** 'grouped': a commit is fsync'd within BACKGROUND_SYNC_MS even if nobody flushes. */
  private afterCommit(): void {
    if (this.groupSync === undefined || this.backgroundSync !== undefined) return;
    this.backgroundSync = setTimeout(() => {
      this.backgroundSync = undefined;
      if (this.core.closed) return;
      this.groupSync!.request().catch((e: unknown) => {
        logger({ mod: 'lmdb-store' }).error({ err: e }, 'background sync failed');
      });
    }, BACKGROUND_SYNC_MS);
    this.backgroundSync.unref();
  }

  /** Opens (creating if needed) the environment at `<dir>/store`. */
  static open(opts: LmdbOpenOptions): LmdbStore {
    const envDir = path.join(opts.dir, 'store');
    try {
      mkdirSync(envDir, { recursive: true });
      const root = open({
        path: envDir,
        maxDbs: 8,
        // 'always': every commit fsyncs before it returns. 'grouped': commits do not, flush()
        // and the background timer sync. 'off': never. (lmdb-js overlapping sync is not used: it
        // still fsyncs inside a synchronous commit, on the event loop.)
        noSync: opts.fsync !== 'always',
        overlappingSync: false,
      });
      return new LmdbStore(envDir, opts.fsync, root, openDbs(root), opts.topCache ?? TOP_CACHE);
    } catch (e) {
      throw toStoreError(e, `open ${envDir}`);
    }
  }

  /**
   * Resolves once everything written before the call is durable. Waits for the turn's one commit
   * (it does not commit early: all flushes of a turn share that commit); then 'always' is on disk
   * (its commits fsync), 'grouped' waits for the next shared fsync, 'off' is done.
   */
  flush(): Promise<void> {
    if (this.core.closed) return Promise.reject(closedError());
    const committed = this.core.writer.whenCommitted();
    const groupSync = this.groupSync;
    if (groupSync === undefined) return committed;
    return committed.then(() => groupSync.request()).catch((e: unknown) => { throw toStoreError(e, 'flush'); });
  }

  /**
   * A compacted copy of the environment (mdb_env_copy, one read transaction, so consistent while
   * writes go on) into `<dest>/store`. Includes everything this process wrote before the call.
   */
  async backup(dest: string): Promise<void> {
    this.core.readable();
    const target = path.join(dest, 'store');
    await mkdir(target, { recursive: true });
    if ((await readdir(target)).length > 0) throw new StoreError(`backup target ${target} is not empty`, 'io');
    try {
      await this.core.root.backup(target, true);
    } catch (e) {
      throw toStoreError(e, 'backup');
    }
  }

  health(): StoreHealth { return this.core.health.snapshot(); }

  onHealth(listener: (h: StoreHealth) => void): void { this.core.health.onChange(listener); }

  probe(): boolean { return this.core.probe(); }

  stats(): StoreStats {
    if (this.core.closed) throw closedError();
    const env = this.core.root.getStats() as { mapSize?: number };
    return {
      backend: 'lmdb',
      epoch: this.epoch,
      lastOffset: this.core.lastOffset,
      appended: this.core.appended,
      trimmed: this.core.trimmed,
      bytes: this.dataBytes(),
      fsync: this.fsync,
      entries: this.entryCounts(),
      mapSize: env.mapSize ?? 0,
      commits: this.core.writer.commits,
      pendingWrites: this.core.writer.pending,
    };
  }

  /** Size of the data file (0 while nothing was committed: it is not there yet). */
  private dataBytes(): number {
    try {
      return statSync(path.join(this.envDir, 'data.mdb')).size;
    } catch {
      return 0;
    }
  }

  /** Records in each database, by name. */
  private entryCounts(): Record<string, number> {
    const entries: Record<string, number> = {};
    for (const [name, db] of Object.entries(this.core.dbs)) {
      entries[name] = (db.getStats() as { entryCount?: number }).entryCount ?? 0;
    }
    return entries;
  }

  /** Commits and syncs what is queued, then closes the environment. Later calls fail with 'closed'. */
  async close(): Promise<void> {
    if (this.core.closed) return;
    let failure: unknown;
    try {
      await this.flush();
    } catch (e) {
      failure = e;
    }
    this.core.closed = true;
    if (this.backgroundSync !== undefined) clearTimeout(this.backgroundSync);
    await this.groupSync?.idle();
    await this.core.root.close();
    if (failure !== undefined) throw failure;
  }
}

/** Compile-time check that the class keeps implementing the port. */
const _check: { open(opts: LmdbOpenOptions): Store } = LmdbStore;
void _check;
