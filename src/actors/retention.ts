/**
 * Retention, per conversation and by policy: a log keeps at most `retainCount` records and none
 * older than `retainAgeMs`. Trimming is per conversation, so no conversation's traffic ever takes
 * a record of another; every trim is logged and counted.
 */
import { logger } from '../log';
import { lostForNow, type ConvId, type ConversationLog } from '../store/ports';

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
    // The newest record older than the cutoff, read page by page (records are in time order).
    let upTo = 0;
    for (let after: number | undefined; ;) {
      const page = this.store.read({ conv, ...(after !== undefined ? { after } : {}), limit: 1000, direction: 'forward' });
      let young = false;
      for (const e of page) { if (e.at >= cutoff) { young = true; break; } upTo = e.offset; }
      if (young || page.length < 1000) break;
      after = page.at(-1)!.offset;
    }
    if (upTo === 0) return;
    if (this.ageTrims) this.ageTrims(conv, upTo);
    else this.trim(conv, upTo, 'age');
  }

  /**
   * Cluster mode: what the age sweep finds is handed here instead of trimmed (every replica must
   * trim alike, so the trim goes into the ledger and comes back through `trimApplied`).
   */
  ageTrims: ((conv: ConvId, upTo: number) => void) | undefined;

  /** An age trim decided by the sweep (cluster mode: applied from the ledger on every replica). */
  trimApplied(conv: ConvId, upTo: number): void { this.trim(conv, upTo, 'age'); }

  /** False when the store was full and nothing was trimmed. */
  private trim(conv: ConvId, upTo: number, reason: string): boolean {
    let n: number;
    try {
      n = this.store.trimThrough(conv, upTo);
    } catch (e) {
      // The disk is full (or the store's writer thread stopped): the trim is tried again with the
      // conversation's next append or sweep.
      if (lostForNow(e)) { this.skippedFull++; return false; }
      throw e;
    }
    this.trimmed += n;
    this.trims++;
    this.log.info({ conv, upTo, trimmed: n, reason }, 'conversation log trimmed');
    return true;
  }

  /** Trims not done because the store was full. */
  private skippedFull = 0;

  stats(): { trimmed: number; trims: number; trimsSkippedFull: number } {
    return { trimmed: this.trimmed, trims: this.trims, trimsSkippedFull: this.skippedFull };
  }
}
