/**
 * A test client of the IMGC wire protocol over a real WebSocket. Every frame the server sends is
 * parsed and queued; `next(predicate)` takes the first queued or arriving frame that matches
 * (frames that do not match stay queued for later), `collect(ms)` takes everything for a while.
 *
 *   const c = await Client.connect(srv.url);      // has read the init frame: c.spam
 *   await c.signIn(alice);                         // resolves with the Welcome notice
 *   c.request({ cat: 'group', act: 'create', list: [bob.address], callback: 'k1' });
 *   const created = await c.next(isNotice('group', 'create'));
 */
import WebSocket from 'ws';
import type { KeyringPair } from '@polkadot/keyring/types';
import { signSpam, type Account } from './accounts';

/** A frame as the server sent it, parsed (non-JSON text arrives as `{ raw }`, binary as `{ binary }`). */
export type Frame = Record<string, any>;
export type Predicate = (f: Frame) => boolean;

export const DEFAULT_WAIT_MS = 5000;

interface Waiter { pred: Predicate; resolve: (f: Frame) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; what: string }

export class Client {
  /** Frames received and not yet taken, oldest first. */
  readonly queue: Frame[] = [];
  /** Every frame received since the init frame, in order (taken or not). */
  readonly log: Frame[] = [];
  /** The account signed in with `signIn`, if any. */
  account: string | undefined;
  /** Close code and reason once the socket closed. */
  closedWith: { code: number; reason: string } | undefined;
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: Waiter[] = [];

  private constructor(readonly ws: WebSocket, readonly init: Frame, readonly spam: string, readonly name: string) {
    ws.on('message', (data, isBinary) => this.onFrame(data as Buffer, isBinary));
    this.closed = new Promise((res) => ws.once('close', (code, reason) => {
      this.closedWith = { code, reason: reason.toString() };
      for (const w of this.waiters.splice(0)) { clearTimeout(w.timer); w.reject(new Error(`${this.name}: socket closed (${code}) while waiting for ${w.what}`)); }
      res(this.closedWith);
    }));
  }

  /** Opens a socket to `url` and reads the init frame `{"spam","act":"init"}`. */
  static connect(url: string, opts: { name?: string; timeoutMs?: number; tls?: { rejectUnauthorized: boolean } } = {}): Promise<Client> {
    const name = opts.name ?? 'client';
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, ...opts.tls });
      const t = setTimeout(() => { ws.terminate(); reject(new Error(`${name}: no init frame within ${opts.timeoutMs ?? DEFAULT_WAIT_MS} ms`)); }, opts.timeoutMs ?? DEFAULT_WAIT_MS);
      ws.once('error', (e) => { clearTimeout(t); reject(e); });
      ws.once('message', (data) => {
        clearTimeout(t);
        let init: Frame;
        try { init = JSON.parse(String(data)) as Frame; } catch { reject(new Error(`${name}: first frame is not JSON: ${String(data)}`)); return; }
        if (init.act !== 'init' || typeof init.spam !== 'string') { reject(new Error(`${name}: first frame is not init: ${String(data)}`)); return; }
        ws.removeAllListeners('error');
        ws.on('error', () => { /* surfaced through `closed` */ });
        resolve(new Client(ws, init, init.spam as string, name));
      });
    });
  }

  private onFrame(data: Buffer, isBinary: boolean): void {
    let f: Frame;
    if (isBinary) f = { binary: data };
    else {
      try {
        const parsed: unknown = JSON.parse(data.toString());
        f = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? parsed as Frame : { raw: data.toString() };
      } catch { f = { raw: data.toString() }; }
    }
    this.log.push(f);
    const i = this.waiters.findIndex((w) => w.pred(f));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      clearTimeout(w!.timer);
      w!.resolve(f);
      return;
    }
    this.queue.push(f);
  }

  get open(): boolean { return this.ws.readyState === WebSocket.OPEN; }

  /** Sends raw text, bytes (a binary frame when `binary`), or an object as JSON, exactly as given. */
  send(data: string | Buffer | object, opts: { binary?: boolean } = {}): void {
    const payload = typeof data === 'string' || Buffer.isBuffer(data) ? data : JSON.stringify(data);
    this.ws.send(payload, { binary: opts.binary ?? Buffer.isBuffer(payload) });
  }

  /** Sends a request with this connection's spam added (an explicit `spam` in `obj` wins). */
  request(obj: Frame): Frame {
    const r = { ...obj, spam: 'spam' in obj ? obj.spam : this.spam };
    this.send(r);
    return r;
  }

  /** Takes the first frame (queued or arriving within `timeoutMs`) for which `pred` holds. */
  next(pred: Predicate = () => true, timeoutMs = DEFAULT_WAIT_MS, what = 'a matching frame'): Promise<Frame> {
    const i = this.queue.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]!);
    if (this.closedWith) return Promise.reject(new Error(`${this.name}: socket closed (${this.closedWith.code}) before ${what}`));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        pred, resolve, reject, what,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error(`${this.name}: timed out after ${timeoutMs} ms waiting for ${what}; queued: ${describe(this.queue)}`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  /** Takes `n` matching frames in arrival order. */
  async nextN(n: number, pred: Predicate = () => true, timeoutMs = DEFAULT_WAIT_MS, what = 'matching frames'): Promise<Frame[]> {
    const out: Frame[] = [];
    for (let i = 0; i < n; i++) out.push(await this.next(pred, timeoutMs, `${what} (${i + 1} of ${n})`));
    return out;
  }

  /** Waits `ms`, then takes every queued frame. */
  async collect(ms: number): Promise<Frame[]> {
    await sleep(ms);
    return this.queue.splice(0);
  }

  /** Waits `ms` and returns (takes) the queued frames matching `pred`; an empty array means none came. */
  async none(pred: Predicate = () => true, ms = 200): Promise<Frame[]> {
    await sleep(ms);
    const hits = this.queue.filter(pred);
    for (const h of hits) this.queue.splice(this.queue.indexOf(h), 1);
    return hits;
  }

  /** Drops every queued frame. */
  clear(): void { this.queue.splice(0); }

  /**
   * `active` as the W3OS client sends it (no `cat`), signed with `opts.sign` (or the account's own
   * pair when `opts.signed`); resolves with the Welcome notice, rejects with the error frame's text.
   */
  async signIn(account: Account | string, opts: { sign?: KeyringPair; signed?: boolean; callback?: string; timeoutMs?: number } = {}): Promise<Frame> {
    const acc = typeof account === 'string' ? account : account.address;
    const pair = opts.sign ?? (opts.signed && typeof account !== 'string' ? account.pair : undefined);
    const r: Frame = { act: 'active', acc };
    if (pair) r.sig = signSpam(pair, this.spam);
    if (opts.callback !== undefined) r.callback = opts.callback;
    this.request(r);
    const f = await this.next((x) => isNotice('chat', 'active')(x) || (x.type === 'error' && x.method?.act === 'active'), opts.timeoutMs ?? DEFAULT_WAIT_MS, 'the answer to active');
    if (f.type === 'error') throw new Error(`${this.name}: sign-in refused: ${JSON.stringify(f)}`);
    this.account = acc;
    return f;
  }

  /** Sends `obj` (with spam) and resolves with the error frame answering it (matched by method and, if any, callback). */
  async expectError(obj: Frame, timeoutMs = DEFAULT_WAIT_MS): Promise<Frame> {
    const r = this.request(obj);
    return this.next((f) => f.type === 'error' && answers(f, r), timeoutMs, `an error answering ${short(r)}`);
  }

  /** Closes the socket and waits for the close. */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    if (this.ws.readyState !== WebSocket.CLOSING) this.ws.close();
    const t = setTimeout(() => this.ws.terminate(), 2000);
    await this.closed;
    clearTimeout(t);
  }
}

/** True when the error frame `f` echoes request `r` (same cat/act and callback). */
export function answers(f: Frame, r: Frame): boolean {
  const req = f.request as Frame | null | undefined;
  if (!req || typeof req !== 'object') return false;
  return req.act === r.act && req.cat === r.cat && req.callback === r.callback;
}

export const isError = (code?: number): Predicate => (f) => f.type === 'error' && (code === undefined || f.code === code);
export const isNotice = (cat: string, act: string): Predicate => (f) => f.type === 'notice' && f.method?.cat === cat && f.method?.act === act;
export const isMessage = (pred: Predicate = () => true): Predicate => (f) => f.type === 'message' && pred(f);
export const withCallback = (callback: string): Predicate => (f) => f.method?.callback === callback || f.request?.callback === callback;

export function sleep(ms: number): Promise<void> { return new Promise((r) => setTimeout(r, ms)); }

/** Resolves once `cond()` holds (checked every 20 ms); rejects naming `what` after `timeoutMs`. */
export async function until(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function short(x: unknown): string {
  const s = JSON.stringify(x);
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}

function describe(frames: Frame[]): string {
  return frames.length === 0 ? '(none)' : frames.slice(-10).map(short).join(' | ');
}

/** The clients a test file opened, so that one afterEach closes them all. */
export class ClientPool {
  private readonly open: Client[] = [];

  async connect(url: string, name?: string): Promise<Client> {
    const c = await Client.connect(url, name === undefined ? {} : { name });
    this.open.push(c);
    return c;
  }

  /** Connects and signs in `account` (without a signature: the server runs --auth open). */
  async signedIn(url: string, account: Account | string, name?: string): Promise<Client> {
    const c = await this.connect(url, name);
    await c.signIn(account);
    return c;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.open.splice(0).map((c) => c.close()));
  }
}
