/**
 * The service's limits, on the main thread: each limit's value and how often it was hit (for
 * /status and /metrics), warnings that can repeat per event logged aggregated (one line per limit
 * per interval with the count, never one line per event), the hourly quotas (groups created per
 * account and per remote address, groups an account is added to by strangers: quotas.ts) and the
 * count of groups the server holds.
 */
import type { Logger } from '../log';
import type { StateOut } from '../actors/envelopes';
import type { GroupRecord } from '../actors/group-state';
import type { ActorStates } from '../store/ports';
import type { LimitName, LimitView, LimitsView } from '../status/source';

export type { LimitName, LimitsView };

import { HourlyQuota, type QuotaSnapshot } from './quotas';

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
  /** Groups created per hour from one remote address (whatever the accounts). */
  groupsPerHourPerAddress: number;
  /** Groups an account may be added to per hour by accounts that are not its contacts. */
  strangerAddsPerHour: number;
  maxGroups: number;
  maxGroupSize: number;
  maxBlocked: number;
  /** Free space (MB) under which new groups and conversations are refused (disk-watch.ts). */
  minFreeMb: number;
  /** Largest `detail` answer in bytes (--max-buffered / 8). */
  detailBytes: number;
}

export class Limits {
  private readonly hits: Record<LimitName, number> = {
    maxConnections: 0, maxConnectionsPerIp: 0, descriptors: 0, groupsPerHour: 0, maxGroups: 0, groupsPerHourPerAddress: 0, strangerAddsPerHour: 0, minFreeMb: 0, maxGroupSize: 0, maxBlocked: 0, detailBytes: 0,
  };
  /** The hourly quotas, by name: kept across restarts as one actor state (see `snapshot`). */
  readonly quotas: { account: HourlyQuota; address: HourlyQuota; strangerAdds: HourlyQuota };
  /** Groups the server holds: counted from the store at start, then +1 per create, -1 per destroy. */
  groups = 0;
  /** TCP connections the open-file limit leaves room for (after the reserve); 0 when unknown. Set by the endpoint. */
  descriptorCap = 0;
  readonly warnings: AggregatedWarnings;

  constructor(readonly values: LimitValues, log: Logger, intervalMs?: number) {
    this.warnings = new AggregatedWarnings(log, intervalMs);
    this.quotas = {
      account: new HourlyQuota(values.groupsPerHour),
      address: new HourlyQuota(values.groupsPerHourPerAddress),
      strangerAdds: new HourlyQuota(values.strangerAddsPerHour),
    };
  }

  /** Counts one hit of `name` and logs it aggregated. */
  hit(name: LimitName, msg: string, detail: Record<string, unknown> = {}): void {
    this.hits[name]++;
    this.warnings.warn(name, msg, detail);
  }

  /**
   * Takes one group creation from the account's hourly quota and the remote address's (each a
   * window of one hour from its first create): undefined when both allow it (and both are taken),
   * else the quota that refused and the ms until its window ends (nothing taken).
   */
  takeGroupQuota(account: string, address: string | undefined, now = Date.now()): { limit: 'groupsPerHour' | 'groupsPerHourPerAddress'; retryAfterMs: number } | undefined {
    const { account: perAccount, address: perAddress } = this.quotas;
    if (address !== undefined && !perAddress.left(address, now)) return { limit: 'groupsPerHourPerAddress', retryAfterMs: perAddress.take(address, now)! };
    const refused = perAccount.take(account, now);
    if (refused !== undefined) return { limit: 'groupsPerHour', retryAfterMs: refused };
    if (address !== undefined) perAddress.take(address, now);
    return undefined;
  }

  /** Takes one of `account`'s hourly adds by strangers (blocks.ts); false (counted, logged aggregated) when none is left. */
  takeStrangerAdd(account: string, now = Date.now()): boolean {
    if (this.quotas.strangerAdds.take(account, now) === undefined) return true;
    this.hit('strangerAddsPerHour', 'group add left out: stranger-adds-per-hour reached', { account, max: this.values.strangerAddsPerHour });
    return false;
  }

  /** The quotas' live windows, to be stored (bounded: see quotas.ts). */
  snapshot(now = Date.now()): Record<string, QuotaSnapshot> {
    return { account: this.quotas.account.snapshot(now), address: this.quotas.address.snapshot(now), strangerAdds: this.quotas.strangerAdds.snapshot(now) };
  }

  /** Takes back the windows a previous run stored (anything malformed is ignored). */
  restore(stored: unknown, now = Date.now()): void {
    if (stored === null || typeof stored !== 'object') return;
    const s = stored as Record<string, unknown>;
    this.quotas.account.restore(s.account, now);
    this.quotas.address.restore(s.address, now);
    this.quotas.strangerAdds.restore(s.strangerAdds, now);
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
      groupsPerHourPerAddress: at('groupsPerHourPerAddress', v.groupsPerHourPerAddress),
      strangerAddsPerHour: at('strangerAddsPerHour', v.strangerAddsPerHour),
      minFreeMb: at('minFreeMb', v.minFreeMb),
      maxGroups: at('maxGroups', v.maxGroups),
      maxGroupSize: at('maxGroupSize', v.maxGroupSize),
      maxBlocked: at('maxBlocked', v.maxBlocked),
      detailBytes: at('detailBytes', v.detailBytes),
      groups: this.groups,
    };
  }
}
