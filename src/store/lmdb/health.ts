/**
 * Whether the store takes writes (the `StoreHealth` of the port): the state, its listeners, and
 * the two changes it goes through (a commit lost for lack of space; a probe that committed). Kept
 * apart from the commit machinery so the rules of when `writable` changes read in one place.
 */
import type { StoreError, StoreHealth } from '../ports';
import { logger } from '../../log';

export class Health {
  private readonly now: StoreHealth = { writable: true, since: Date.now(), reason: null, failedCommits: 0 };
  private readonly listeners: ((h: StoreHealth) => void)[] = [];

  get writable(): boolean { return this.now.writable; }

  snapshot(): StoreHealth { return { ...this.now }; }

  onChange(listener: (h: StoreHealth) => void): void { this.listeners.push(listener); }

  /**
   * A commit lost `lost` writes to a passing failure (`e`: a full store, a writer thread that
   * died): writing is off until a probe succeeds.
   */
  lost(e: StoreError, lost: number): void {
    this.now.failedCommits++;
    if (!this.now.writable) return;
    this.set(false, e.message);
    logger({ mod: 'lmdb-store' }).debug({ lost }, 'store commit lost');
    this.emit();
  }

  /** A probe write committed: writing is on again. */
  restored(): void {
    this.set(true, null);
    this.emit();
  }

  private set(writable: boolean, reason: string | null): void {
    this.now.writable = writable;
    this.now.since = Date.now();
    this.now.reason = reason;
  }

  private emit(): void {
    const h = this.snapshot();
    for (const l of this.listeners) l(h);
  }
}
