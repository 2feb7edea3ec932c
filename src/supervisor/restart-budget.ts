/** At most `max` restarts within `windowMs`: past that, a crash loop escalates to a shutdown. */
export class RestartBudget {
  private readonly times: number[] = [];

  constructor(readonly max: number, readonly windowMs: number) {}

  /** Records a restart; false when it would exceed the budget. */
  allow(now = Date.now()): boolean {
    while (this.times.length > 0 && now - this.times[0]! > this.windowMs) this.times.shift();
    if (this.times.length >= this.max) return false;
    this.times.push(now);
    return true;
  }
}
