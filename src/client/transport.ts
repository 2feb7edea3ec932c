/**
 * The client's socket and its reconnects: opens a WebSocket, sends frames on it with the spam of
 * its `init`, lets go of it when it closes or the client closes, and times the next attempt with
 * exponential backoff and jitter. Apart from the client so that what a socket is, and when to get
 * another, is in one place; what the frames on it mean is not decided here.
 */
import { jittered } from './random.js';
import type { Request } from './types.js';

/** The part of a WebSocket the client uses (the browser's and `ws`'s both have it). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type WebSocketCtor = new (url: string) => WebSocketLike;

export interface BackoffOptions {
  /** First delay (ms), default 250. */
  initialMs?: number;
  /** Largest delay (ms), default 10,000. */
  maxMs?: number;
  /** Growth per attempt, default 2. */
  factor?: number;
}

/** What the outbox and the acks use of the connection: send on the signed-in socket, and its state. */
export interface Wire {
  /** Sends with the spam; false when there is no open socket with a spam (nothing was sent). */
  send(frame: Request): boolean;
  ready(): boolean;
  closed(): boolean;
}

/** What the transport reports to the client: each text frame, and the close of the current socket. */
export interface SocketEvents {
  text(data: string): void;
  closed(): void;
}

const OPEN = 1;

/** The backoff options with their defaults, or undefined when `reconnect: false`. */
export function backoffOf(opts: BackoffOptions | false | undefined): Required<BackoffOptions> | undefined {
  return opts === false ? undefined : { initialMs: 250, maxMs: 10_000, factor: 2, ...opts };
}

function detach(ws: WebSocketLike): void {
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = null;
}

export class Transport {
  /** The spam of the current socket's `init` (undefined until it came). */
  spam: string | undefined;
  private ws: WebSocketLike | undefined;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly url: string,
    private readonly Ctor: WebSocketCtor,
    private readonly backoff: Required<BackoffOptions> | undefined,
    private readonly events: SocketEvents,
  ) {}

  /** The current socket (compared to tell whether it changed meanwhile). */
  get socket(): WebSocketLike | undefined { return this.ws; }
  /** Whether a dropped socket is followed by another (false with `reconnect: false`). */
  get reconnects(): boolean { return this.backoff !== undefined; }

  /** Opens a new socket; returns the error when the constructor throws. */
  open(): Error | undefined {
    this.spam = undefined;
    let ws: WebSocketLike;
    try {
      ws = new this.Ctor(this.url);
    } catch (e) {
      return e as Error;
    }
    this.ws = ws;
    ws.onmessage = (ev) => this.events.text(String(ev.data));
    ws.onclose = () => { if (this.ws === ws) this.events.closed(); };
    ws.onerror = () => { /* a close follows */ };
    return undefined;
  }

  send(frame: Request): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN || this.spam === undefined) return false;
    ws.send(JSON.stringify({ ...frame, spam: this.spam }));
    return true;
  }

  /** Lets go of a socket that closed. */
  forget(): void {
    this.release();
    this.spam = undefined;
  }

  /**
   * For good: no more reconnects, the socket is let go of and closed after the current task;
   * `last()` may give one frame to send on it just before (asked only when it is still open).
   */
  shut(last: () => Request | undefined): void {
    clearTimeout(this.reconnectTimer);
    const spam = this.spam;
    const ws = this.release();
    if (ws) queueMicrotask(() => this.closeSocket(ws, spam, last));
  }

  /** Closes the socket as a network failure would (the client reconnects). */
  drop(): void {
    const ws = this.ws;
    if (ws) { try { ws.close(4000, 'dropped by client'); } catch { /* closing */ } }
  }

  /** Runs `fn` after the next backoff delay (each longer, up to `maxMs`, until `resetBackoff`). */
  retryLater(fn: () => void): void {
    const b = this.backoff!;
    const delay = jittered(Math.min(b.maxMs, b.initialMs * b.factor ** this.attempt));
    this.attempt++;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(fn, delay);
  }

  /** Signed in again: the next reconnect starts from the first delay. */
  resetBackoff(): void {
    this.attempt = 0;
  }

  private release(): WebSocketLike | undefined {
    const ws = this.ws;
    if (ws) detach(ws);
    this.ws = undefined;
    return ws;
  }

  private closeSocket(ws: WebSocketLike, spam: string | undefined, last: () => Request | undefined): void {
    const frame = ws.readyState === OPEN && spam !== undefined ? last() : undefined;
    if (frame) ws.send(JSON.stringify({ ...frame, spam }));
    try { ws.close(1000, 'client closed'); } catch { /* already closing */ }
  }
}
