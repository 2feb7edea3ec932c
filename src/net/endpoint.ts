/**
 * The WebSocket endpoint: accepts sockets (wss when a certificate is configured), sends each the
 * spam handshake, hands frames to its connection actor, and drops dead sockets by heartbeat.
 */
import { createServer as createHttp, type Server } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { initFrame } from '../protocol/frames';
import { logger } from '../log';
import { Connection, newSpam, type Router } from '../actors/connection';

export interface EndpointOptions {
  host: string;
  port: number;
  maxFrame: number;
  heartbeatMs: number;
  tlsCert?: string;
  tlsKey?: string;
}

export interface EndpointHooks {
  opened(c: Connection): void;
  closed(c: Connection): void;
}

export class Endpoint {
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private heartbeat: NodeJS.Timeout | undefined;
  private nextId = 1;
  private readonly connections = new Set<Connection>();
  private readonly log = logger({ part: 'endpoint' });

  constructor(private readonly opts: EndpointOptions, private readonly router: Router, private readonly hooks: EndpointHooks) {
    this.server = opts.tlsCert && opts.tlsKey
      ? createHttps({ cert: readFileSync(opts.tlsCert), key: readFileSync(opts.tlsKey) })
      : createHttp();
    this.server.on('request', (_req, res) => { res.writeHead(426, { 'content-type': 'text/plain' }).end('WebSocket only\n'); });
    // Frames above our limit still get an error frame; only far larger ones (a hostile client)
    // are cut by ws itself, which closes with 1009 before buffering them.
    this.wss = new WebSocketServer({
      server: this.server,
      maxPayload: Math.max(opts.maxFrame * 4, 256 * 1024),
      perMessageDeflate: false,
      clientTracking: false,
    });
    this.wss.on('connection', (socket) => this.accept(socket));
    // ws re-emits the HTTP server's errors (a port in use); listen() reports them, so none is unhandled.
    this.wss.on('error', (err) => this.log.debug({ err }, 'endpoint error'));
  }

  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off('error', reject);
        this.heartbeat = setInterval(() => this.beat(), this.opts.heartbeatMs);
        this.heartbeat.unref();
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  private accept(socket: WebSocket): void {
    const id = this.nextId++;
    const c = new Connection(id, socket, newSpam(), this.router, this.log.child({ conn: id }));
    this.connections.add(c);
    this.hooks.opened(c);
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
