/**
 * Benchmark clients: one WebSocket each, the W3OS handshake (init → active → Welcome),
 * then every frame goes to a handler the scenario sets. Frames are looked at as Buffers
 * with indexOf, never fully parsed on the hot path, so the load generator stays cheap.
 */
import WebSocket from 'ws';
import { now, sleep } from './common';

/** Benchmark payload marker: every bench message's `msg` is `{"b":[sentMs,stream,n]}`. */
export const MARK = '"b":[';

export interface Signer {
  /** Hex signature of the spam string's UTF-8 bytes. */
  sign(spam: string): string;
}

/** Counters shared by all clients of one process. */
export const counters = {
  errorFrames: 0,
  closedUnexpected: 0,
  connectFailed: 0,
  /** 45003 answers to `active` (the sign-in queue is full), each retried on the same socket after the hint. */
  retryAfter: 0,
  /** Resume tokens refused (44004) where `sig` was shown next. */
  resumeRefused: 0,
  errorSamples: [] as string[],
};

/** Zeroes the counters before a measurement. */
export function resetCounters(): void {
  counters.errorFrames = 0;
  counters.closedUnexpected = 0;
  counters.connectFailed = 0;
  counters.retryAfter = 0;
  counters.resumeRefused = 0;
  counters.errorSamples.length = 0;
}

function noteError(text: string): void {
  counters.errorFrames++;
  if (counters.errorSamples.length < 5) counters.errorSamples.push(text.slice(0, 300));
}

export type FrameHandler = (c: BenchClient, data: Buffer) => void;

export class BenchClient {
  spam = '';
  active = false;
  closing = false;
  handler: FrameHandler | undefined;
  /** Time the `active` request was sent and the Welcome received (ms, now()). */
  tConnect = now();
  tActive = 0;
  tWelcome = 0;
  /** The resume token of the last Welcome that carried one. */
  token: string | undefined;
  /** Free slots for the scenario. */
  idx = 0;
  inflight = 0;
  lastProgress = 0;
  got = 0;

  constructor(readonly ws: WebSocket, readonly acc: string) {}

  send(frame: object): void {
    this.ws.send(JSON.stringify({ ...frame, spam: this.spam }));
  }

  /** Sends a pre-built frame body: `body` is a JSON object text without the closing brace. */
  sendRaw(bodyWithoutClose: string): void {
    this.ws.send(`${bodyWithoutClose},"spam":${JSON.stringify(this.spam)}}`);
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  close(): void {
    this.closing = true;
    try {
      this.ws.terminate();
    } catch {
      // already gone
    }
  }
}

/**
 * Connects and signs in one account. Resolves on Welcome; frames after the Welcome
 * (stored messages included) go to `handler`. Rejects on error frame, close or timeout.
 * `localAddress` binds the client's end (e.g. 127.0.0.5: each loopback source address has its own
 * ephemeral ports, so one machine can open more than ~28,000 connections to a server).
 */
export function signIn(url: string, acc: string, handler: FrameHandler | undefined,
  signer?: Signer, timeoutMs = 15_000, resume?: string, localAddress?: string): Promise<BenchClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: timeoutMs, ...(localAddress !== undefined ? { localAddress } : {}) });
    const c = new BenchClient(ws, acc);
    c.handler = handler;
    let settled = false;
    const timer = setTimeout(() => fail(new Error('sign-in timeout')), timeoutMs);
    function fail(e: Error): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      c.close();
      reject(e);
    }
    ws.on('error', (e) => {
      if (!settled) fail(e);
    });
    ws.on('close', (code: number) => {
      if (!settled) {
        fail(new Error(`closed during sign-in (${code})`));
      } else if (!c.closing) {
        counters.closedUnexpected++;
      }
      c.active = false;
    });
    ws.on('message', (data: Buffer) => {
      if (c.active) {
        if (data.indexOf('"type":"error"') >= 0) noteError(data.toString());
        if (c.handler) c.handler(c, data);
        return;
      }
      let f: Record<string, unknown>;
      try {
        f = JSON.parse(data.toString()) as Record<string, unknown>;
      } catch {
        fail(new Error('unparsable frame during sign-in'));
        return;
      }
      if (f.act === 'init' && typeof f.spam === 'string' && c.spam === '') {
        c.spam = f.spam;
        const req: Record<string, string> = { act: 'active', acc, spam: c.spam };
        // With a token: `resume` alone; a refused token (44004) is followed by `sig` on the same socket.
        if (resume !== undefined) req.resume = resume;
        else if (signer) req.sig = signer.sign(c.spam);
        c.tActive = now();
        ws.send(JSON.stringify(req));
        return;
      }
      const method = f.method as Record<string, unknown> | undefined;
      if (f.type === 'notice' && f.msg === 'Welcome' && method?.act === 'active') {
        c.active = true;
        c.tWelcome = now();
        if (typeof f.resume === 'string') c.token = f.resume;
        settled = true;
        clearTimeout(timer);
        resolve(c);
        return;
      }
      if (f.type === 'error' && f.code === 45003 && typeof f.retryAfterMs === 'number') {
        // The bounded sign-in queue: expected under a storm; retry after the hint plus jitter.
        counters.retryAfter++;
        const wait = f.retryAfterMs * (1 + Math.random() * 0.5);
        setTimeout(() => {
          if (settled || !c.open) return;
          const req: Record<string, string> = { act: 'active', acc, spam: c.spam };
          if (signer) req.sig = signer.sign(c.spam);
          ws.send(JSON.stringify(req));
        }, wait);
        return;
      }
      if (f.type === 'error' && f.code === 44004 && resume !== undefined && signer && c.open) {
        counters.resumeRefused++;
        noteError(data.toString());
        resume = undefined;
        ws.send(JSON.stringify({ act: 'active', acc, spam: c.spam, sig: signer.sign(c.spam) }));
        return;
      }
      if (f.type === 'error') {
        noteError(data.toString());
        fail(new Error(`error frame during sign-in: ${data.toString().slice(0, 200)}`));
      }
    });
  });
}

export interface ManyResult {
  clients: BenchClient[];
  failed: number;
  firstError: string;
  ms: number;
}

/**
 * Signs in `accounts` with at most `concurrency` handshakes in flight, within `deadlineMs`.
 * Failures are counted, not retried.
 */
export async function signInMany(url: string, accounts: string[], handler: FrameHandler | undefined,
  opts: {
    concurrency: number; deadlineMs: number; signers?: Signer[]; tokens?: (string | undefined)[]; onEach?: (c: BenchClient, i: number) => void;
    /** The server of account `i` (several nodes of a cluster); default `url` for all. */
    urlOf?: (i: number) => string;
    /** Source address of every client socket (see signIn). */
    localAddress?: string;
  }): Promise<ManyResult> {
  const t0 = now();
  const clients: BenchClient[] = new Array<BenchClient>(accounts.length);
  let next = 0;
  let failed = 0;
  let firstError = '';
  const deadline = t0 + opts.deadlineMs;
  async function lane(): Promise<void> {
    while (next < accounts.length && now() < deadline) {
      const i = next++;
      try {
        const c = await signIn(opts.urlOf?.(i) ?? url, accounts[i], handler, opts.signers?.[i], Math.max(1000, Math.min(15_000, deadline - now())), opts.tokens?.[i], opts.localAddress);
        c.idx = i;
        clients[i] = c;
        opts.onEach?.(c, i);
      } catch (e) {
        failed++;
        counters.connectFailed++;
        if (!firstError) firstError = (e as Error).message;
      }
    }
  }
  const lanes: Promise<void>[] = [];
  for (let k = 0; k < Math.max(1, opts.concurrency); k++) lanes.push(lane());
  await Promise.all(lanes);
  failed += accounts.length - next; // never attempted: deadline passed
  return { clients: clients.filter((c) => c !== undefined), failed, firstError, ms: now() - t0 };
}

export async function closeAll(clients: BenchClient[]): Promise<void> {
  for (const c of clients) c.close();
  await sleep(50);
}

/** Reads `[sent, stream, n]` from a bench message frame, or undefined when it is not one. */
export function readMark(data: Buffer): [number, number, number] | undefined {
  const i = data.indexOf(MARK);
  if (i < 0) return undefined;
  const j = data.indexOf(']', i + MARK.length);
  if (j < 0) return undefined;
  const parts = data.toString('latin1', i + MARK.length, j).split(',');
  if (parts.length < 3) return undefined;
  return [Number(parts[0]), Number(parts[1]), Number(parts[2])];
}
