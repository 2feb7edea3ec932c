/**
 * Retention, per conversation and by policy: a log keeps at most `retainCount` records and none
 * older than `retainAgeMs`. Trimming is per conversation, so no conversation's traffic ever takes
 * a record of another; every trim is logged and counted.
 */
import { logger } from '../log';
import type { ConvId, ConversationLog } from '../store/ports';

export interface RetentionPolicy { retainCount: number; retainAgeMs: number }

/** How often the age sweep runs, and how many conversations it looks at per turn. */
const SWEEP_MS = 10 * 60_000;
const SWEEP_BATCH = 256;

export class Retention {
  private trimmed = 0;
  private trims = 0;
  private timer: NodeJS.Timeout | undefined;
  private sweeping = false;
  private readonly log = logger({ part: 'retention' });

  constructor(private readonly store: ConversationLog, private readonly policy: RetentionPolicy) {}

  start(): void {
    this.timer = setInterval(() => this.sweep(Date.now()), SWEEP_MS);
    this.timer.unref();
  }

  stop(): void { clearInterval(this.timer); }

  /**
   * After an append: over the count by a margin (1%), the log is trimmed back to the count, so a
   * busy conversation trims (and logs) once per many messages, not on every one.
   */
  appended(conv: ConvId): void {
    const top = this.store.top(conv);
    const slack = Math.max(1, Math.floor(this.policy.retainCount / 100));
    if (!top || top.count <= this.policy.retainCount + slack) return;
    const excess = this.store.read({ conv, limit: top.count - this.policy.retainCount, direction: 'forward' });
    this.trim(conv, excess.at(-1)!.offset, 'count');
  }

  /** Removes a whole log (its group is gone). */
  drop(conv: ConvId): void {
    const top = this.store.top(conv);
    if (top) this.trim(conv, top.last, 'dropped');
  }

  /** Trims records older than the age limit in every conversation, a batch per turn. */
  sweep(now: number, done?: () => void): void {
    if (this.sweeping) return done?.();
    this.sweeping = true;
    const cutoff = now - this.policy.retainAgeMs;
    const step = (after: ConvId | undefined): void => {
      const convs = this.store.conversations(after, SWEEP_BATCH);
      for (const conv of convs) this.trimOld(conv, cutoff);
      if (convs.length < SWEEP_BATCH) { this.sweeping = false; return done?.(); }
      setImmediate(() => step(convs.at(-1)));
    };
    step(undefined);
  }

  private trimOld(conv: ConvId, cutoff: number): void {
    for (;;) {
      const page = this.store.read({ conv, limit: 1000, direction: 'forward' });
      let upTo = 0;
      for (const e of page) { if (e.at >= cutoff) break; upTo = e.offset; }
      if (upTo === 0) return;
      this.trim(conv, upTo, 'age');
      if (upTo !== page.at(-1)!.offset) return;
    }
  }

  private trim(conv: ConvId, upTo: number, reason: string): void {
    const n = this.store.trimThrough(conv, upTo);
    this.trimmed += n;
    this.trims++;
    this.log.info({ conv, upTo, trimmed: n, reason }, 'conversation log trimmed');
  }

  stats(): { trimmed: number; trims: number } {
    return { trimmed: this.trimmed, trims: this.trims };
  }
}
