/**
 * The connection actor: one per socket, on the thread that accepted it. It owns the session
 * (spam token, signed-in account, request budget), turns each frame into a validated request,
 * and hands it to the actor that decides it. It answers malformed input itself, with an error
 * frame, and never lets a frame take the process down.
 */
import { randomBytes } from 'node:crypto';
import type { WebSocket } from 'ws';
import { Code } from '../protocol/codes';
import { errorFrame, noticeFrame, type Request } from '../protocol/frames';
import { sanitize, validate } from '../protocol/schema';
import type { Logger } from '../log';
import type { Issued, ResumeCheck } from '../net/sessions';
import { QueueFull } from '../net/signatures';
import type { SocketSession } from '../net/endpoint';
import { now as clock, secondsSince, signinSeconds } from '../status/instruments';
import { SYNC_OWN } from './own';
import type { Peer } from './peer';

/** How a socket signed in, and why a sign-in failed (the status figures). */
export type SignInMethod = 'sig' | 'resume' | 'open';
export type SignInFailure = 'bad-sig' | 'no-sig' | 'queue-full' | Exclude<ResumeCheck, { ok: true }>['reason'];

/** Close code of a socket that did not sign in within `--handshake-ms` (4000-4999: the application's own). */
export const HANDSHAKE_CLOSE_CODE = 4008;

/** What a connection may ask of the rest of the service. */
export interface Router {
  readonly auth: 'signed' | 'open';
  readonly maxFrame: number;
  readonly rateLimit: number;
  /** Bytes a socket may have waiting to be sent; past them it is dropped (a client that does not read). */
  readonly maxBuffered: number;
  /** Count one frame received or sent (for the status figures). */
  received(): void;
  sent(): void;
  /** Count a socket dropped for not reading what it is sent. */
  droppedSlow(): void;
  /** Count (and log at debug) an error frame answered to a request: bad frame, rate limit, refused sign-in. */
  refused?(peer: Connection, code: number, text: string, request: unknown): void;
  /** ms a socket has to sign in before it is closed with HANDSHAKE_CLOSE_CODE. */
  readonly handshakeMs: number;
  /** Throws QueueFull when too many sign-ins wait for verification. */
  verifySignature(message: string, signature: string, address: string): Promise<boolean>;
  /** Checks a resume token for `account` (signed mode). */
  checkResume(token: string, account: string): ResumeCheck;
  /** A resume token for an account that just signed in with its signature. */
  issueResume(account: string): Issued;
  /** Revokes the device's token (`id` until `exp`), or all of the account's with `all`; `done` once that is durable. */
  logout(account: string, session: { id: string; exp: number } | undefined, all: boolean, done: () => void): void;
  signedIn(method: SignInMethod): void;
  signInFailed(reason: SignInFailure): void;
  handshakeTimedOut(): void;
  signIn(peer: Connection, account: string): void;
  signOut(peer: Connection): void;
  /** `offline` (true) / `online` (false): shown offline to presence while still signed in and delivered to. */
  away(peer: Connection, away: boolean): void;
  sync(peer: Connection): void;
  direct(peer: Connection, r: Request): void;
  group(peer: Connection, id: string, r: Request): void;
  ack(account: string, upTo: number): void;
  history(peer: Connection, r: Request): void;
  /** `edit` and `delete` of a message (edits.ts). */
  change(peer: Connection, r: Request): void;
  /** Presence subscriptions, typing and read receipts (src/actors/presence.ts, typing.ts, receipts.ts). */
  presence(peer: Connection, r: Request): void;
  typing(peer: Connection, r: Request): void;
  read(peer: Connection, r: Request): void;
  /** `block`, `unblock` and `blocked`: the account's block list (src/actors/blocks.ts). */
  blocks(peer: Connection, r: Request): void;
  /** `publish`, `claim`, `count` and `remove` of MLS key packages (src/actors/key-packages.ts). */
  keys(peer: Connection, r: Request): void;
  vertify(peer: Connection, r: Request): void;
}

const GROUP_ID_LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** `GD` and 10 letters, as the first service made them, from a cryptographic source. */
export function newGroupId(): string {
  const bytes = randomBytes(10);
  let id = 'GD';
  for (const b of bytes) id += GROUP_ID_LETTERS[b % GROUP_ID_LETTERS.length];
  return id;
}


/** The group a request is for: chat and notice name it in `to`, the rest in `id`; create makes one. */
function groupIdOf(r: Request): string {
  if (r.act === 'create') return newGroupId();
  return String(r.act === 'chat' || r.act === 'notice' ? r.to : r.id);
}

/**
 * Sockets written to during the current turn, held corked until it ends: every frame a socket gets
 * from one batch of actor output leaves in one writev instead of one syscall each (writev was the
 * largest item of the hot path's profile). `_socket` is ws's underlying net.Socket.
 */
const corked: Connection[] = [];

function uncorkAll(): void {
  for (const c of corked) c.uncork();
  corked.length = 0;
}

export class Connection implements Peer, SocketSession {
  account: string | undefined;
  alive = true;
  /** Own-device sync asked for at sign-in (own.ts). */
  syncOwn = false;
  private signingIn = false;
  /** The resume token this socket was given or signed in with (its id and expiry), for `logout`. */
  private session: { id: string; exp: number } | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private deadlinePassed = false;
  private tokens: number;
  private refilledAt = Date.now();

  constructor(
    readonly id: number,
    private readonly socket: WebSocket,
    readonly spam: string,
    private readonly router: Router,
    readonly log: Logger,
  ) {
    this.tokens = router.rateLimit;
    // Idle unsigned sockets must not hold descriptors: sign in within --handshake-ms or be closed.
    this.deadline = setTimeout(() => this.handshakeDeadline(), router.handshakeMs);
    this.deadline.unref();
    socket.once('close', () => clearTimeout(this.deadline));
  }

  private handshakeDeadline(): void {
    this.deadline = undefined;
    if (this.account !== undefined || this.socket.readyState !== 1) return;
    this.deadlinePassed = true;
    // A signature being checked right now gets its answer first; a failure then closes (see activate).
    if (this.signingIn) return;
    this.closeForDeadline();
  }

  private closeForDeadline(): void {
    this.router.handshakeTimedOut();
    this.log.debug({ ms: this.router.handshakeMs }, 'closed: not signed in within the handshake deadline');
    this.socket.close(HANDSHAKE_CLOSE_CODE, `not signed in within ${this.router.handshakeMs} ms`);
  }

  private signedInNow(): void {
    clearTimeout(this.deadline);
    this.deadline = undefined;
    this.deadlinePassed = false;
  }

  private isCorked = false;

  /**
   * Writes one frame. Every write checks the socket's backlog: a client that does not read what it
   * is sent would otherwise hold any amount of the server's memory (live traffic keeps coming), so
   * past `maxBuffered` bytes the socket is dropped. Nothing of an acknowledging account is lost by
   * it: what it has not acknowledged stays in the logs and comes again at its next sign-in.
   */
  send(frame: string | Buffer): boolean {
    if (this.socket.readyState !== 1) return false;
    if (this.socket.bufferedAmount > this.router.maxBuffered) {
      this.dropSlow();
      return false;
    }
    if (!this.isCorked) {
      this.isCorked = true;
      this.raw?.cork();
      if (corked.push(this) === 1) queueMicrotask(uncorkAll);
    }
    this.socket.send(frame);
    this.router.sent();
    return true;
  }

  private dropSlow(): void {
    this.router.droppedSlow();
    this.log.debug({ buffered: this.socket.bufferedAmount, account: this.account }, 'socket dropped: it does not read what it is sent');
    // A close frame would wait behind everything buffered: cut the connection instead (the client sees 1006).
    this.socket.terminate();
  }

  private get raw(): { cork(): void; uncork(): void } | undefined {
    return (this.socket as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
  }

  uncork(): void {
    this.isCorked = false;
    this.raw?.uncork();
  }

  get bufferedAmount(): number { return this.socket.bufferedAmount; }
  ping(): void { this.socket.ping(); }
  terminate(): void { this.socket.terminate(); }
  close(code: number, reason: string): void { this.socket.close(code, reason); }

  /** The peer's address as the socket sees it (a proxy's, behind one). */
  get remoteAddress(): string | undefined {
    return (this.socket as unknown as { _socket?: { remoteAddress?: string } })._socket?.remoteAddress;
  }

  refuse(code: (typeof Code)[keyof typeof Code], text: string, request: unknown, extra?: Record<string, unknown>): void {
    this.router.refused?.(this, code, text, request);
    this.send(errorFrame(code, text, request, extra));
  }

  /** One frame off the socket. */
  receive(data: Buffer, isBinary: boolean): void {
    this.router.received();
    if (data.length > this.router.maxFrame) {
      return this.refuse(Code.INVALID_REQUEST, `frame larger than ${this.router.maxFrame} bytes`, null);
    }
    if (!this.takeToken()) return this.refuse(Code.RATE_LIMITED, 'too many requests', null);
    let parsed: unknown;
    try {
      parsed = JSON.parse(isBinary ? data.toString('utf8') : data.toString());
    } catch {
      return this.refuse(Code.INVALID_REQUEST, 'frame is not valid JSON', null);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      return this.refuse(Code.INVALID_REQUEST, 'frame must be a JSON object', null);
    }
    this.dispatch(parsed as Request);
  }

  private takeToken(): boolean {
    const now = Date.now();
    const rate = this.router.rateLimit;
    this.tokens = Math.min(rate, this.tokens + ((now - this.refilledAt) * rate) / 1000);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private dispatch(raw: Request): void {
    if (raw.spam !== this.spam) return this.refuse(Code.BAD_SPAM, 'spam does not match this connection', raw);
    const invalid = validate(raw);
    if (invalid) return this.refuse(invalid.code, invalid.error, raw);
    const r = sanitize(raw);
    const cat = r.cat ?? 'chat';
    if (cat === 'chat' && r.act === 'active') return void this.activate(r);
    if (this.account === undefined) return this.refuse(Code.NOT_ACTIVE, 'sign in with "active" first', r);
    switch (cat) {
      case 'chat': return this.chat(r);
      case 'group': return this.router.group(this, groupIdOf(r), r);
      case 'vertify': return this.router.vertify(this, r);
      case 'keys': return this.router.keys(this, r);
    }
  }

  private chat(r: Request): void {
    switch (r.act) {
      case 'chat':
      case 'to':
        return this.router.direct(this, r);
      // As in the first service, `offline` only changes what others see: the socket stays signed in and
      // keeps getting its messages; presence shows the account offline until `online` (docs/protocol.md).
      case 'online':
        this.router.away(this, false);
        this.send(noticeFrame('chat', 'online', 'Online', r.callback));
        return this.router.sync(this);
      case 'offline':
        this.router.away(this, true);
        return void this.send(noticeFrame('chat', 'offline', 'Offline', r.callback));
      case 'logout':
        return this.logout(r);
      case 'ack':
        return this.router.ack(this.account!, r.seq as number);
      case 'history':
        return this.router.history(this, r);
      case 'edit':
      case 'delete':
        return this.router.change(this, r);
      case 'presence':
        return this.router.presence(this, r);
      case 'typing':
        return this.router.typing(this, r);
      case 'read':
        return this.router.read(this, r);
      case 'block':
      case 'unblock':
      case 'blocked':
        return this.router.blocks(this, r);
    }
  }

  /**
   * `active`. Signed mode: a valid `resume` token signs in with no public-key check; without one (or
   * with one refused and no `sig`) the signature of the spam decides. Open mode ignores `resume`.
   */
  private async activate(r: Request): Promise<void> {
    const received = clock();
    const acc = r.acc as string;
    if (this.signingIn) return this.refuse(Code.UNEXPECTED_INPUT, 'a sign-in is already in progress', r);
    const signed = this.router.auth === 'signed';
    let method: SignInMethod = 'open';
    let session: { id: string; exp: number } | undefined;
    let issued: Issued | undefined;
    if (signed && typeof r.resume === 'string') {
      const check = this.router.checkResume(r.resume, acc);
      if (check.ok) {
        method = 'resume';
        session = { id: check.id, exp: check.exp };
      } else if (r.sig === undefined) {
        return this.failSignIn(check.reason, Code.BAD_SIGNATURE, `resume token refused (${check.reason}): sign in with "sig"`, r);
      }
    }
    if (method !== 'resume' && (signed || r.sig !== undefined)) {
      if (typeof r.sig !== 'string') return this.failSignIn('no-sig', Code.BAD_SIGNATURE, 'this server needs "sig": the signature of the spam by the account', r);
      this.signingIn = true;
      let ok = false;
      try {
        ok = await this.router.verifySignature(this.spam, r.sig, acc);
      } catch (err) {
        if (err instanceof QueueFull) {
          this.signingIn = false;
          if (this.socket.readyState !== 1) return;
          return this.failSignIn('queue-full', Code.UNAVAILABLE, `too many sign-ins waiting, retry in ${err.retryAfterMs} ms`, r, { retryAfterMs: err.retryAfterMs });
        }
        this.log.error({ err }, 'signature check failed to run');
      } finally {
        this.signingIn = false;
      }
      if (this.socket.readyState !== 1) return;
      if (!ok) return this.failSignIn('bad-sig', Code.BAD_SIGNATURE, 'signature does not verify for this account', r);
      method = 'sig';
      if (signed) {
        issued = this.router.issueResume(acc);
        session = { id: issued.id, exp: issued.exp };
      }
    }
    this.signedInNow();
    this.session = session;
    this.syncOwn = r.sync === SYNC_OWN;
    this.router.signIn(this, acc);
    this.router.signedIn(method);
    this.log.debug({ account: acc, method }, 'signed in');
    this.send(welcomeFrame(r.callback, issued?.token));
    signinSeconds.observe({ method }, secondsSince(received));
    this.router.sync(this);
  }

  private failSignIn(reason: SignInFailure, code: (typeof Code)[keyof typeof Code], text: string, r: Request, extra?: Record<string, unknown>): void {
    this.router.signInFailed(reason);
    this.refuse(code, text, r, extra);
    if (this.deadlinePassed && this.account === undefined) this.closeForDeadline();
  }

  /** `logout`: revokes this device's resume token (every token of the account with `all`), signs the socket out. */
  private logout(r: Request): void {
    const account = this.account!;
    const session = this.session;
    this.session = undefined;
    this.router.signOut(this);
    this.router.logout(account, session, r.all === true, () => this.send(noticeFrame('chat', 'logout', 'Logout', r.callback)));
  }
}

/** The Welcome notice; after a signed sign-in it carries the resume token as the added top-level key `resume`. */
function welcomeFrame(callback: string | undefined, resume: string | undefined): string {
  const frame = noticeFrame('chat', 'active', 'Welcome', callback);
  return resume === undefined ? frame : `${frame.slice(0, -1)},"resume":${JSON.stringify(resume)}}`;
}
