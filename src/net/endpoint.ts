/**
 * The WebSocket endpoint: accepts sockets (wss when a certificate is configured), sends each the
 * spam handshake, hands frames to its connection actor, and drops dead sockets by heartbeat.
 */
import { randomBytes } from 'node:crypto';
import { createServer as createHttp, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { readFile, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { initFrame } from '../protocol/frames';
import { logger } from '../log';
import type { Logger } from '../log';

/** After a connection was dropped or accept failed for lack of descriptors, upgrades are answered 503 for this long. */
export const ACCEPT_BACKOFF_MS = 1000;

/**
 * What the endpoint needs of the session that owns a socket (the connection actor,
 * src/actors/connection.ts): the endpoint only accepts, feeds frames in and checks liveness.
 */
export interface SocketSession {
  readonly id: number;
  readonly spam: string;
  readonly log: Logger;
  /** Cleared at each heartbeat, set by the socket's pong. */
  alive: boolean;
  receive(data: Buffer, isBinary: boolean): void;
  refuse(code: number, text: string, request: null): void;
  send(frame: string): unknown;
  ping(): void;
  terminate(): void;
  close(code: number, reason: string): void;
}

/** The connection limits the endpoint enforces, counted where the rest of the limits are (supervisor/limits.ts). */
export interface ConnectionLimits {
  hit(name: 'maxConnections' | 'maxConnectionsPerIp' | 'descriptors', msg: string, detail?: Record<string, unknown>): void;
  /** WebSocket connections the open-file limit leaves room for; set here once listening. */
  descriptorCap: number;
}

/** A fresh spam token for a new socket: 24 random bytes in base64url, unguessable (the first service used 12 letters). */
export function newSpam(): string {
  return randomBytes(24).toString('base64url');
}

export interface EndpointOptions {
  host: string;
  port: number;
  maxFrame: number;
  heartbeatMs: number;
  tlsCert?: string;
  tlsKey?: string;
  /** Open WebSocket connections in total, and per remote address; past either the upgrade is answered 503. */
  maxConnections: number;
  maxConnectionsPerIp: number;
  /** The first connection id (cluster mode: each node's ids lie in its own range, see cluster/links.ts). */
  firstConnId?: number;
}

export interface EndpointHooks<S extends SocketSession> {
  /** A socket was accepted: its session (the connection actor), made and registered by the node. */
  open(id: number, socket: WebSocket, spam: string, log: Logger): S;
  closed(c: S): void;
  /** Where refusals and accept failures are counted and logged (aggregated). */
  limits: ConnectionLimits;
}

/** The demo page's files (dist/web, next to dist/src): path → [file, content type]. */
const WEB_DIR = resolve(__dirname, '..', '..', 'web');
const WEB_FILES: Record<string, [string, string]> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/app.js.map': ['app.js.map', 'application/json'],
};

/** Connections past the cap that have not upgraded (yet) are still bounded: net.Server drops those past this margin. */
const RAW_MARGIN = 1024;

/**
 * The soft open-file limit (RLIMIT_NOFILE) as Linux reports it in /proc/self/limits; undefined
 * elsewhere or when unlimited.
 */
export function openFileLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    return soft !== undefined && /^\d+$/.test(soft) ? Number(soft) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Descriptors kept, past the socket cap, to answer the connections that come anyway: each is
 * accepted, its upgrade answered HTTP 503 with Retry-After and closed, so a client hears "try
 * again later" instead of a TCP reset. Only a burst of more than this many at once meets the hard
 * floor (net.Server's maxConnections: closed at accept, a reset).
 */
export function answerMargin(limit: number): number {
  return Math.max(16, Math.ceil(limit * 0.05));
}

/** Descriptors open now (Linux: entries of /proc/self/fd); undefined elsewhere. */
function openDescriptors(): number | undefined {
  try { return readdirSync('/proc/self/fd').length; } catch { return undefined; }
}

/**
 * Descriptors kept free for the rest of the service however many sockets come: restarting a worker
 * thread (it opens its module files), the signature workers, the status server, a backup.
 */
export function descriptorReserve(limit: number): number {
  return Math.max(64, Math.ceil(limit * 0.05));
}

/** The remote address of the TCP connection (behind a reverse proxy: the proxy's). */
function remoteOf(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}

export class Endpoint<S extends SocketSession = SocketSession> {
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private heartbeat: NodeJS.Timeout | undefined;
  private nextId = 1;
  private readonly connections = new Set<S>();
  /** Open WebSocket connections per remote address (the socket's; behind a proxy, the proxy's). */
  private readonly perIp = new Map<string, number>();
  /** Until then (ms since the epoch) upgrades are refused: accept failed for lack of descriptors. */
  private backoffUntil = 0;
  /** WebSockets the open-file limit leaves room for (answerMargin kept back to answer 503); set at listen. */
  private socketCap = Infinity;
  private readonly log = logger({ part: 'endpoint' });

  constructor(private readonly opts: EndpointOptions, private readonly hooks: EndpointHooks<S>) {
    this.nextId = opts.firstConnId ?? 1;
    this.server = opts.tlsCert && opts.tlsKey
      ? createHttps({ cert: readFileSync(opts.tlsCert), key: readFileSync(opts.tlsKey) })
      : createHttp();
    // Plain HTTP: the demo page (GET /, built into dist/web by `npm run build`); anything else 426.
    this.server.on('request', (req, res) => {
      const page = req.method === 'GET' ? WEB_FILES[(req.url ?? '').split('?')[0]!] : undefined;
      if (page === undefined) { res.writeHead(426, { 'content-type': 'text/plain' }).end('WebSocket only\n'); return; }
      readFile(join(WEB_DIR, page[0]), (err, body) => {
        if (err) res.writeHead(404, { 'content-type': 'text/plain' }).end('demo page not built (npm run build)\n');
        else res.writeHead(200, { 'content-type': page[1], 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' }).end(body);
      });
    });
    // Frames above our limit still get an error frame; only far larger ones (a hostile client)
    // are cut by ws itself, which closes with 1009 before buffering them.
    this.wss = new WebSocketServer({
      server: this.server,
      maxPayload: Math.max(opts.maxFrame * 4, 256 * 1024),
      perMessageDeflate: false,
      clientTracking: false,
      // Checked before the upgrade: past a cap the client gets HTTP 503 with Retry-After, not a WebSocket.
      verifyClient: (info: { req: IncomingMessage }, done: (ok: boolean, code?: number, message?: string, headers?: Record<string, string>) => void) => {
        const refusal = this.admit(remoteOf(info.req));
        if (refusal === undefined) done(true);
        else done(false, 503, refusal, { 'Retry-After': '1' });
      },
    });
    // Raw TCP connections that never upgrade are bounded too (net.Server closes those past this);
    // listen() lowers it to what the open-file limit leaves room for.
    this.server.maxConnections = opts.maxConnections + RAW_MARGIN;
    // Past it a connection is closed right after accept (Node cannot pause accepting), which the
    // client sees as a reset: the hard floor, past the margin kept to answer 503. Counted, logged aggregated.
    this.server.on('drop', () => {
      this.hooks.limits.hit('descriptors', 'connection dropped at accept: the open-file limit\'s answering margin (or max-connections plus margin) reached', { connections: this.connections.size, maxConnections: this.server.maxConnections });
    });
    // accept() failing for lack of descriptors (EMFILE, ENFILE; rare: libuv sheds pending connections
    // itself with a reserve descriptor) is not fatal either: counted, logged aggregated, backed off.
    this.server.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EMFILE' || err.code === 'ENFILE') this.outOfDescriptors('accept failed: out of file descriptors; backing off', { code: err.code });
    });
    this.wss.on('connection', (socket, req) => this.accept(socket, remoteOf(req)));
    // ws re-emits the HTTP server's errors (a port in use); listen() reports them, so none is unhandled.
    this.wss.on('error', (err) => this.log.debug({ err }, 'endpoint error'));
  }

  private outOfDescriptors(msg: string, detail: Record<string, unknown>): void {
    this.backoffUntil = Date.now() + ACCEPT_BACKOFF_MS;
    this.hooks.limits.hit('descriptors', msg, { ...detail, connections: this.connections.size, maxConnections: this.server.maxConnections, backoffMs: ACCEPT_BACKOFF_MS });
  }

  /**
   * Sizes the connection caps to the open-file limit: what is open now (store, threads, logs) plus a
   * reserve stays free, so no socket flood leaves the rest of the service without descriptors. Of
   * what is left, WebSockets take all but an answering margin: past the socket cap an upgrade is
   * answered 503 (admit), and only TCP connections past the whole room are closed at accept.
   */
  private fitDescriptors(): void {
    const limit = openFileLimit();
    const open = openDescriptors();
    if (limit === undefined || open === undefined) return;
    const room = Math.max(2, limit - open - descriptorReserve(limit));
    const cap = Math.max(1, room - answerMargin(limit));
    this.socketCap = cap;
    this.hooks.limits.descriptorCap = cap;
    if (room < (this.server.maxConnections ?? Infinity)) this.server.maxConnections = room;
    if (cap < this.opts.maxConnections) {
      this.log.warn({ openFileLimit: limit, open, reserve: descriptorReserve(limit), answerMargin: answerMargin(limit), cap, maxConnections: this.opts.maxConnections }, 'the open-file limit allows fewer connections than max-connections: upgrades past the cap are answered 503 (raise LimitNOFILE / ulimit -n)');
    }
  }

  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off('error', reject);
        this.fitDescriptors();
        this.heartbeat = setInterval(() => this.beat(), this.opts.heartbeatMs);
        this.heartbeat.unref();
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Undefined when a connection from `ip` may open; else why not (the 503's text). */
  private admit(ip: string): string | undefined {
    const limits = this.hooks.limits;
    if (Date.now() < this.backoffUntil) return 'Server out of file descriptors, try again later';
    if (this.connections.size >= this.opts.maxConnections) {
      limits.hit('maxConnections', 'connection refused: max-connections reached', { max: this.opts.maxConnections });
      return 'Too many connections, try again later';
    }
    if (this.connections.size >= this.socketCap) {
      limits.hit('descriptors', 'connection refused: the open-file limit leaves no room for another socket (raise LimitNOFILE / ulimit -n)', { cap: this.socketCap });
      return 'Server out of file descriptors, try again later';
    }
    if ((this.perIp.get(ip) ?? 0) >= this.opts.maxConnectionsPerIp) {
      limits.hit('maxConnectionsPerIp', 'connection refused: max-connections-per-ip reached', { ip, max: this.opts.maxConnectionsPerIp });
      return 'Too many connections from this address, try again later';
    }
    return undefined;
  }

  private accept(socket: WebSocket, ip: string): void {
    const id = this.nextId++;
    this.perIp.set(ip, (this.perIp.get(ip) ?? 0) + 1);
    const c = this.hooks.open(id, socket, newSpam(), this.log.child({ conn: id }));
    this.connections.add(c);
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      try {
        c.receive(data, isBinary);
      } catch (err) {
        // A bug on one frame must not take the others down; the client hears of it.
        c.log.error({ err }, 'frame handling failed');
        c.refuse(41401, 'internal error', null);
      }
    });
    socket.on('pong', () => { c.alive = true; });
    socket.on('error', (err) => c.log.debug({ err }, 'socket error'));
    socket.on('close', () => {
      const n = (this.perIp.get(ip) ?? 1) - 1;
      if (n > 0) this.perIp.set(ip, n); else this.perIp.delete(ip);
      this.connections.delete(c);
      this.hooks.closed(c);
    });
    c.send(initFrame(c.spam));
  }

  /** Every interval: a socket that did not answer the last ping is dead. */
  private beat(): void {
    for (const c of this.connections) {
      if (!c.alive) { c.terminate(); continue; }
      c.alive = false;
      c.ping();
    }
  }

  /** Stops accepting; tells every client the server is going away (1001). */
  async close(code = 1001, reason = 'server going away'): Promise<void> {
    clearInterval(this.heartbeat);
    for (const c of this.connections) c.close(code, reason);
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  get size(): number { return this.connections.size; }
}
