/**
 * The outbox: requests waiting for their answer. Each carries a `callback` key that its answer or
 * error names; it is sent once signed in, sent again after a reconnect when safe to repeat (reads,
 * `mid` sends), tried again when refused unexecuted (45003/41401), and rejected on a timeout, a
 * lost connection (changes not safe to repeat) or close. Apart from the client so that matching
 * answers to requests is in one place.
 */
import { Code } from '../protocol/codes.js';
import { ClientCode, ImgcError } from './errors.js';
import { jittered } from './random.js';
import type { Wire } from './transport.js';
import type { ErrorFrame, MessageFrame, NoticeFrame, Request } from './types.js';

/** How many times a request refused with 45003/41401 (not executed) is tried again. */
const MAX_RETRIES = 20;

/** What sends requests: the client (groups and verification ask through it). */
export interface Requester {
  readonly account: string;
  request(frame: Request, repeat: boolean): Promise<NoticeFrame>;
}

/** An error frame with the server's hint of when to try again. */
export type Refusal = ErrorFrame & { retryAfterMs?: number };

interface Pending {
  key: string;
  frame: Request;
  /** Repeat after a reconnect when unanswered (reads and `mid` sends). */
  repeat: boolean;
  sent: boolean;
  retries: number;
  resolve(n: NoticeFrame): void;
  reject(e: ImgcError): void;
  timer?: ReturnType<typeof setTimeout>;
}

/** Whether the server refused without executing (busy or failed inside): trying again is safe. */
export function notExecuted(f: ErrorFrame): boolean {
  return f.code === Code.UNAVAILABLE || f.code === Code.INTERNAL;
}

/** Sends the frame `build()` makes (inside, so a bad argument rejects) and resolves with the answer's `msg`. */
export async function ask<T = unknown>(host: Requester, repeat: boolean, build: () => Request): Promise<T> {
  return (await host.request(build(), repeat)).msg as T;
}

function what(frame: Request): string {
  return `${frame.cat ?? 'chat'}/${frame.act}`;
}

export class Outbox {
  private nextKey = 1;
  private readonly pending = new Map<string, Pending>();

  /** `timeoutMs`: reject a request not answered within it (0: wait). */
  constructor(private readonly timeoutMs: number, private readonly wire: Wire) {}

  get size(): number { return this.pending.size; }

  /** Adds a request (with its `callback` key) and sends it if signed in; resolves with its answer. */
  add(frame: Request, repeat: boolean): Promise<NoticeFrame> {
    return new Promise<NoticeFrame>((resolve, reject) => {
      const key = `k${this.nextKey++}`;
      const p: Pending = { key, frame: { ...frame, callback: key }, repeat, sent: false, retries: 0, resolve, reject };
      if (this.timeoutMs > 0) p.timer = setTimeout(() => this.expire(p), this.timeoutMs);
      this.pending.set(key, p);
      if (this.wire.ready()) this.transmit(p);
    });
  }

  /** Signed in: sends what is not sent on this socket. */
  transmitUnsent(): void {
    for (const p of this.pending.values()) if (!p.sent) this.transmit(p);
  }

  /** Resolves the request this notice answers; false when it answers none. */
  answer(n: NoticeFrame | MessageFrame): boolean {
    const key = n.method?.callback;
    const p = key === undefined ? undefined : this.pending.get(key);
    if (!p) return false;
    this.settle(p).resolve(n as NoticeFrame);
    return true;
  }

  /** Handles the error frame refusing `req`: tried again or rejected; false when it is no request here. */
  refused(f: Refusal, req: Request | null): boolean {
    const p = typeof req?.callback === 'string' ? this.pending.get(req.callback) : undefined;
    if (!p) return false;
    if (notExecuted(f) && p.retries < MAX_RETRIES) this.retry(p, f.retryAfterMs);
    else this.settle(p).reject(ImgcError.fromFrame(f));
    return true;
  }

  /** The socket dropped: what was sent and is not safe to repeat is rejected; the rest waits to be sent again. */
  connectionLost(): void {
    for (const p of [...this.pending.values()]) {
      if (p.sent && !p.repeat) {
        this.settle(p).reject(new ImgcError(ClientCode.CONNECTION_LOST, `connection lost before the answer to ${what(p.frame)}; it may or may not have been done`));
      } else p.sent = false;
    }
  }

  /** Rejects every request with `err` (the client closed). */
  rejectAll(err: ImgcError): void {
    for (const p of this.pending.values()) { clearTimeout(p.timer); p.reject(err); }
    this.pending.clear();
  }

  private transmit(p: Pending): void {
    if (this.wire.send(p.frame)) p.sent = true;
  }

  /** Not executed: try again a little later. */
  private retry(p: Pending, retryAfterMs: number | undefined): void {
    p.retries++;
    p.sent = false;
    const delay = jittered(2 * (retryAfterMs ?? 200 * p.retries));
    setTimeout(() => { if (this.pending.get(p.key) === p && !p.sent && this.wire.ready()) this.transmit(p); }, delay);
  }

  private expire(p: Pending): void {
    this.pending.delete(p.key);
    p.reject(new ImgcError(ClientCode.TIMEOUT, `no answer to ${what(p.frame)} within ${this.timeoutMs} ms`));
  }

  /** Takes an answered request out of the outbox. */
  private settle(p: Pending): Pending {
    this.pending.delete(p.key);
    clearTimeout(p.timer);
    return p;
  }
}
