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
    this.port.postMessage(batch);
  }

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
