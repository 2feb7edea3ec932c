/**
 * The IMGC client: one logical connection to a server that survives socket drops and restarts.
 * Runs in Node and in browsers from the same code: give the WebSocket constructor (`ws` in Node,
 * the native one in a browser; `imgc/client` in Node defaults to `ws`).
 *
 *   const c = new ImgcClient({ url: 'ws://127.0.0.1:7788', signer: pair });
 *   c.on('message', (m) => …);
 *   await c.connect();
 *   await c.send(bob, 'hello');              // resolves once the server stored it
 *   for await (const m of c.history({ with: bob })) …   // newest first
 *
 * How it maps to the protocol (docs/protocol.md, docs/client.md):
 * - sign-in: `active` with `resume` (the token of the last Welcome) when it has one, else `sig` (the
 *   signer's signature of the spam); a refused token (44004) is dropped and `sig` sent at once;
 *   45003 at sign-in is retried after `retryAfterMs` with jitter. Open mode: no signer, `account` only.
 * - reconnect: exponential backoff with jitter, reset once signed in again.
 * - acknowledging mode (default): after every Welcome `ack` with the highest `seq` processed, then
 *   acks (batched) of what the listeners processed; a frame whose `seq` is at most the highest seen
 *   is dropped, so nothing is seen twice.
 * - requests carry a `callback` key that their answer or error names; sends (`chat`, group `chat`
 *   and `notice`) carry a `mid` and are repeated after a reconnect until answered (the server does
 *   not store a repeated `mid` twice). Reads are repeated too; changes that are not safe to repeat
 *   reject with ClientCode.CONNECTION_LOST when the socket drops before their answer.
 */
import { Code } from '../protocol/codes.js';
import { Emitter } from './emitter.js';
import { ClientCode, ImgcError } from './errors.js';
import { groupCalls, type GroupCalls } from './groups.js';
import { historyMessages, historyPages, historyRequest, type HistoryOptions } from './history.js';
import { jittered, randomId } from './random.js';
import { signFn, signerAddress, type SignFn, type Signer } from './signer.js';
import type {
  ErrorFrame, HistoryPage, LimitedNotice, MessageFrame, NoticeFrame, RegAnswer, Request, ServerFrame, TokenAnswer,
} from './types.js';
import * as verification from './verification.js';

export type { HistoryOptions } from './history.js';

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

export type ConnectionState = 'idle' | 'connecting' | 'signing-in' | 'ready' | 'reconnecting' | 'closed';

export interface BackoffOptions {
  /** First delay (ms), default 250. */
  initialMs?: number;
  /** Largest delay (ms), default 10,000. */
  maxMs?: number;
  /** Growth per attempt, default 2. */
  factor?: number;
}

export interface ClientOptions {
  url: string;
  /** Signs the spam at sign-in; without it the client signs in unsigned (servers with `--auth open`). */
  signer?: Signer;
  /** The SS58 account; optional with a keyring pair (its `address`), required otherwise. */
  account?: string;
  /** The WebSocket constructor; default `globalThis.WebSocket` (the Node entry `imgc/client` gives `ws`). */
  WebSocket?: WebSocketCtor;
  /** Acknowledging mode (default true). */
  ack?: boolean;
  /** Reconnect with these delays (default on); `false`: a dropped socket closes the client. */
  reconnect?: BackoffOptions | false;
  /** A resume token kept from an earlier session (see the `resume` event). */
  resume?: string;
  /** The highest `seq` processed in an earlier session (see `highestSeq`): older frames are dropped. */
  lastSeq?: number;
  /** Reject a request not answered within this (ms); default 0: wait (a send is repeated until answered). */
  requestTimeoutMs?: number;
}

export interface ClientEvents {
  /** A direct or group message (from someone else). */
  message: [MessageFrame];
  /** Every notice that is not the answer to this client's own request (group events, `limited`, `done`, …). */
  notice: [NoticeFrame];
  /** A busy group's older messages were not delivered at sign-in: page them with `history({ group, before })`. */
  limited: [LimitedNotice];
  state: [ConnectionState];
  /** A new resume token (keep it to sign in without the signer next time). */
  resume: [string];
  /** An error frame that answers no request of this client, or a sign-in that failed for good. */
  error: [ImgcError];
  /** Every frame received, parsed, before any handling. */
  frame: [ServerFrame];
}

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

export interface SendResult { mid: string; to: string }

const OPEN = 1;
/** How many times a request refused with 45003/41401 (not executed) is tried again. */
const MAX_RETRIES = 20;

export class ImgcClient extends Emitter<ClientEvents> {
  readonly url: string;
  readonly account: string;
  private readonly sign: SignFn | undefined;
  private readonly Ctor: WebSocketCtor;
  private readonly ackMode: boolean;
  private readonly backoff: Required<BackoffOptions> | undefined;
  private readonly requestTimeoutMs: number;

  private ws: WebSocketLike | undefined;
  private spam: string | undefined;
  private stateNow: ConnectionState = 'idle';
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private resumeToken: string | undefined;
  private highest: number;
  private acked: number;
  private ackTimer: ReturnType<typeof setTimeout> | undefined;
  private epoch: string | undefined;
  private nextKey = 1;
  private readonly pending = new Map<string, Pending>();
  private readyWaiters: Array<{ resolve(): void; reject(e: ImgcError): void }> = [];
  /** Every socket ever opened (tests count them); the current is `ws`. */
  connects = 0;

  constructor(opts: ClientOptions) {
    super();
    this.url = opts.url;
    this.sign = opts.signer === undefined ? undefined : signFn(opts.signer);
    const account = opts.account ?? (opts.signer === undefined ? undefined : signerAddress(opts.signer));
    if (account === undefined) throw new ImgcError(Code.MISSING_PARAMS, 'ImgcClient: give `account` (or a keyring pair as `signer`)');
    this.account = account;
    const Ctor = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
    if (Ctor === undefined) throw new ImgcError(Code.MISSING_PARAMS, 'ImgcClient: no WebSocket here: give the `WebSocket` option');
    this.Ctor = Ctor;
    this.ackMode = opts.ack ?? true;
    this.backoff = opts.reconnect === false ? undefined : { initialMs: 250, maxMs: 10_000, factor: 2, ...opts.reconnect };
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 0;
    this.resumeToken = opts.resume;
    this.highest = opts.lastSeq ?? 0;
    this.acked = this.highest;
  }

  get state(): ConnectionState { return this.stateNow; }
  /** The highest `seq` processed (keep it with the resume token to carry on in a later session). */
  get highestSeq(): number { return this.highest; }
  /** The resume token of the last signed sign-in, if any. */
  get resume(): string | undefined { return this.resumeToken; }
  /** Requests not answered yet (the outbox). */
  get outbox(): number { return this.pending.size; }

  /** Opens the connection and resolves once signed in (rejects if the sign-in is refused for good). */
  connect(): Promise<void> {
    if (this.stateNow === 'closed') return Promise.reject(new ImgcError(ClientCode.CLOSED, 'client closed'));
    const ready = this.ready();
    if (this.stateNow === 'idle') this.open();
    return ready;
  }

  /** Resolves when signed in (at once if it is now). */
  ready(): Promise<void> {
    if (this.stateNow === 'ready') return Promise.resolve();
    if (this.stateNow === 'closed') return Promise.reject(new ImgcError(ClientCode.CLOSED, 'client closed'));
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /**
   * Closes for good: no frame is handled after it, pending requests reject with ClientCode.CLOSED.
   * Called from a listener, the frame being handled counts as processed: the last `ack` (sent just
   * before the socket closes) includes it.
   */
  close(): void {
    if (this.stateNow === 'closed') return;
    const wasReady = this.stateNow === 'ready';
    this.setState('closed');
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.ackTimer);
    const ws = this.ws;
    const spam = this.spam;
    this.ws = undefined;
    if (ws) {
      this.detach(ws);
      queueMicrotask(() => {
        if (wasReady && this.ackMode && this.highest > this.acked && ws.readyState === OPEN && spam !== undefined) {
          ws.send(JSON.stringify({ cat: 'chat', act: 'ack', seq: this.highest, spam }));
          this.acked = this.highest;
        }
        try { ws.close(1000, 'client closed'); } catch { /* already closing */ }
      });
    }
    const err = new ImgcError(ClientCode.CLOSED, 'client closed');
    for (const p of this.pending.values()) { clearTimeout(p.timer); p.reject(err); }
    this.pending.clear();
    for (const w of this.readyWaiters.splice(0)) w.reject(err);
  }

  /** Drops the socket as a network failure would (the client reconnects); for tests and "reconnect now". */
  drop(): void {
    const ws = this.ws;
    if (ws) { try { ws.close(4000, 'dropped by client'); } catch { /* closing */ } }
  }

  // ---- messaging ----

  /** A direct message; resolves when the server stored it (the `mid` answer). */
  async send(to: string, msg: unknown, mid = randomId()): Promise<SendResult> {
    await this.request({ cat: 'chat', act: 'chat', to, msg, mid }, true);
    return { mid, to };
  }

  /**
   * History of a conversation as an async iterator of messages: newest first by default
   * (`direction: 'forward'`: oldest first). Pages are fetched as the loop goes on.
   */
  history(opts: HistoryOptions): AsyncGenerator<MessageFrame | NoticeFrame> {
    return historyMessages(opts, () => this.historyPages(opts));
  }

  /** History page by page (each page's messages oldest first). */
  historyPages(opts: HistoryOptions): AsyncGenerator<HistoryPage> {
    return historyPages(opts, (o) => this.historyPage(o));
  }

  /** One `history` request. */
  async historyPage(opts: HistoryOptions): Promise<HistoryPage> {
    const page = (await this.request(historyRequest(opts), true)).msg as HistoryPage;
    this.seeEpoch(page.epoch);
    return page;
  }

  /** Signs this device out and revokes its resume token (every token of the account with `all`), then closes. */
  async logout(all = false): Promise<void> {
    await this.request({ cat: 'chat', act: 'logout', ...(all ? { all: true } : {}) }, false);
    this.resumeToken = undefined;
    this.close();
  }

  // ---- groups ----

  readonly group: GroupCalls = groupCalls(this);

  // ---- verification ----

  /** `reg`: what to pay to be verified (or the proof, `done: true`). */
  reg(account = this.account): Promise<RegAnswer> {
    return verification.reg(this, account);
  }

  /** `token`: the verification token of a verified account. */
  token(): Promise<TokenAnswer> {
    return verification.token(this);
  }

  /**
   * Any request (spam and `callback` are added); resolves with the notice answering it, rejects with
   * an ImgcError carrying the server's code. `repeat`: send it again after a reconnect if unanswered.
   */
  request(frame: Request, repeat: boolean): Promise<NoticeFrame> {
    if (this.stateNow === 'closed') return Promise.reject(new ImgcError(ClientCode.CLOSED, 'client closed'));
    return new Promise<NoticeFrame>((resolve, reject) => {
      const key = `k${this.nextKey++}`;
      const p: Pending = { key, frame: { ...frame, callback: key }, repeat, sent: false, retries: 0, resolve, reject };
      if (this.requestTimeoutMs > 0) {
        p.timer = setTimeout(() => {
          this.pending.delete(key);
          reject(new ImgcError(ClientCode.TIMEOUT, `no answer to ${frame.cat ?? 'chat'}/${frame.act} within ${this.requestTimeoutMs} ms`));
        }, this.requestTimeoutMs);
      }
      this.pending.set(key, p);
      if (this.stateNow === 'ready') this.transmit(p);
    });
  }

  // ---- connection ----

  private setState(s: ConnectionState): void {
    if (this.stateNow === s) return;
    this.stateNow = s;
    this.emit('state', s);
  }

  private open(): void {
    this.setState('connecting');
    this.spam = undefined;
    this.connects++;
    let ws: WebSocketLike;
    try {
      ws = new this.Ctor(this.url);
    } catch (e) {
      this.emit('error', new ImgcError(Code.INVALID_REQUEST, `cannot open ${this.url}: ${(e as Error).message}`));
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => this.onFrame(String(ev.data));
    ws.onclose = () => { if (this.ws === ws) this.onClose(); };
    ws.onerror = () => { /* a close follows */ };
  }

  private detach(ws: WebSocketLike): void {
    ws.onmessage = null;
    ws.onclose = null;
    ws.onerror = null;
  }

  private onClose(): void {
    const ws = this.ws;
    if (ws) this.detach(ws);
    this.ws = undefined;
    this.spam = undefined;
    if (this.stateNow === 'closed') return;
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    for (const p of [...this.pending.values()]) {
      if (p.sent && !p.repeat) {
        clearTimeout(p.timer);
        this.pending.delete(p.key);
        p.reject(new ImgcError(ClientCode.CONNECTION_LOST, `connection lost before the answer to ${p.frame.cat ?? 'chat'}/${p.frame.act}; it may or may not have been done`));
      } else p.sent = false;
    }
    if (!this.backoff) { this.close(); return; }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stateNow === 'closed' || !this.backoff) return;
    this.setState('reconnecting');
    const b = this.backoff;
    const delay = jittered(Math.min(b.maxMs, b.initialMs * b.factor ** this.attempt));
    this.attempt++;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => { if (this.stateNow === 'reconnecting') this.open(); }, delay);
  }

  private sendRaw(obj: Request): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN || this.spam === undefined) return false;
    ws.send(JSON.stringify({ ...obj, spam: this.spam }));
    return true;
  }

  private transmit(p: Pending): void {
    if (this.sendRaw(p.frame)) p.sent = true;
  }

  private async signIn(useResume: boolean): Promise<void> {
    const ws = this.ws;
    this.setState('signing-in');
    const r: Request = { cat: 'chat', act: 'active', acc: this.account, callback: 'active' };
    if (this.sign) {
      if (useResume && this.resumeToken !== undefined) r.resume = this.resumeToken;
      else {
        const spam = this.spam!;
        try {
          r.sig = await this.sign(spam);
        } catch (e) {
          this.fail(new ImgcError(Code.BAD_SIGNATURE, `the signer failed: ${(e as Error).message}`));
          return;
        }
        if (this.ws !== ws || this.spam !== spam) return; // the socket changed meanwhile
      }
    }
    this.sendRaw(r);
  }

  /** A sign-in refused for good: report it, close. */
  private fail(e: ImgcError): void {
    const waiters = this.readyWaiters.splice(0);
    this.emit('error', e);
    for (const w of waiters) w.reject(e);
    this.close();
  }

  private onSignInError(f: ErrorFrame & { retryAfterMs?: number }, req: Request): void {
    if (f.code === Code.BAD_SIGNATURE && req.resume !== undefined) {
      // The token was refused (expired, revoked, another server's key): sign with the signer.
      this.resumeToken = undefined;
      void this.signIn(false);
      return;
    }
    if (f.code === Code.UNAVAILABLE || f.code === Code.INTERNAL) {
      const ws = this.ws;
      setTimeout(() => { if (this.ws === ws && this.stateNow === 'signing-in') void this.signIn(req.resume !== undefined); }, jittered(2 * (f.retryAfterMs ?? 500)));
      return;
    }
    this.fail(ImgcError.fromFrame(f));
  }

  private onWelcome(n: NoticeFrame & { resume?: string }): void {
    if (typeof n.resume === 'string') {
      this.resumeToken = n.resume;
      this.emit('resume', n.resume);
    }
    this.attempt = 0;
    this.setState('ready');
    // Acknowledging mode from the first frame on: the server keeps what is not acknowledged.
    if (this.ackMode) { this.sendRaw({ cat: 'chat', act: 'ack', seq: this.highest }); this.acked = this.highest; }
    for (const p of this.pending.values()) if (!p.sent) this.transmit(p);
    for (const w of this.readyWaiters.splice(0)) w.resolve();
  }

  private seeEpoch(epoch: unknown): void {
    if (typeof epoch !== 'string') return;
    if (this.epoch !== undefined && this.epoch !== epoch) { this.highest = 0; this.acked = 0; }
    this.epoch = epoch;
  }

  private onFrame(text: string): void {
    let f: ServerFrame;
    try { f = JSON.parse(text) as ServerFrame; } catch { return; }
    if (f === null || typeof f !== 'object') return;
    this.emit('frame', f);
    if ('act' in f && f.act === 'init' && typeof (f as { spam?: unknown }).spam === 'string') {
      this.spam = (f as { spam: string }).spam;
      void this.signIn(true);
      return;
    }
    const type = (f as { type?: unknown }).type;
    if (type === 'error') return this.onError(f as ErrorFrame);
    if (type !== 'notice' && type !== 'message') return;
    const n = f as NoticeFrame | MessageFrame;
    if (n.method?.cat === 'chat' && n.method.act === 'active' && type === 'notice') return this.onWelcome(n as NoticeFrame);
    const key = n.method?.callback;
    const p = key === undefined ? undefined : this.pending.get(key);
    if (p) {
      this.pending.delete(p.key);
      clearTimeout(p.timer);
      p.resolve(n as NoticeFrame);
      if (typeof n.seq === 'number' && n.seq > this.highest) { this.highest = n.seq; this.scheduleAck(); }
      return;
    }
    if (typeof n.seq === 'number') {
      if (n.seq <= this.highest) return; // seen before (delivered again after a reconnect)
    }
    if (type === 'message') this.emit('message', n as MessageFrame);
    else {
      const m = n.msg as Partial<LimitedNotice> | null;
      if (n.method?.act === 'limited' && m && typeof m === 'object' && m.limited === true) {
        this.seeEpoch(m.epoch);
        this.emit('limited', m as LimitedNotice);
      }
      this.emit('notice', n as NoticeFrame);
    }
    // Processed (the listeners returned): it may be acknowledged.
    if (typeof n.seq === 'number') { this.highest = n.seq; this.scheduleAck(); }
  }

  private onError(f: ErrorFrame & { retryAfterMs?: number }): void {
    const req = (f.request ?? null) as Request | null;
    if (req && req.act === 'active' && req.callback === 'active') return this.onSignInError(f, req);
    const p = typeof req?.callback === 'string' ? this.pending.get(req.callback) : undefined;
    if (!p) { this.emit('error', ImgcError.fromFrame(f)); return; }
    if ((f.code === Code.UNAVAILABLE || f.code === Code.INTERNAL) && p.retries < MAX_RETRIES) {
      // Not executed: try again a little later.
      p.retries++;
      p.sent = false;
      setTimeout(() => { if (this.pending.get(p.key) === p && !p.sent && this.stateNow === 'ready') this.transmit(p); }, jittered(2 * (f.retryAfterMs ?? 200 * p.retries)));
      return;
    }
    this.pending.delete(p.key);
    clearTimeout(p.timer);
    p.reject(ImgcError.fromFrame(f));
  }

  private scheduleAck(): void {
    if (!this.ackMode || this.ackTimer !== undefined || this.stateNow === 'closed') return;
    this.ackTimer = setTimeout(() => { this.ackTimer = undefined; this.flushAck(); }, 20);
  }

  private flushAck(): void {
    if (!this.ackMode || this.highest <= this.acked || this.stateNow !== 'ready') return;
    if (this.sendRaw({ cat: 'chat', act: 'ack', seq: this.highest })) this.acked = this.highest;
  }
}
