/**
 * A sliding-window rate meter over a monotonic counter: it samples the counter at a fixed interval
 * and gives the per-second rate between the oldest sample still in the window and the counter now.
 * A counter that goes down (a reset) restarts the window.
 */

export interface RateMeterOptions {
  /** Span the rate is averaged over (default 10 s). */
  windowMs?: number;
  /** Sampling interval (default 1 s). */
  intervalMs?: number;
  /** Clock, for tests (default Date.now). */
  now?: () => number;
}

interface Sample { t: number; v: number }

export class RateMeter {
  readonly windowMs: number;
  readonly intervalMs: number;
  private readonly now: () => number;
  private samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly read: () => number, opts: RateMeterOptions = {}) {
    this.windowMs = opts.windowMs ?? 10_000;
    this.intervalMs = opts.intervalMs ?? 1000;
    this.now = opts.now ?? Date.now;
    if (!(this.windowMs > 0) || !(this.intervalMs > 0)) throw new RangeError('windowMs and intervalMs must be positive');
    this.sample();
  }

  /** Samples on a timer that does not keep the process alive. */
  start(): this {
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.sample(), this.intervalMs);
      this.timer.unref();
    }
    return this;
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Takes one sample now (the timer calls this; tests may call it directly). */
  sample(): void {
    const t = this.now();
    const v = this.read();
    const last = this.samples[this.samples.length - 1];
    if (last !== undefined && v < last.v) this.samples = [];
    this.samples.push({ t, v });
    // Keep the newest sample at or before the window's start, so the rate spans the whole window.
    const from = t - this.windowMs;
    while (this.samples.length > 1 && this.samples[1]!.t <= from) this.samples.shift();
  }

  /** Per-second rate over the window, up to the counter's value now; 0 before there is a time span. */
  rate(): number {
    const t = this.now();
    const v = this.read();
    const oldest = this.samples[0];
    if (oldest === undefined || v < oldest.v) return 0;
    const span = t - oldest.t;
    if (span <= 0) return 0;
    return ((v - oldest.v) * 1000) / span;
  }

  /** The current counter value. */
  get total(): number { return this.read(); }
}
