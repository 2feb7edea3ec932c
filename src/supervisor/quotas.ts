/**
 * An hourly quota per key (an account, a remote address): a window of one hour from the key's
 * first take, at most `max` takes in it. Kept in memory in an LRU of QUOTA_KEYS keys (a key pushed
 * out starts afresh) and stored across restarts as part of one actor state (`limits:quotas`, see
 * quota-store.ts): only the windows still open and already used, at most STORED_KEYS of them (the
 * fullest first), so the stored state stays small (about 70 bytes a window).
 */
import { LRUCache } from 'lru-cache';

export const HOUR_MS = 3600_000;

/** Keys whose window is remembered in memory. */
export const QUOTA_KEYS = 100_000;

/** Windows stored per quota: the fullest, which matter most after a restart. */
export const STORED_KEYS = 5000;

/** What is stored: key → [window start (ms), takes]. */
export type QuotaSnapshot = Record<string, [number, number]>;

interface Window { start: number; count: number }

export class HourlyQuota {
  private readonly windows = new LRUCache<string, Window>({ max: QUOTA_KEYS, ttl: HOUR_MS });
  /** Changed since the last snapshot (a store is due). */
  dirty = false;

  constructor(readonly max: number) {}

  /** Takes one from `key`'s window: undefined when allowed, else the ms until the window ends. */
  take(key: string, now = Date.now()): number | undefined {
    const w = this.window(key, now);
    if (w.count >= this.max) return Math.max(1, w.start + HOUR_MS - now);
    w.count++;
    this.dirty = true;
    return undefined;
  }

  /** Whether `key` has a take left now (without taking it). */
  left(key: string, now = Date.now()): boolean {
    const w = this.windows.get(key);
    return w === undefined || now - w.start >= HOUR_MS || w.count < this.max;
  }

  snapshot(now = Date.now()): QuotaSnapshot {
    const open: Array<[string, Window]> = [];
    for (const [key, w] of this.windows.entries()) if (now - w.start < HOUR_MS && w.count > 0) open.push([key, w]);
    if (open.length > STORED_KEYS) open.sort((a, b) => b[1].count - a[1].count).length = STORED_KEYS;
    this.dirty = false;
    return Object.fromEntries(open.map(([key, w]) => [key, [w.start, w.count]]));
  }

  /** Takes back stored windows that are still open; anything malformed is skipped. */
  restore(stored: unknown, now = Date.now()): void {
    if (stored === null || typeof stored !== 'object' || Array.isArray(stored)) return;
    for (const [key, v] of Object.entries(stored as Record<string, unknown>)) {
      if (!Array.isArray(v) || !Number.isSafeInteger(v[0]) || !Number.isSafeInteger(v[1])) continue;
      const [start, count] = v as [number, number];
      const left = start + HOUR_MS - now;
      if (left <= 0 || left > HOUR_MS || count <= 0) continue;
      this.windows.set(key, { start, count }, { ttl: left });
    }
  }

  private window(key: string, now: number): Window {
    let w = this.windows.get(key);
    if (w === undefined || now - w.start >= HOUR_MS) {
      w = { start: now, count: 0 };
      this.windows.set(key, w, { ttl: HOUR_MS });
    }
    return w;
  }
}
