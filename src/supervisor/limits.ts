/**
 * The service's limits, on the main thread: each limit's value and how often it was hit (for
 * /status and /metrics), warnings that can repeat per event logged aggregated (one line per limit
 * per interval with the count, never one line per event), the groups-per-hour quota of each account
 * (bounded in memory by an LRU) and the count of groups the server holds.
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from '../log';
import type { StateOut } from '../actors/envelopes';
import type { GroupRecord } from '../actors/group-state';
import type { ActorStates } from '../store/ports';
import type { LimitName, LimitView, LimitsView } from '../status/source';

export type { LimitName, LimitsView };


const HOUR_MS = 3600_000;

/** Accounts whose hourly create count is remembered (LRU; an account pushed out starts afresh). */
const QUOTA_ACCOUNTS = 100_000;

interface Window { start: number; count: number }

/**
 * Counts events and logs them at most once per interval per key: the first event of a quiet key
 * logs at once (with count 1); later events within the interval are summed and logged at its end.
 */
export class AggregatedWarnings {
  private readonly pending = new Map<string, { count: number; last: Record<string, unknown> }>();
  private readonly lastLogged = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly log: Logger, private readonly intervalMs = 10_000) {}

  warn(key: string, msg: string, detail: Record<string, unknown> = {}): void {
    const now = Date.now();
    const last = this.lastLogged.get(key);
    if (last === undefined || now - last >= this.intervalMs) {
      this.lastLogged.set(key, now);
      this.log.warn({ limit: key, count: 1, ...detail }, msg);
      return;
    }
    const p = this.pending.get(key);
    if (p) { p.count++; p.last = detail; } else this.pending.set(key, { count: 1, last: detail });
    this.messages.set(key, msg);
    this.timer ??= setTimeout(() => this.flush(), this.intervalMs - (now - last));
    this.timer.unref();
  }

  private readonly messages = new Map<string, string>();

  /** Logs what was summed since each key's last line. */
  flush(): void {
    this.timer = undefined;
    const now = Date.now();
    for (const [key, p] of this.pending) {
      this.log.warn({ limit: key, count: p.count, intervalMs: this.intervalMs, ...p.last }, `${this.messages.get(key) ?? key} (${p.count} times in the last interval)`);
      this.lastLogged.set(key, now);
    }
    this.pending.clear();
    this.messages.clear();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.flush();
  }
}

export interface LimitValues {
  maxConnections: number;
  maxConnectionsPerIp: number;
  groupsPerHour: number;
  maxGroups: number;
  maxGroupSize: number;
  maxBlocked: number;
  /** Largest `detail` answer in bytes (--max-buffered / 8). */
  detailBytes: number;
}

export class Limits {
  private readonly hits: Record<LimitName, number> = {
    maxConnections: 0, maxConnectionsPerIp: 0, descriptors: 0, groupsPerHour: 0, maxGroups: 0, maxGroupSize: 0, maxBlocked: 0, detailBytes: 0,
  };
  private readonly quota: LRUCache<string, Window>;
  /** Groups the server holds: counted from the store at start, then +1 per create, -1 per destroy. */
  groups = 0;
  /** TCP connections the open-file limit leaves room for (after the reserve); 0 when unknown. Set by the endpoint. */
  descriptorCap = 0;
  readonly warnings: AggregatedWarnings;

  constructor(readonly values: LimitValues, log: Logger, intervalMs?: number) {
    this.warnings = new AggregatedWarnings(log, intervalMs);
    this.quota = new LRUCache<string, Window>({ max: QUOTA_ACCOUNTS, ttl: HOUR_MS });
  }

  /** Counts one hit of `name` and logs it aggregated. */
  hit(name: LimitName, msg: string, detail: Record<string, unknown> = {}): void {
    this.hits[name]++;
    this.warnings.warn(name, msg, detail);
  }

  /**
   * Takes one group creation from `account`'s hourly quota (a window of one hour from its first
   * create): undefined when allowed, else the ms until the window ends.
   */
  takeGroupQuota(account: string, now = Date.now()): number | undefined {
    let w = this.quota.get(account);
    if (w === undefined || now - w.start >= HOUR_MS) {
      w = { start: now, count: 0 };
      this.quota.set(account, w, { ttl: HOUR_MS });
    }
    if (w.count >= this.values.groupsPerHour) return Math.max(1, w.start + HOUR_MS - now);
    w.count++;
    return undefined;
  }

  /**
   * A group's new state: a create (every member joined) counts +1, a destroy (no state) -1. A
   * group always keeps at least one member, so no other change has every member joined.
   */
  groupChanged(item: StateOut): void {
    if (!item.address.startsWith('group:')) return;
    const g = item.state as GroupRecord | undefined;
    if (g === undefined) this.groups = Math.max(0, this.groups - 1);
    else if (item.joined !== undefined && item.joined.length === g.group.length && (item.left?.length ?? 0) === 0) this.groups++;
  }

  /** Counts the groups in the store, page by page (once, at start; kept by `groupChanged` from then on). */
  countStored(states: ActorStates): void {
    let n = 0;
    let after: string | undefined;
    for (;;) {
      const page = states.list('group:', after, 10_000);
      n += page.length;
      if (page.length < 10_000) break;
      after = page[page.length - 1];
    }
    this.groups = n;
  }

  view(): LimitsView {
    const v = this.values;
    const at = (name: LimitName, value: number): LimitView => ({ value, hits: this.hits[name] });
    return {
      maxConnections: at('maxConnections', v.maxConnections),
      maxConnectionsPerIp: at('maxConnectionsPerIp', v.maxConnectionsPerIp),
      descriptors: at('descriptors', this.descriptorCap),
      groupsPerHour: at('groupsPerHour', v.groupsPerHour),
      maxGroups: at('maxGroups', v.maxGroups),
      maxGroupSize: at('maxGroupSize', v.maxGroupSize),
      maxBlocked: at('maxBlocked', v.maxBlocked),
      detailBytes: at('detailBytes', v.detailBytes),
      groups: this.groups,
    };
  }
}
