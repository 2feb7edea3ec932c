/**
 * What the client has processed, by `seq`: drops a frame seen before (delivered again after a
 * reconnect), acknowledges in batches what the listeners processed, and starts over when the
 * server's store epoch changes. Apart from the client so that the one number the server keeps
 * for it (the highest `seq` processed) has one owner.
 */
import type { Wire } from './transport.js';
import type { Request } from './types.js';

/** Acks of frames processed within this many ms go out as one. */
const BATCH_MS = 20;

function ackFrame(seq: number): Request {
  return { cat: 'chat', act: 'ack', seq };
}

export class Acks {
  private acked: number;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private epoch: string | undefined;

  /** `on`: acknowledging mode; `highestSeq`: the highest `seq` processed in an earlier session. */
  constructor(private readonly on: boolean, private highestSeq: number, private readonly wire: Wire) {
    this.acked = highestSeq;
  }

  get highest(): number { return this.highestSeq; }

  /** Whether a frame with this `seq` was processed before. */
  seen(seq: number | undefined): boolean {
    return typeof seq === 'number' && seq <= this.highestSeq;
  }

  /** The listeners returned from a frame: it may be acknowledged. */
  processed(seq: number | undefined): void {
    if (typeof seq === 'number') { this.highestSeq = seq; this.schedule(); }
  }

  /** The answer to a request of this client came with a `seq`. */
  answered(seq: number | undefined): void {
    if (typeof seq === 'number' && seq > this.highestSeq) { this.highestSeq = seq; this.schedule(); }
  }

  /** Signed in: acknowledging mode from the first frame on (the server keeps what is not acknowledged). */
  welcomed(): void {
    if (!this.on) return;
    this.wire.send(ackFrame(this.highestSeq));
    this.acked = this.highestSeq;
  }

  /** An epoch seen in a history page or a `limited` notice: a new one restarts the numbering. */
  seeEpoch(epoch: unknown): void {
    if (typeof epoch !== 'string') return;
    if (this.epoch !== undefined && this.epoch !== epoch) { this.highestSeq = 0; this.acked = 0; }
    this.epoch = epoch;
  }

  /** The socket is gone: the batched ack waits for the next one. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The ack to send as the client closes (when it was signed in and has one to send). */
  last(wasReady: boolean): Request | undefined {
    if (!wasReady || !this.on || this.highestSeq <= this.acked) return undefined;
    this.acked = this.highestSeq;
    return ackFrame(this.highestSeq);
  }

  private schedule(): void {
    if (!this.on || this.timer !== undefined || this.wire.closed()) return;
    this.timer = setTimeout(() => { this.timer = undefined; this.flush(); }, BATCH_MS);
  }

  private flush(): void {
    if (!this.on || this.highestSeq <= this.acked || !this.wire.ready()) return;
    if (this.wire.send(ackFrame(this.highestSeq))) this.acked = this.highestSeq;
  }
}
