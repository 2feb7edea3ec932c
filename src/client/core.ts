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
 *
 * This class holds the connection's state and routes frames; each concern is in its own file, so
 * that each can be read (and changed) alone: transport.ts (the socket, reconnect backoff),
 * signin.ts (sign-in, the resume token), requests.ts (the outbox: answers, retries, timeouts),
 * acks.ts (seq dedupe, acks, the store epoch), history.ts (paging), groups.ts (`group.*`),
 * verification.ts (`reg`, `token`).
 */
import { Code } from '../protocol/codes.js';
import { Acks } from './acks.js';
import { Emitter } from './emitter.js';
import { E2E, type ConvRef, type E2EOptions } from './e2e/engine.js';
import { Inbound, limitedOf, readFrame } from './inbound.js';
import { ClientCode, ImgcError } from './errors.js';
import { groupCalls, type GroupCalls } from './groups.js';
import { historyMessages, historyPages, historyRequest, type HistoryOptions } from './history.js';
import { randomId } from './random.js';
import { Outbox, type Refusal } from './requests.js';
import { SignIn } from './signin.js';
import { signFn, signerAddress, type Signer } from './signer.js';
import { Transport, backoffOf, type BackoffOptions, type WebSocketCtor, type Wire } from './transport.js';
import type { HistoryPage, LimitedNotice, MessageFrame, NoticeFrame, RegAnswer, Request, ServerFrame, TokenAnswer } from './types.js';
import * as verification from './verification.js';

export type { HistoryOptions } from './history.js';
export type { ConvRef, E2EOptions } from './e2e/engine.js';
export type { E2EStorage } from './e2e/storage.js';
export type { VouchVerifier } from './e2e/device.js';
export { MemoryStorage, WebStorage } from './e2e/storage.js';
export type { BackoffOptions, WebSocketCtor, WebSocketLike } from './transport.js';

export type ConnectionState = 'idle' | 'connecting' | 'signing-in' | 'ready' | 'reconnecting' | 'closed';

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
  /**
   * End-to-end encryption (docs/e2e.md): on with a signer and a way to check signatures (the Node
   * entry `imgc/client` gives one); `false` turns it off.
   */
  e2e?: E2EOptions | false;
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
  /** After each sign-in, once this device's key packages are on the server: others can encrypt to it. */
  e2e: [{ device: string }];
}

export interface SendResult {
  mid: string;
  to: string;
  /** Whether it went encrypted end to end (false: a member has no device keys, a W3OS client). */
  encrypted: boolean;
}

/** Group `act`s that change who is in a group: the next encrypted send asks the server again. */
const MEMBERSHIP_ACTS = new Set(['create', 'join', 'members', 'leave', 'deport', 'recover', 'destory', 'divert']);

function closedError(): ImgcError {
  return new ImgcError(ClientCode.CLOSED, 'client closed');
}

/** The parsed frame, or undefined for text that is not a JSON object. */
function parseFrame(text: string): ServerFrame | undefined {
  let f: ServerFrame;
  try { f = JSON.parse(text) as ServerFrame; } catch { return undefined; }
  return f === null || typeof f !== 'object' ? undefined : f;
}

/** The spam of an `init` frame, if `f` is one. */
function initSpam(f: ServerFrame): string | undefined {
  const spam = 'act' in f && f.act === 'init' ? (f as { spam?: unknown }).spam : undefined;
  return typeof spam === 'string' ? spam : undefined;
}


export class ImgcClient extends Emitter<ClientEvents> {
  readonly url: string;
  readonly account: string;
  private readonly transport: Transport;
  private readonly signIn: SignIn;
  private readonly acks: Acks;
  private readonly requests: Outbox;
  private stateNow: ConnectionState = 'idle';
  private readyWaiters: Array<{ resolve(): void; reject(e: ImgcError): void }> = [];
  /** End-to-end encryption of this client's conversations (undefined: off). */
  readonly e2e: E2E | undefined;
  /** Frames for the listeners wait here in order while one is decrypted (with end-to-end encryption). */
  private readonly inbound: Inbound | undefined;
  /** The highest `seq` processed when this session signed in. */
  private sessionStart = 0;
  /** Every socket ever opened (tests count them). */
  connects = 0;

  constructor(opts: ClientOptions) {
    super();
    this.url = opts.url;
    const sign = opts.signer === undefined ? undefined : signFn(opts.signer);
    const account = opts.account ?? (opts.signer === undefined ? undefined : signerAddress(opts.signer));
    if (account === undefined) throw new ImgcError(Code.MISSING_PARAMS, 'ImgcClient: give `account` (or a keyring pair as `signer`)');
    this.account = account;
    const Ctor = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
    if (Ctor === undefined) throw new ImgcError(Code.MISSING_PARAMS, 'ImgcClient: no WebSocket here: give the `WebSocket` option');
    this.transport = new Transport(this.url, Ctor, backoffOf(opts.reconnect), { text: (t) => this.onFrame(t), closed: () => this.onClose() });
    const wire: Wire = { send: (f) => this.transport.send(f), ready: () => this.stateNow === 'ready', closed: () => this.stateNow === 'closed' };
    this.acks = new Acks(opts.ack ?? true, opts.lastSeq ?? 0, wire);
    this.requests = new Outbox(opts.requestTimeoutMs ?? 0, wire);
    this.e2e = opts.e2e && sign ? new E2E({
      account,
      sign,
      request: (f, repeat) => this.request(f, repeat),
      groupMembers: async (id) => (await this.group.detail(id)).group,
      warn: (e) => this.emit('error', e),
    }, opts.e2e) : undefined;
    this.inbound = this.e2e && new Inbound({
      open: (f) => this.e2e!.open(f),
      deliver: (n, shown) => this.deliver(n, shown),
      pages: (o) => this.historyPages(o),
      sessionStart: () => this.sessionStart,
      failed: (e) => this.emit('error', e instanceof ImgcError ? e : new ImgcError(ClientCode.E2E_UNREADABLE, `reading a message failed: ${String(e)}`)),
    });
    this.signIn = new SignIn(sign, opts.resume, this.transport, {
      account,
      signingIn: () => this.setState('signing-in'),
      isSigningIn: () => this.stateNow === 'signing-in',
      fail: (e) => this.fail(e),
    });
  }

  get state(): ConnectionState { return this.stateNow; }
  /** The highest `seq` processed (keep it with the resume token to carry on in a later session). */
  get highestSeq(): number { return this.acks.highest; }
  /** The resume token of the last signed sign-in, if any. */
  get resume(): string | undefined { return this.signIn.token; }
  /** Requests not answered yet (the outbox). */
  get outbox(): number { return this.requests.size; }

  /** Opens the connection and resolves once signed in (rejects if the sign-in is refused for good). */
  connect(): Promise<void> {
    if (this.stateNow === 'closed') return Promise.reject(closedError());
    const ready = this.ready();
    if (this.stateNow === 'idle') this.open();
    return ready;
  }

  /** Resolves when signed in (at once if it is now). */
  ready(): Promise<void> {
    if (this.stateNow === 'ready') return Promise.resolve();
    if (this.stateNow === 'closed') return Promise.reject(closedError());
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
    // Group states written out before the `closed` listeners run (the CLI saves its file there).
    this.e2e?.flush();
    this.setState('closed');
    this.acks.stop();
    this.transport.shut(() => this.acks.last(wasReady));
    const err = closedError();
    this.requests.rejectAll(err);
    for (const w of this.readyWaiters.splice(0)) w.reject(err);
  }

  /** Drops the socket as a network failure would (the client reconnects); for tests and "reconnect now". */
  drop(): void {
    this.transport.drop();
  }

  // ---- messaging ----

  /**
   * A direct message; resolves when the server stored it (the `mid` answer). Encrypted end to end
   * when both accounts have device keys (`encrypted` in the result).
   */
  async send(to: string, msg: unknown, mid = randomId()): Promise<SendResult> {
    const encrypted = await this.post({ with: to }, msg, mid, (m, id) => ({ cat: 'chat', act: 'chat', to, msg: m, mid: id }));
    return { mid, to, encrypted };
  }

  /**
   * Posts `msg` in a conversation: the records end-to-end encryption makes of it (the last with
   * `mid`), or the text itself; true when encrypted.
   */
  async post(conv: ConvRef, msg: unknown, mid: string, frame: (msg: unknown, mid: string) => Request): Promise<boolean> {
    const records = this.e2e === undefined ? undefined : await this.e2e.seal(conv, msg);
    if (records === undefined) {
      await this.request(frame(msg, mid), true);
      return false;
    }
    try {
      for (const [i, r] of records.entries()) await this.request(frame(r, i === records.length - 1 ? mid : randomId()), true);
    } catch (e) {
      this.e2e!.postFailed(conv);
      throw e;
    }
    return true;
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
    this.acks.seeEpoch(page.epoch);
    return this.e2e === undefined ? page : { ...page, messages: await this.readAll(page.messages) };
  }

  /** History's messages as the listeners would see them: decrypted, the machinery of encryption left out. */
  private async readAll(list: Array<MessageFrame | NoticeFrame>): Promise<Array<MessageFrame | NoticeFrame>> {
    const out: Array<MessageFrame | NoticeFrame> = [];
    for (const f of list) {
      const shown = await readFrame((m) => this.e2e!.open(m), f);
      if (shown !== undefined) out.push(shown);
    }
    return out;
  }

  /** Signs this device out and revokes its resume token (every token of the account with `all`), then closes. */
  async logout(all = false): Promise<void> {
    await this.request({ cat: 'chat', act: 'logout', ...(all ? { all: true } : {}) }, false);
    this.signIn.token = undefined;
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
    if (this.stateNow === 'closed') return Promise.reject(closedError());
    const answer = this.requests.add(frame, repeat);
    if (this.e2e && frame.cat === 'group' && MEMBERSHIP_ACTS.has(frame.act) && typeof frame.id === 'string') {
      const id = frame.id;
      void answer.then(() => this.e2e!.membershipChanged(id), () => this.e2e!.membershipChanged(id));
    }
    return answer;
  }

  // ---- connection ----

  private setState(s: ConnectionState): void {
    if (this.stateNow === s) return;
    this.stateNow = s;
    this.emit('state', s);
  }

  private open(): void {
    this.setState('connecting');
    this.connects++;
    const e = this.transport.open();
    if (e === undefined) return;
    this.emit('error', new ImgcError(Code.INVALID_REQUEST, `cannot open ${this.url}: ${e.message}`));
    this.scheduleReconnect();
  }

  private onClose(): void {
    this.transport.forget();
    if (this.stateNow === 'closed') return;
    this.acks.stop();
    this.requests.connectionLost();
    if (!this.transport.reconnects) { this.close(); return; }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stateNow === 'closed' || !this.transport.reconnects) return;
    this.setState('reconnecting');
    this.transport.retryLater(() => { if (this.stateNow === 'reconnecting') this.open(); });
  }

  /** A sign-in refused for good: report it, close. */
  private fail(e: ImgcError): void {
    const waiters = this.readyWaiters.splice(0);
    this.emit('error', e);
    for (const w of waiters) w.reject(e);
    this.close();
  }

  private onWelcome(n: NoticeFrame & { resume?: string }): void {
    if (typeof n.resume === 'string') {
      this.signIn.token = n.resume;
      this.emit('resume', n.resume);
    }
    this.transport.resetBackoff();
    this.sessionStart = this.acks.highest;
    this.setState('ready');
    this.acks.welcomed();
    this.requests.transmitUnsent();
    // Group events may have been missed while away: memberships are asked again before the next send.
    this.e2e?.membershipChanged();
    // Keep this device's key packages on the server (a server without the directory: no end-to-end).
    const e2e = this.e2e;
    void e2e?.topUp().then(() => this.emit('e2e', { device: e2e.device! })).catch((e: unknown) => this.emit('error', e instanceof ImgcError ? e : new ImgcError(ClientCode.BAD_ANSWER, `key packages: ${String(e)}`)));
    for (const w of this.readyWaiters.splice(0)) w.resolve();
  }

  // ---- frames ----

  private onFrame(text: string): void {
    const f = parseFrame(text);
    if (f === undefined) return;
    this.emit('frame', f);
    const spam = initSpam(f);
    if (spam !== undefined) {
      this.transport.spam = spam;
      void this.signIn.start(true);
      return;
    }
    const type = (f as { type?: unknown }).type;
    if (type === 'error') return this.onError(f as Refusal);
    if (type === 'notice' || type === 'message') this.onNotice(f as NoticeFrame | MessageFrame);
  }

  /** A notice or message: the welcome, an answer, or (unless seen before) one for the listeners. */
  private onNotice(n: NoticeFrame | MessageFrame): void {
    if (n.method?.cat === 'chat' && n.method.act === 'active' && n.type === 'notice') return this.onWelcome(n);
    if (this.requests.answer(n)) { this.acks.answered(n.seq); return; }
    if (this.acks.seen(n.seq)) return; // seen before (delivered again after a reconnect)
    if (this.e2e === undefined) return this.deliver(n, n);
    // A group event: the next encrypted send there asks who is in it (before anything waits to be read).
    const gid = n.type === 'notice' && n.method?.cat === 'group' ? n.group ?? (n.msg as { id?: string } | null)?.id : undefined;
    if (gid !== undefined) this.e2e.membershipChanged(gid);
    // Decryption is asynchronous: frames wait in order behind the one being read (inbound.ts).
    this.inbound!.push(n);
  }

  /** Hands `n` to the listeners as `shown` (decrypted; undefined: only the machinery of encryption). */
  private deliver(n: NoticeFrame | MessageFrame, shown: NoticeFrame | MessageFrame | undefined): void {
    if (this.stateNow === 'closed') return;
    if (shown?.type === 'message') this.emit('message', shown);
    else if (shown !== undefined) this.onOtherNotice(shown);
    // Processed (the listeners returned): it may be acknowledged.
    this.acks.processed(n.seq);
  }

  private onOtherNotice(n: NoticeFrame): void {
    const limited = limitedOf(n);
    if (limited) {
      this.acks.seeEpoch(limited.epoch);
      this.emit('limited', limited);
    }
    this.emit('notice', n);
  }

  private onError(f: Refusal): void {
    const req = (f.request ?? null) as Request | null;
    if (req && req.act === 'active' && req.callback === 'active') return this.signIn.refused(f, req);
    if (!this.requests.refused(f, req)) this.emit('error', ImgcError.fromFrame(f));
  }
}
