/**
 * The hourly quotas kept across restarts: the live windows (limits.ts `snapshot`, bounded by
 * quotas.ts) are one actor state, `limits:quotas`, written beside the shards through the carrier
 * at most every SAVE_MS while they change and once more at shutdown, and read back at start. A
 * crash loses at most the last SAVE_MS of takes. In a cluster every node writes the same state: a
 * node that restarts reads the windows of whichever node wrote last.
 */
import type { StateOut } from '../actors/envelopes';
import type { Limits } from './limits';

export const QUOTAS_ADDRESS = 'limits:quotas';
export const SAVE_MS = 1000;

export class QuotaStore {
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly limits: Limits, private readonly submit: (state: StateOut) => void) {}

  /** Takes back what a previous run stored, then saves while the windows change. */
  start(stored: unknown): void {
    this.limits.restore(stored);
    this.timer = setInterval(() => { if (this.dirty()) this.save(); }, SAVE_MS);
    this.timer.unref();
  }

  /** Saves what changed since the last save (before the carrier stops). */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.dirty()) this.save();
  }

  private dirty(): boolean {
    const q = this.limits.quotas;
    return q.account.dirty || q.address.dirty || q.strangerAdds.dirty;
  }

  private save(): void {
    this.submit({ t: 'state', address: QUOTAS_ADDRESS, state: this.limits.snapshot() });
  }
}
