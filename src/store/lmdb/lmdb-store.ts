/**
 * `Store` on LMDB (lmdb-js): one environment at `<dir>/store`, seven named databases, keys in
 * lmdb-js ordered-binary encoding (arrays compare element by element), so range reads come out in
 * order:
 *
 * - log:       [conv, offset]      → [at, from, mid|null, head, tail]
 * - convs:     conv                → ConvTop {first, last, count}
 * - mids:      [conv, from, mid]   → offset
 * - positions: account             → AccountPositions
 * - members:   [account, conv]     → since
 * - states:    address             → JSON value
 * - meta:      'epoch' | 'lastOffset'
 *
 * Nothing of the data is kept in process memory beyond the queued writes of the current turn and
 * a bounded cache of conversation tops: reads go to the memory-mapped file.
 *
 * Writes are queued and committed in one transaction per event-loop turn (turn-writer.ts). Point
 * reads (`top`, `findMid`, `positions.get`, `membership`, `states.get`) and `append` do not commit:
 * they see the turn's queued writes in the overlay (overlay.ts) and otherwise the committed data,
 * so the delivery actor's reads between its appends cost no transaction. Range reads (`read`,
 * `conversations`, `memberships`, `states.list`, `backup`) commit the queued writes first, and
 * `trimThrough` runs in a transaction of its own with them. This process must be the only writer
 * of the environment (the offset counter and the top cache assume it).
 *
 * Durability (see `flush`): 'always' fsyncs inside every commit (one per turn with writes);
 * 'grouped' commits without fsync (MDB_NOSYNC) and runs one shared `mdb_env_sync` on a worker
 * thread per group of flushes, and at most BACKGROUND_SYNC_MS after any commit; 'off' never fsyncs.
 * Under all three a killed process loses nothing committed (the pages are in the OS cache). Under
 * 'grouped' and 'off' a power loss can lose the unsynced tail, and, as LMDB documents for NOSYNC,
 * may leave that tail torn; 'always' keeps LMDB's full crash safety.
 */
import { mkdirSync, statSync, statfsSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { LRUCache } from 'lru-cache';
import type {
  AccountPositions, ActorStates, ConvId, ConvTop, ConversationLog, LogEntry, Membership, NewEntry, Positions,
  ReadQuery, Store, StoreHealth, StoreStats,
} from '../ports';
import { StoreError } from '../ports';
import { closedError, hasMidKey, jsonCopy, newEpoch, toLogEntry } from '../common';
import { logger } from '../../log';
import { toStoreError } from './errors';
import { GroupSync } from './group-sync';
import { Overlay, memberKey, midKey } from './overlay';
import { TurnWriter } from './turn-writer';

export type LmdbFsync = 'always' | 'grouped' | 'off';

export interface LmdbOpenOptions {
  dir: string;
  fsync: LmdbFsync;
  /** Conversation tops kept in memory for `append` and `top` (default TOP_CACHE; 0: none). */
  topCache?: number;
}

/** Default size of the top cache: the conversations active at once on a busy node. */
const TOP_CACHE = 10_000;

/** Above every offset: the open end of a range within one conversation. */
const MAX_OFFSET = Number.MAX_SAFE_INTEGER;
/** Above every conversation id (they are ASCII: `d:`, `g:`, `a:`): the open end of an account's memberships. */
const MAX_CONV = '\uffff';

/**
 * 'grouped': longest time a commit nobody flushed stays without fsync. Bounds what a power loss
 * can take (and the window in which LMDB without sync-on-commit is exposed to a torn write).
 */
const BACKGROUND_SYNC_MS = 100;

/**
 * Free bytes the file system keeps beyond what a commit writes: below that the commit is not tried
 * and counts as failed for lack of space. lmdb-js must not meet a failed write: lmdb-js 3.5.6
 * formats the message of a write that fails with an errno (ENOSPC) into a 100-byte heap buffer it
 * overruns (mdb.c, mdb_page_flush: `last_error = malloc(100); sprintf(...)`), and the process then
 * aborts ("munmap_chunk(): invalid pointer") or carries a corrupt heap. A short write is reported
 * as EIO without that message; an I/O error with less than this free also counts as full.
 */
const FREE_RESERVE = 1024 * 1024;
/** Free bytes the probe wants before it turns writing back on (more than the reserve: no flapping). */
const PROBE_FREE = 4 * FREE_RESERVE;
/** What the probe writes (and removes again): a write of some pages, not only of the meta page. */
const PROBE_BYTES = 64 * 1024;

/** Free bytes for an unprivileged writer on the file system holding `dir` (Infinity if unknown). */
function freeBytes(dir: string): number {
  try {
    const f = statfsSync(dir);
    return f.bavail * f.bsize;
  } catch {
    return Infinity;
  }
}

type LogValue = [at: number, from: string | null, mid: string | null, head: string, tail: string];
type LogKey = [ConvId, number];
type MidKey = [ConvId, string, string];
type MemberKey = [string, ConvId];

interface Dbs {
  log: Database<LogValue, LogKey>;
  convs: Database<ConvTop, ConvId>;
  mids: Database<number, MidKey>;
  positions: Database<AccountPositions, string>;
  members: Database<number, MemberKey>;
  states: Database<unknown, string>;
  meta: Database<string | number, string>;
}

function toEntry(conv: ConvId, offset: number, v: LogValue): LogEntry {
  const e: LogEntry = { conv, offset, at: v[0], from: v[1], head: v[3], tail: v[4] };
  if (v[2] !== null) e.mid = v[2];
  return e;
}

/** What the store classes share: the databases, the writer, and the guard every call passes. */
class Core {
  lastOffset: number;
  private savedOffset: number;
  appended = 0;
  trimmed = 0;
  closed = false;
  readonly writer: TurnWriter;
  /** The queued writes by key, for the reads that do not commit. */
  readonly overlay = new Overlay();
  /**
   * Tops of recently used conversations as they are with the queued writes (the overlay, looked
   * at first, is what is exact while queued; an entry evicted is read again from the data).
   */
  readonly tops: LRUCache<ConvId, ConvTop> | undefined;

  private readonly healthNow: StoreHealth = { writable: true, since: Date.now(), reason: null, failedCommits: 0 };
  private readonly listeners: ((h: StoreHealth) => void)[] = [];

  constructor(readonly root: RootDatabase, readonly dbs: Dbs, onCommit: () => void, topCache: number, private readonly envDir: string) {
    this.tops = topCache > 0 ? new LRUCache<ConvId, ConvTop>({ max: topCache }) : undefined;
    this.lastOffset = this.savedOffset = Number(dbs.meta.get('lastOffset') ?? 0);
    // The counter goes into the transaction that holds the records it numbered, so a restart
    // continues after the last committed offset and never hands one out twice.
    this.writer = new TurnWriter(root, () => {
      if (this.lastOffset !== this.savedOffset) {
        dbs.meta.putSync('lastOffset', this.lastOffset);
        this.savedOffset = this.lastOffset;
      }
    }, onCommit, (committed) => {
      this.overlay.clear();
      // The cache may hold tops of writes that were lost.
      if (!committed) this.tops?.clear();
    }, (err, lost) => this.commitFailed(err, lost), (bytes) => this.spaceFor(bytes));
  }

  /** Before a commit of about `bytes`: the file system has room for them and the reserve (statfs, about 1 µs). */
  private spaceFor(bytes: number): void {
    const free = freeBytes(this.envDir);
    if (free < FREE_RESERVE + 2 * bytes) {
      throw new StoreError(`commit: store full (${free} bytes free on the file system, ${bytes} to write and ${FREE_RESERVE} kept in reserve)`, 'full');
    }
  }

  /** A commit failed: a full disk (or map) turns writing off until the probe succeeds. */
  private commitFailed(err: StoreError, lost: number): StoreError {
    // The counter of that transaction was not written: the next commit writes it (offsets never go back).
    this.savedOffset = -1;
    let e = err;
    if (e.code === 'io' && freeBytes(this.envDir) < FREE_RESERVE) {
      e = new StoreError(`commit: store full (${err.message}; the file system has no space left)`, 'full', { cause: err });
    }
    if (e.code !== 'full') return e;
    this.healthNow.failedCommits++;
    if (this.healthNow.writable) {
      this.healthNow.writable = false;
      this.healthNow.since = Date.now();
      this.healthNow.reason = e.message;
      logger({ mod: 'lmdb-store' }).debug({ lost }, 'store commit failed for lack of space');
      this.emit();
    }
    return e;
  }

  health(): StoreHealth { return { ...this.healthNow }; }

  onHealth(listener: (h: StoreHealth) => void): void { this.listeners.push(listener); }

  private emit(): void {
    const h = this.health();
    for (const l of this.listeners) l(h);
  }

  /**
   * While not writable: enough space free again and a write of some pages (removed again) commits,
   * then writing is on again. The counter goes into the same transaction.
   */
  probe(): boolean {
    if (this.closed) return false;
    if (this.healthNow.writable) return true;
    if (this.writer.failure !== undefined) return false;
    if (freeBytes(this.envDir) < PROBE_FREE) return false;
    const { meta } = this.dbs;
    try {
      this.writer.runNow(() => meta.putSync('probe', '0'.repeat(PROBE_BYTES)));
      this.writer.runNow(() => meta.removeSync('probe'));
    } catch {
      return false;
    }
    this.writer.forgetLoss();
    this.healthNow.writable = true;
    this.healthNow.since = Date.now();
    this.healthNow.reason = null;
    this.emit();
    return true;
  }

  /** Before a write: the store must be open and not failed. */
  writable(): void {
    if (this.closed) throw closedError();
    if (this.writer.failure !== undefined) throw this.writer.failure;
  }

  /**
   * Before a read: commits this process's queued writes, so the read sees them. If they are lost
   * to a full disk the read still answers, from the committed data (reads go on while full).
   */
  readable(): void {
    if (this.closed) throw closedError();
    try {
      this.writer.commitNow();
    } catch (e) {
      if (!(e instanceof StoreError) || e.code !== 'full') throw e;
    }
  }

  /** Runs a read, reporting lmdb-js errors as StoreErrors. */
  read<T>(what: string, fn: () => T): T {
    this.readable();
    return this.peek(what, fn);
  }

  /**
   * Runs a point read without committing: `fn` looks at the overlay first and at the committed
   * data otherwise.
   */
  peek<T>(what: string, fn: () => T): T {
    if (this.closed) throw closedError();
    try {
      return fn();
    } catch (e) {
      throw toStoreError(e, what);
    }
  }

  /** A conversation's top with the queued writes (the caller must not change it). */
  top(conv: ConvId): ConvTop | undefined {
    const pending = this.overlay.tops.get(conv);
    if (pending !== undefined) return pending;
    const cached = this.tops?.get(conv);
    if (cached !== undefined) return cached;
    // Nothing queued for it: the committed top is the current one.
    const t = this.dbs.convs.get(conv);
    if (t === undefined) return undefined;
    const top: ConvTop = { first: t.first, last: t.last, count: t.count };
    this.tops?.set(conv, top);
    return top;
  }
}

class LmdbLog implements ConversationLog {
  constructor(private readonly c: Core) {}

  append(entry: NewEntry): LogEntry {
    this.c.writable();
    const c = this.c;
    const conv = entry.conv;
    // Before the offset is taken: a failed read of the top gives no offset away.
    const prev = c.peek('append', () => c.top(conv));
    const e = toLogEntry(entry, ++c.lastOffset);
    c.appended++;
    const { log, convs, mids } = c.dbs;
    const { overlay } = c;
    const value: LogValue = [e.at, e.from, e.mid ?? null, e.head, e.tail];
    const top: ConvTop = prev === undefined
      ? { first: e.offset, last: e.offset, count: 1 }
      : { first: prev.first, last: e.offset, count: prev.count + 1 };
    // The conversation's top is written once per transaction, with its value when it runs.
    const topQueued = overlay.tops.has(conv);
    if (hasMidKey(e)) {
      const { from, mid, offset } = e;
      c.writer.queue(() => {
        log.putSync([conv, offset], value);
        mids.putSync([conv, from, mid], offset);
      }, e.head.length + e.tail.length + conv.length + from.length + mid.length + 64);
      overlay.mids.set(midKey(conv, from, mid), offset);
    } else {
      c.writer.queue(() => log.putSync([conv, e.offset], value), e.head.length + e.tail.length + conv.length + 64);
    }
    if (!topQueued) c.writer.queue(() => convs.putSync(conv, overlay.tops.get(conv)!));
    overlay.tops.set(conv, top);
    c.tops?.set(conv, top);
    return { ...e };
  }

  read(q: ReadQuery): LogEntry[] {
    return this.c.read('read', () => {
      if (q.limit <= 0) return [];
      const lo = q.after ?? 0;
      const hi = q.before ?? MAX_OFFSET;
      if (hi - lo <= 1) return [];
      const { log } = this.c.dbs;
      const out: LogEntry[] = [];
      if (q.direction === 'forward') {
        for (const { key, value } of log.getRange({ start: [q.conv, lo + 1], end: [q.conv, hi], limit: q.limit })) {
          out.push(toEntry(q.conv, key[1], value));
        }
      } else {
        // Reverse ranges run from `start` down to `end` (exclusive).
        for (const { key, value } of log.getRange({ start: [q.conv, hi - 1], end: [q.conv, lo], reverse: true, limit: q.limit })) {
          out.push(toEntry(q.conv, key[1], value));
        }
        out.reverse();
      }
      return out;
    });
  }

  top(conv: ConvId): ConvTop | undefined {
    return this.c.peek('top', () => {
      const t = this.c.top(conv);
      return t === undefined ? undefined : { first: t.first, last: t.last, count: t.count };
    });
  }

  trimThrough(conv: ConvId, upTo: number): number {
    this.c.writable();
    const { log, convs, mids } = this.c.dbs;
    // In one transaction with the queued writes: the count returned must be of the data as this
    // process last wrote it.
    const [n, after] = this.c.writer.runNow((): [number, ConvTop | undefined] => {
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
    });
    // Committed: the cache follows.
    if (after === undefined) this.c.tops?.delete(conv);
    else this.c.tops?.set(conv, { first: after.first, last: after.last, count: after.count });
    this.c.trimmed += n;
    return n;
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

export class LmdbStore implements Store {
  readonly epoch: string;
  readonly log: ConversationLog;
  readonly positions: Positions;
  readonly states: ActorStates;
  private readonly core: Core;
  private readonly groupSync: GroupSync | undefined;

  private constructor(private readonly envDir: string, private readonly fsync: LmdbFsync, root: RootDatabase, dbs: Dbs, topCache: number) {
    this.core = new Core(root, dbs, () => this.afterCommit(), topCache, envDir);
    let epoch = dbs.meta.get('epoch');
    if (typeof epoch !== 'string') {
      // First open of this environment: its epoch is made once and kept.
      const made = newEpoch();
      root.transactionSync(() => dbs.meta.putSync('epoch', made));
      epoch = made;
    }
    this.epoch = epoch;
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
      const dbs: Dbs = {
        log: root.openDB<LogValue, LogKey>({ name: 'log', encoding: 'msgpack' }),
        convs: root.openDB<ConvTop, ConvId>({ name: 'convs', encoding: 'msgpack' }),
        mids: root.openDB<number, MidKey>({ name: 'mids', encoding: 'msgpack' }),
        positions: root.openDB<AccountPositions, string>({ name: 'positions', encoding: 'msgpack' }),
        members: root.openDB<number, MemberKey>({ name: 'members', encoding: 'msgpack' }),
        states: root.openDB<unknown, string>({ name: 'states', encoding: 'json' }),
        meta: root.openDB<string | number, string>({ name: 'meta', encoding: 'msgpack' }),
      };
      return new LmdbStore(envDir, opts.fsync, root, dbs, opts.topCache ?? TOP_CACHE);
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

  health(): StoreHealth { return this.core.health(); }

  onHealth(listener: (h: StoreHealth) => void): void { this.core.onHealth(listener); }

  probe(): boolean { return this.core.probe(); }

  stats(): StoreStats {
    if (this.core.closed) throw closedError();
    let bytes = 0;
    try {
      bytes = statSync(path.join(this.envDir, 'data.mdb')).size;
    } catch {
      // Not there yet (nothing committed): 0 bytes.
    }
    const entries: Record<string, number> = {};
    for (const [name, db] of Object.entries(this.core.dbs)) {
      entries[name] = (db.getStats() as { entryCount?: number }).entryCount ?? 0;
    }
    const env = this.core.root.getStats() as { mapSize?: number };
    return {
      backend: 'lmdb',
      epoch: this.epoch,
      lastOffset: this.core.lastOffset,
      appended: this.core.appended,
      trimmed: this.core.trimmed,
      bytes,
      fsync: this.fsync,
      entries,
      mapSize: env.mapSize ?? 0,
      commits: this.core.writer.commits,
      pendingWrites: this.core.writer.pending,
    };
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
