/**
 * One fsync for many waiters: every `request()` made before a sync starts shares it; requests made
 * while one runs share the next. The sync starts in `setImmediate`, so all flushes of a turn (and
 * the I/O callbacks run with it) join the same one.
 */
export class GroupSync {
  private waiting: { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } | undefined;
  private running = false;
  private scheduled = false;

  /** `sync` must cover everything committed before it is called. */
  constructor(private readonly sync: (done: (err?: unknown) => void) => void) {}

  request(): Promise<void> {
    if (this.waiting === undefined) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
      this.waiting = { promise, resolve, reject };
    }
    if (!this.running && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => { this.scheduled = false; this.start(); });
    }
    return this.waiting.promise;
  }

  /**
   * Resolves once no sync is waiting, scheduled or running: the environment may then be closed
   * (closing it under a sync running on a libuv thread would free what that thread uses).
   */
  async idle(): Promise<void> {
    while (this.running || this.scheduled || this.waiting !== undefined) {
      await (this.waiting?.promise.catch(() => undefined) ?? new Promise<void>((r) => setImmediate(r)));
    }
  }

  private start(): void {
    const w = this.waiting;
    if (w === undefined || this.running) return;
    this.waiting = undefined;
    this.running = true;
    const done = (err?: unknown): void => {
      this.running = false;
      if (err === undefined || err === null) w.resolve();
      else w.reject(err);
      if (this.waiting !== undefined) this.start();
    };
    try {
      this.sync(done);
    } catch (e) {
      done(e);
    }
  }
}
