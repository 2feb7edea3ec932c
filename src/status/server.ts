/**
 * The status server: a small node:http server for operators and monitoring, bound to loopback by
 * default and never meant to face the Internet (put it behind nothing; scrape it locally).
 *
 *   GET  /status    JSON snapshot of every figure (src/status/snapshot.ts)
 *   GET  /healthz   200 {"ok":true} while the process serves
 *   GET  /readyz    200 when restore finished, every worker is up and the store takes writes, else 503
 *   GET  /metrics   the same figures as Prometheus text
 *   POST /backup[?dest=/abs/dir] online backup of the data dir into a new directory (default: a new
 *                                directory under --backup-dir; older backups there beyond --backups-keep go)
 *
 * With a token every route but the probes (`/healthz`, `/readyz`: load balancers and orchestrators call
 * them without credentials, and they tell nothing but "up" and "ready") needs
 * `Authorization: Bearer <token>` (401 otherwise). main.ts always gives one unless `--status-token none`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isAbsolute } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { logger } from '../log';
import { BackupRefused } from '../store/backup';
import { isSS58 } from '../protocol/ss58';
import { collectProcessMetrics, instruments } from './instruments';
import { METRICS_CONTENT_TYPE, renderMetrics } from './metrics';
import { RateMeter } from './rates';
import { readiness, takeSnapshot, type LiveFigures } from './snapshot';
import type { StatusSource } from './source';

export interface StatusServerOptions {
  /** Address to bind (default 127.0.0.1). */
  host?: string;
  /** Port to bind; 0 picks a free one (the caller decides whether 0 means "off"). */
  port: number;
  /** Bearer token every request must carry; none: no authentication. */
  token?: string;
  /** Longest wait for a shard's figures before reporting it unresponsive (default 1000 ms). */
  statsTimeoutMs?: number;
  /** Span of the per-second rates (default 10 s). */
  rateWindowMs?: number;
  /** Sampling interval of the rates (default 1 s). */
  sampleMs?: number;
}

export interface StatusServer {
  port: number;
  close(): Promise<void>;
}

const ROUTES: Record<string, string[]> = {
  '/status': ['GET', 'HEAD'],
  '/healthz': ['GET', 'HEAD'],
  '/readyz': ['GET', 'HEAD'],
  '/metrics': ['GET', 'HEAD'],
  '/backup': ['POST'],
  '/revoke': ['POST'],
};

/** Probes answered without the token: they reveal no figure beyond up/ready. */
const OPEN_ROUTES = new Set(['/healthz', '/readyz']);

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Constant-time check of `Authorization: Bearer <token>` (both sides hashed to equal length first). */
function authorized(req: IncomingMessage, expected: Buffer | undefined): boolean {
  if (!expected) return true;
  const h = req.headers.authorization;
  if (typeof h !== 'string') return false;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(h);
  if (!m) return false;
  return timingSafeEqual(digest(m[1]!), expected);
}

function send(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(code, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

export async function startStatusServer(source: StatusSource, opts: StatusServerOptions): Promise<StatusServer> {
  const log = logger({ part: 'status' });
  const host = opts.host ?? '127.0.0.1';
  const statsTimeoutMs = opts.statsTimeoutMs ?? 1000;
  const expected = opts.token !== undefined && opts.token !== '' ? digest(opts.token) : undefined;
  const meterOpts = { windowMs: opts.rateWindowMs ?? 10_000, intervalMs: opts.sampleMs ?? 1000 };
  const inMeter = new RateMeter(() => source.counters.framesIn, meterOpts).start();
  const outMeter = new RateMeter(() => source.counters.framesOut, meterOpts).start();
  collectProcessMetrics();

  // Event loop delay: figures of the last complete window, then a fresh histogram for the next.
  const eld = monitorEventLoopDelay({ resolution: 10 });
  eld.enable();
  let lastDelay: { p50: number; p99: number; max: number } | null = null;
  const eldTimer = setInterval(() => {
    if (eld.count > 0) lastDelay = { p50: eld.percentile(50) / 1e6, p99: eld.percentile(99) / 1e6, max: eld.max / 1e6 };
    eld.reset();
  }, meterOpts.windowMs);
  eldTimer.unref();

  const live: LiveFigures = {
    inPerSecond: () => round(inMeter.rate()),
    outPerSecond: () => round(outMeter.rate()),
    windowSeconds: meterOpts.windowMs / 1000,
    eventLoopDelayMs: () => lastDelay,
  };

  let backupRunning = false;

  const backup = async (res: ServerResponse, url: URL): Promise<void> => {
    const given = url.searchParams.get('dest');
    // No dest: a new directory under the backup root, where older backups beyond the kept number go.
    if (given !== null && !isAbsolute(given)) return send(res, 400, { error: 'give dest=<absolute path of a new or empty directory>, or no dest for one under the backup root' });
    const dest = given ?? undefined;
    if (backupRunning) return send(res, 409, { error: 'a backup is already running' });
    backupRunning = true;
    const t0 = Date.now();
    try {
      const r = await source.backup(dest);
      const ms = Date.now() - t0;
      log.info({ dest: r.dest ?? dest, files: r.files, bytes: r.bytes, pruned: r.pruned, ms }, 'online backup written');
      send(res, 200, { ok: true, dest: r.dest ?? dest, files: r.files, bytes: r.bytes, pruned: r.pruned ?? [], ms });
    } catch (err) {
      // The operator's mistake (a destination to change) is answered plainly; anything else is ours.
      if (err instanceof BackupRefused) {
        log.warn({ dest, reason: err.reason }, err.message);
        return send(res, err.reason === 'not-empty' ? 409 : 400, { ok: false, error: err.message });
      }
      log.error({ err, dest }, 'online backup failed');
      send(res, 500, { ok: false, error: (err as Error).message });
    } finally {
      backupRunning = false;
    }
  };

  /** An operator ends every resume token of an account (a lost device, a leaked token); durable before 200. */
  const revoke = async (res: ServerResponse, url: URL): Promise<void> => {
    const account = url.searchParams.get('account');
    if (account === null || !isSS58(account)) return send(res, 400, { error: 'give account=<SS58 address>' });
    if (!source.revokeAccount) return send(res, 503, { error: 'resume tokens are not running' });
    await source.revokeAccount(account);
    log.info({ account }, 'resume tokens of an account revoked by the operator');
    send(res, 200, { ok: true, account });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://status.invalid');
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
    if (!OPEN_ROUTES.has(path) && !authorized(req, expected)) {
      return send(res, 401, { error: 'unauthorized' }, { 'www-authenticate': 'Bearer realm="imgc-status"' });
    }
    const allowed = ROUTES[path];
    if (!allowed) return send(res, 404, { error: 'not found', routes: Object.keys(ROUTES) });
    const method = req.method ?? 'GET';
    if (!allowed.includes(method)) return send(res, 405, { error: `method ${method} not allowed`, allow: allowed }, { allow: allowed.join(', ') });
    switch (path) {
      case '/healthz':
        return send(res, 200, { ok: true });
      case '/readyz': {
        const r = readiness(source);
        return send(res, r.ready ? 200 : 503, r);
      }
      case '/status': {
        const snap = await takeSnapshot(source, live, statsTimeoutMs);
        // Backups are the status server's own work: one at a time, and how many are kept.
        const backups = { running: backupRunning, ...(source.backupsState?.() ?? {}) };
        return send(res, 200, { ...snap, backups });
      }
      case '/metrics': {
        const text = await renderMetrics(await takeSnapshot(source, live, statsTimeoutMs), [instruments]);
        res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'content-length': String(Buffer.byteLength(text)), 'cache-control': 'no-store' });
        res.end(method === 'HEAD' ? undefined : text);
        return;
      }
      case '/backup':
        return backup(res, url);
      case '/revoke':
        return revoke(res, url);
    }
  };

  const server = createServer((req, res) => {
    // A request body is never needed: drain it so keep-alive works.
    req.resume();
    handle(req, res).catch((err: unknown) => {
      log.error({ err, url: req.url }, 'status request failed');
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  server.keepAliveTimeout = 5_000;

  const stopTimers = (): void => {
    inMeter.stop();
    outMeter.stop();
    clearInterval(eldTimer);
    eld.disable();
  };

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, host, () => { server.off('error', reject); resolve(); });
    });
  } catch (err) {
    stopTimers();
    throw err;
  }
  server.on('error', (err) => log.error({ err }, 'status server error'));
  const port = (server.address() as AddressInfo).port;
  log.info({ host, port, auth: expected !== undefined }, 'status server listening');
  if (expected === undefined && !/^(127\.|::1$|localhost$)/.test(host)) {
    log.warn({ host }, 'status server reachable beyond loopback without a token (--status-token none)');
  }

  let closed: Promise<void> | undefined;
  return {
    port,
    close(): Promise<void> {
      closed ??= new Promise<void>((resolve) => {
        stopTimers();
        server.close(() => resolve());
        server.closeIdleConnections();
        // Requests still running (a backup, a stuck stats wait) get cut rather than hold up shutdown.
        setTimeout(() => server.closeAllConnections(), 1000).unref();
      });
      return closed;
    },
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
