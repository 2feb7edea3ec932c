/**
 * A mailbox to one worker thread: items posted during one turn of the event loop leave together
 * in a single postMessage, and stay listed as in flight until the shard answers their batch,
 * so a shard that dies with them can have them handed back.
 *
 * Each item carries how many crashes of its shard it was being processed at. The shard works
 * through its batches in order and answers each, so when it dies, only the oldest unanswered
 * batch was being processed: its items count one more crash, later batches were never started.
 * An item posted `alone` leaves in a batch of its own, so a crash names it and nothing else.
 */
import { EndOfTurn } from '../turn';
import type { Batch } from '../actors/envelopes';

export interface Port { postMessage(value: unknown): void }

/** An item handed back after a crash, with the crashes it was being processed at. */
export interface InFlight<T> { item: T; crashes: number }

interface Entry<T> { item: T; crashes: number; alone: boolean }

export class Mailbox<T> {
  private queue: Entry<T>[] = [];
  /** One postMessage per turn: everything the sockets delivered in this I/O phase joins the batch. */
  private readonly turn = new EndOfTurn(() => this.flush());
  private nextId = 1;
  private readonly inFlight = new Map<number, Entry<T>[]>();
  private port: Port | undefined;

  /** Items stay queued while there is no port (the shard is starting or restarting). */
  attach(port: Port | undefined): void {
    this.port = port;
    if (port && this.queue.length > 0) this.turn.request();
  }

  /** Queues `item`; `crashes` it was in flight at before, `alone` to send it in a batch of its own. */
  post(item: T, opts: { crashes?: number; alone?: boolean } = {}): void {
    this.queue.push({ item, crashes: opts.crashes ?? 0, alone: opts.alone ?? false });
    if (this.port) this.turn.request();
  }

  flush(): void {
    if (!this.port || this.queue.length === 0) return;
    const queue = this.queue;
    this.queue = [];
    let run: Entry<T>[] = [];
    for (const e of queue) {
      if (!e.alone) { run.push(e); continue; }
      if (run.length > 0) this.send(run);
      run = [];
      this.send([e]);
    }
    if (run.length > 0) this.send(run);
  }

  private send(entries: Entry<T>[]): void {
    const batch: Batch<T> = { id: this.nextId++, items: entries.map((e) => e.item) };
    this.inFlight.set(batch.id, entries);
    try {
      this.port!.postMessage(batch);
    } catch (err) {
      // Items are checked at the edge, so a batch that cannot be cloned is a bug; never let it take
      // the process down with everything else in the batch: send the items one by one instead.
      this.inFlight.delete(batch.id);
      this.onUnsendable(err, entries);
    }
  }

  /** Sends items singly after a batch failed; an item that still fails is reported and dropped. */
  private onUnsendable(err: unknown, entries: Entry<T>[]): void {
    for (const entry of entries) {
      const single: Batch<T> = { id: this.nextId++, items: [entry.item] };
      try {
        this.inFlight.set(single.id, [entry]);
        this.port!.postMessage(single);
      } catch (e) {
        this.inFlight.delete(single.id);
        this.dropped(e, entry.item);
      }
    }
    void err;
  }

  /** Told of an item that could not cross the thread boundary (set by the owner to log and answer). */
  dropped: (err: unknown, item: T) => void = () => {};

  /** The shard answered batch `id`: its items are done. */
  settle(id: number): void { this.inFlight.delete(id); }

  /**
   * Everything sent but not answered, oldest first, after the shard died; the items of the oldest
   * batch (the one it was processing) count this crash. The caller decides to resend or refuse.
   */
  takeInFlight(): InFlight<T>[] {
    const out: InFlight<T>[] = [];
    let first = true;
    // A Map iterates in insertion order: batch ids ascending.
    for (const entries of this.inFlight.values()) {
      for (const e of entries) out.push({ item: e.item, crashes: e.crashes + (first ? 1 : 0) });
      first = false;
    }
    this.inFlight.clear();
    return out;
  }

  get depth(): number {
    let n = this.queue.length;
    for (const items of this.inFlight.values()) n += items.length;
    return n;
  }
}
