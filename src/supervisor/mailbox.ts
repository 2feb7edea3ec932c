/**
 * A mailbox to one worker thread: items posted during one turn of the event loop leave together
 * in a single postMessage, and stay listed as in flight until the shard answers their batch,
 * so a shard that dies with them can have them handed back.
 */
import type { Batch } from '../actors/envelopes';

export interface Port { postMessage(value: unknown): void }

export class Mailbox<T> {
  private queue: T[] = [];
  private scheduled = false;
  private nextId = 1;
  private readonly inFlight = new Map<number, T[]>();
  private port: Port | undefined;

  /** Items stay queued while there is no port (the shard is starting or restarting). */
  attach(port: Port | undefined): void {
    this.port = port;
    if (port && this.queue.length > 0) this.schedule();
  }

  post(item: T): void {
    this.queue.push(item);
    if (this.port) this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate, not a microtask: everything the sockets delivered in this I/O phase joins the batch.
    setImmediate(() => this.flush());
  }

  flush(): void {
    this.scheduled = false;
    if (!this.port || this.queue.length === 0) return;
    const batch: Batch<T> = { id: this.nextId++, items: this.queue };
    this.queue = [];
    this.inFlight.set(batch.id, batch.items);
    try {
      this.port.postMessage(batch);
    } catch (err) {
      // Items are checked at the edge, so a batch that cannot be cloned is a bug; never let it take
      // the process down with everything else in the batch: send the items one by one instead.
      this.inFlight.delete(batch.id);
      this.onUnsendable(err, batch.items);
    }
  }

  /** Sends items singly after a batch failed; an item that still fails is reported and dropped. */
  private onUnsendable(err: unknown, items: T[]): void {
    for (const item of items) {
      const single: Batch<T> = { id: this.nextId++, items: [item] };
      try {
        this.inFlight.set(single.id, single.items);
        this.port!.postMessage(single);
      } catch (e) {
        this.inFlight.delete(single.id);
        this.dropped(e, item);
      }
    }
    void err;
  }

  /** Told of an item that could not cross the thread boundary (set by the owner to log and answer). */
  dropped: (err: unknown, item: T) => void = () => {};

  /** The shard answered batch `id`: its items are done. */
  settle(id: number): void { this.inFlight.delete(id); }

  /** Everything sent but not answered, oldest first; the caller decides to resend or refuse. */
  takeInFlight(): T[] {
    const items = [...this.inFlight.values()].flat();
    this.inFlight.clear();
    return items;
  }

  get depth(): number {
    let n = this.queue.length;
    for (const items of this.inFlight.values()) n += items.length;
    return n;
  }
}
