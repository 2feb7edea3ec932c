/**
 * At most `limit` sign-in backlogs read at once; the rest wait their turn, first come first served.
 *
 * Each backlog being read buffers up to about a thousand records (backlog.ts), so a reconnect storm
 * of thousands of accounts with waiting messages would otherwise hold all of them in memory at
 * once. A connection that closes while waiting leaves the queue; one that finishes or closes while
 * reading hands its turn to the next.
 */
export class SyncQueue<K> {
  private readonly running = new Set<K>();
  /** Insertion order is arrival order: a Map keeps it and drops a key that leaves in O(1). */
  private readonly waiting = new Map<K, () => void>();

  /** `limit` 0: no bound. */
  constructor(private readonly limit: number) {}

  /** Runs `start` now if a turn is free, else when one is; a key already in runs or waits once. */
  enter(key: K, start: () => void): void {
    if (this.running.has(key) || this.waiting.has(key)) return;
    if (this.limit > 0 && this.running.size >= this.limit) {
      this.waiting.set(key, start);
      return;
    }
    this.running.add(key);
    start();
  }

  /** `key` is done (or gone): out of the queue, and its turn, if it had one, goes to the next. */
  leave(key: K): void {
    if (this.waiting.delete(key)) return;
    if (!this.running.delete(key)) return;
    for (const [next, start] of this.waiting) {
      if (this.limit > 0 && this.running.size >= this.limit) return;
      this.waiting.delete(next);
      this.running.add(next);
      start();
    }
  }

  get active(): number { return this.running.size; }
  get queued(): number { return this.waiting.size; }
}
