/**
 * `Store` kept in memory, for tests: the same contract as the LMDB backend (test/store-contract.test.ts),
 * nothing durable. `backup()` still writes a real copy (a JSON dump) so callers can rely on it.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type {
  AccountMembership, AccountPositions, ActorStates, ConvId, ConvTop, ConversationLog, LogEntry, Membership, NewEntry, Positions,
  ReadQuery, Store, StoreHealth, StoreStats,
} from '../ports';
import { StoreError } from '../ports';
import { checkOffset, closedError, hasMidKey, jsonCopy, newEpoch, toLogEntry } from '../common';

/** Index of the first entry with offset > `after` in an offset-sorted list. */
function firstAfter(list: readonly LogEntry[], after: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!.offset <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function midKey(conv: ConvId, from: string, mid: string): string {
  return JSON.stringify([conv, from, mid]);
}

function sortedAfter(keys: Iterable<string>, after: string | undefined): string[] {
  return [...keys].filter((k) => after === undefined || k > after).sort();
}

interface Counters {
  lastOffset: number;
  appended: number;
  trimmed: number;
  closed: boolean;
  /**
   * Simulated full disk (`MemoryStore.simulateFull`): writes are taken and lost, as a failed commit
   * loses its turn's writes (an append still gets its offset), and the next flush fails with 'full'.
   */
  full: boolean;
  /** Writes lost since the last flush. */
  lost: number;
  /** Called on the first write lost while writable. */
  onLost: () => void;
}

/** True (and the write counted as lost) when the store simulates a full disk. */
function drop(c: Counters): boolean {
  if (c.closed) throw closedError();
  if (!c.full) return false;
  c.lost++;
  c.onLost();
  return true;
}

class MemoryLog implements ConversationLog {
  /**
   * Per conversation, in offset order (an append the store numbers is above all, so it is pushed;
   * one at a given offset may go anywhere).
   */
  readonly logs = new Map<ConvId, LogEntry[]>();
  readonly mids = new Map<string, number>();

  constructor(private readonly c: Counters) {}

  append(entry: NewEntry, offset?: number): LogEntry {
    if (this.c.closed) throw closedError();
    if (offset !== undefined) checkOffset(offset);
    const list = this.logs.get(entry.conv);
    const at = offset === undefined || list === undefined ? -1 : firstAfter(list, offset - 1);
    // Already held: the ledger entry is applied again, the record stays as it is.
    if (at >= 0 && list![at]?.offset === offset) return { ...list![at]! };
    const e = toLogEntry(entry, offset ?? this.c.lastOffset + 1);
    this.c.lastOffset = Math.max(this.c.lastOffset, e.offset);
    if (drop(this.c)) return e;
    if (list === undefined) this.logs.set(e.conv, [e]);
    else if (at < 0) list.push(e);
    else list.splice(at, 0, e);
    if (hasMidKey(e)) this.mids.set(midKey(e.conv, e.from, e.mid), e.offset);
    this.c.appended++;
    return { ...e };
  }

  read(q: ReadQuery): LogEntry[] {
    if (this.c.closed) throw closedError();
    const list = this.logs.get(q.conv) ?? [];
    const start = firstAfter(list, q.after ?? 0);
    const end = q.before === undefined ? list.length : firstAfter(list, q.before - 1);
    if (end <= start || q.limit <= 0) return [];
    const page = q.direction === 'forward'
      ? list.slice(start, Math.min(end, start + q.limit))
      : list.slice(Math.max(start, end - q.limit), end);
    return page.map((e) => ({ ...e }));
  }

  top(conv: ConvId): ConvTop | undefined {
    if (this.c.closed) throw closedError();
    const list = this.logs.get(conv);
    if (list === undefined || list.length === 0) return undefined;
    return { first: list[0]!.offset, last: list[list.length - 1]!.offset, count: list.length };
  }

  trimThrough(conv: ConvId, upTo: number): number {
    if (drop(this.c)) throw new StoreError('trim: store full (simulated)', 'full');
    const list = this.logs.get(conv);
    if (list === undefined) return 0;
    const n = firstAfter(list, upTo);
    for (const e of list.splice(0, n)) {
      if (!hasMidKey(e)) continue;
      const k = midKey(e.conv, e.from, e.mid);
      if (this.mids.get(k) === e.offset) this.mids.delete(k);
    }
    if (list.length === 0) this.logs.delete(conv);
    this.c.trimmed += n;
    return n;
  }

  redact(conv: ConvId, offset: number, replacement: { head: string; tail: string }): boolean {
    if (this.c.closed) throw closedError();
    const list = this.logs.get(conv);
    if (list === undefined) return false;
    const i = firstAfter(list, offset - 1);
    const e = list[i];
    if (e === undefined || e.offset !== offset) return false;
    if (drop(this.c)) return true;
    // A new object: a copy handed out earlier keeps what it read.
    list[i] = { ...e, head: replacement.head, tail: replacement.tail };
    return true;
  }

  findMid(conv: ConvId, from: string, mid: string): number | undefined {
    if (this.c.closed) throw closedError();
    return this.mids.get(midKey(conv, from, mid));
  }

  conversations(afterConv: ConvId | undefined, limit: number): ConvId[] {
    if (this.c.closed) throw closedError();
    return sortedAfter(this.logs.keys(), afterConv).slice(0, Math.max(0, limit));
  }
}

class MemoryPositions implements Positions {
  readonly accounts = new Map<string, AccountPositions>();
  readonly members = new Map<string, Map<ConvId, number>>();

  constructor(private readonly c: Counters) {}

  get(account: string): AccountPositions | undefined {
    if (this.c.closed) throw closedError();
    const p = this.accounts.get(account);
    return p === undefined ? undefined : { ...p };
  }

  set(account: string, p: AccountPositions): void {
    if (drop(this.c)) return;
    this.accounts.set(account, { delivered: p.delivered, acked: p.acked, ackMode: p.ackMode });
  }

  join(account: string, conv: ConvId, since: number): void {
    if (drop(this.c)) return;
    let m = this.members.get(account);
    if (m === undefined) this.members.set(account, (m = new Map()));
    m.set(conv, since);
  }

  leave(account: string, conv: ConvId): void {
    if (drop(this.c)) return;
    const m = this.members.get(account);
    if (m === undefined) return;
    m.delete(conv);
    if (m.size === 0) this.members.delete(account);
  }

  membership(account: string, conv: ConvId): Membership | undefined {
    if (this.c.closed) throw closedError();
    const since = this.members.get(account)?.get(conv);
    return since === undefined ? undefined : { conv, since };
  }

  memberships(account: string): Membership[] {
    if (this.c.closed) throw closedError();
    const m = this.members.get(account);
    if (m === undefined) return [];
    return sortedAfter(m.keys(), undefined).map((conv) => ({ conv, since: m.get(conv)! }));
  }

  allMemberships(after: { account: string; conv: ConvId } | undefined, limit: number): AccountMembership[] {
    if (this.c.closed) throw closedError();
    const out: AccountMembership[] = [];
    // The first account from `after`'s own (its conversations after `after.conv`), then the next ones whole.
    const accounts = after === undefined ? sortedAfter(this.members.keys(), undefined) : [after.account, ...sortedAfter(this.members.keys(), after.account)];
    for (const account of accounts) {
      const m = this.members.get(account);
      if (m === undefined) continue;
      for (const conv of sortedAfter(m.keys(), account === after?.account ? after.conv : undefined)) {
        if (out.length >= limit) return out;
        out.push({ account, conv, since: m.get(conv)! });
      }
    }
    return out;
  }
}

class MemoryStates implements ActorStates {
  /** JSON text, so a state is a copy both ways, as it would be on disk. */
  readonly states = new Map<string, string>();

  constructor(private readonly c: Counters) {}

  get(address: string): unknown {
    if (this.c.closed) throw closedError();
    const s = this.states.get(address);
    return s === undefined ? undefined : JSON.parse(s);
  }

  put(address: string, state: unknown): void {
    if (drop(this.c)) return;
    if (state === undefined) this.states.delete(address);
    else this.states.set(address, jsonCopy(state));
  }

  list(prefix: string, after: string | undefined, limit: number): string[] {
    if (this.c.closed) throw closedError();
    return sortedAfter(this.states.keys(), after).filter((k) => k.startsWith(prefix)).slice(0, Math.max(0, limit));
  }
}

export class MemoryStore implements Store {
  readonly epoch = newEpoch();
  private readonly c: Counters = { lastOffset: 0, appended: 0, trimmed: 0, closed: false, full: false, lost: 0, onLost: () => this.lostWrite() };
  private readonly healthNow: StoreHealth = { writable: true, since: Date.now(), reason: null, failedCommits: 0 };
  private readonly listeners: ((h: StoreHealth) => void)[] = [];
  private readonly memLog = new MemoryLog(this.c);
  private readonly memPositions = new MemoryPositions(this.c);
  private readonly memStates = new MemoryStates(this.c);
  readonly log: ConversationLog = this.memLog;
  readonly positions: Positions = this.memPositions;
  readonly states: ActorStates = this.memStates;

  flush(): Promise<void> {
    if (this.c.closed) return Promise.reject(closedError());
    if (this.c.lost > 0) {
      // As a failed commit: every flush waiting for the lost writes fails, later ones do not.
      const lost = this.c.lost;
      this.c.lost = 0;
      this.healthNow.failedCommits++;
      return Promise.reject(new StoreError(`commit: store full (simulated; ${lost} writes lost)`, 'full'));
    }
    return Promise.resolve();
  }

  /** Tests: from now on writes are lost as on a full disk (`true`), or space is back (`false`; the probe then succeeds). */
  simulateFull(full: boolean): void {
    this.c.full = full;
  }

  private lostWrite(): void {
    if (!this.healthNow.writable) return;
    this.setWritable(false, 'commit: store full (simulated)');
  }

  private setWritable(writable: boolean, reason: string | null): void {
    this.healthNow.writable = writable;
    this.healthNow.since = Date.now();
    this.healthNow.reason = reason;
    const h = this.health();
    for (const l of this.listeners) l(h);
  }

  health(): StoreHealth { return { ...this.healthNow }; }

  onHealth(listener: (h: StoreHealth) => void): void { this.listeners.push(listener); }

  probe(): boolean {
    if (this.c.closed || this.c.full) return false;
    if (!this.healthNow.writable) this.setWritable(true, null);
    return true;
  }

  /** Writes `<dest>/store.json`: every record, position, membership and state, taken in one go. */
  async backup(dest: string): Promise<void> {
    if (this.c.closed) throw closedError();
    // Serialized synchronously, before the first await, so the copy is of one moment.
    const dump = JSON.stringify({
      backend: 'memory',
      epoch: this.epoch,
      lastOffset: this.c.lastOffset,
      logs: [...this.memLog.logs.values()].flat(),
      positions: Object.fromEntries(this.memPositions.accounts),
      members: [...this.memPositions.members].map(([account, m]) => [account, Object.fromEntries(m)]),
      states: Object.fromEntries([...this.memStates.states].map(([k, v]) => [k, JSON.parse(v) as unknown])),
    });
    await mkdir(dest, { recursive: true });
    await writeFile(path.join(dest, 'store.json'), dump);
  }

  stats(): StoreStats {
    let records = 0;
    for (const list of this.memLog.logs.values()) records += list.length;
    return {
      backend: 'memory',
      epoch: this.epoch,
      lastOffset: this.c.lastOffset,
      appended: this.c.appended,
      trimmed: this.c.trimmed,
      bytes: 0,
      // No bytes to damage: nothing is ever found damaged here.
      damaged: 0,
      damagedLast: null,
      records,
      conversations: this.memLog.logs.size,
    };
  }

  close(): Promise<void> {
    this.c.closed = true;
    return Promise.resolve();
  }
}

/** Compile-time check that the class keeps implementing the port. */
const _check: new () => Store = MemoryStore;
void _check;
