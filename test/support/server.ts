/**
 * Runs the real service as a child process for end-to-end tests: `node dist/src/main.js` on a free
 * loopback port with a fresh temporary data directory. `startServer` resolves once a WebSocket
 * connect receives the init frame; `stop` (SIGTERM) and `kill` (any signal) wait for the exit.
 *
 *   const srv = await startServer(['--workers', '2']);
 *   ... new WebSocket(srv.url) ...
 *   await srv.stop();
 *
 * Defaults (added only when the flag is absent from `args`): --port <free> --host 127.0.0.1
 * --auth open --workers 2 --data <fresh temp dir> --status-port 0 (the status server is off unless
 * `opts.status` asks for it on a free port, or `args` give --status-port; then `statusUrl` is set). `opts.omit` drops defaults (e.g. `['port']`
 * when a config file or the environment gives it; then pass `opts.port` so readiness knows where
 * to look). Restarting on the same data: `startServer(args, { dataDir: old.dataDir })` after
 * `old.stop({ keepData: true })` or `old.kill('SIGKILL')` (kill never removes data).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import WebSocket from 'ws';

/** The compiled entry point (this file runs from dist/test/support). */
export const MAIN = resolve(__dirname, '..', '..', 'src', 'main.js');

export interface StartOptions {
  /** Extra environment (merged over process.env; IMGC_LOG_LEVEL defaults to warn). */
  env?: Record<string, string | undefined>;
  /** Use this data directory instead of a fresh one (it is then never removed by `stop`). */
  dataDir?: string;
  /** Default flags not to add: any of 'port', 'host', 'auth', 'workers', 'data', 'status-port'. */
  omit?: string[];
  /** Port to wait on when `--port` is neither in `args` nor added (config file, environment). */
  port?: number;
  /** The server serves wss (--tls-cert/--tls-key given): the url is wss://. */
  tls?: boolean;
  /** How long to wait for the first init frame (default 15 s). */
  readyTimeoutMs?: number;
  /** Run the HTTP status server on a free loopback port (see `statusUrl`, `getStatus`). */
  status?: boolean;
}

export interface Exit { code: number | null; signal: NodeJS.Signals | null }

export interface ServerHandle {
  port: number;
  /** ws://127.0.0.1:<port> */
  url: string;
  dataDir: string;
  /** http://127.0.0.1:<status port> when the status server runs, else undefined. */
  statusUrl: string | undefined;
  proc: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far (bounded to the last 1 MiB). */
  output(): string;
  /** Resolves when the process has exited. */
  exited: Promise<Exit>;
  /** SIGTERM, wait for exit (SIGKILL after `graceMs`, default 10 s); removes a data dir it created unless keepData. */
  stop(opts?: { keepData?: boolean; graceMs?: number }): Promise<Exit>;
  /** Sends `signal` and waits for the exit; keeps the data directory. */
  kill(signal?: NodeJS.Signals): Promise<Exit>;
  /** Removes the data directory if this handle created it. */
  removeData(): void;
}

/** A loopback port that was free a moment ago (bound to 0, then released). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

/** A fresh empty directory under the system temp dir. */
export function tempDir(prefix = 'imgc-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

function hasFlag(args: string[], flag: string): boolean {
  return args.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`));
}

function flagValue(args: string[], flag: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === `--${flag}`) return args[i + 1];
    if (a.startsWith(`--${flag}=`)) return a.slice(flag.length + 3);
  }
  return undefined;
}

function envWith(extra: Record<string, string | undefined> | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, IMGC_LOG_LEVEL: 'warn' };
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (v === undefined) delete env[k]; else env[k] = v;
  }
  return env;
}

/** Resolves with the init frame's text once a connect to `url` receives it; rejects on `deadline`. */
async function waitForInit(url: string, deadline: number, exited: () => boolean): Promise<void> {
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (exited()) throw new Error('server exited before it was ready');
    try {
      await new Promise<void>((res, rej) => {
        // A test certificate is self-signed: the check here is that wss answers, not who signed it.
        const ws = new WebSocket(url, { rejectUnauthorized: false });
        const t = setTimeout(() => { ws.terminate(); rej(new Error('no init frame within 2 s')); }, 2000);
        ws.once('message', (data) => {
          clearTimeout(t);
          ws.terminate();
          try {
            const f = JSON.parse(String(data)) as { act?: unknown };
            if (f.act === 'init') res(); else rej(new Error(`first frame is not init: ${String(data)}`));
          } catch (e) { rej(e); }
        });
        ws.once('error', (e) => { clearTimeout(t); rej(e); });
      });
      return;
    } catch (err) {
      lastError = err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`server not ready: ${String(lastError)}`);
}

/** Spawns the service and waits until it serves the WebSocket handshake. */
export async function startServer(args: string[] = [], opts: StartOptions = {}): Promise<ServerHandle> {
  const omit = new Set(opts.omit ?? []);
  const portChosen = !hasFlag(args, 'port') && !omit.has('port');
  const statusChosen = !hasFlag(args, 'status-port') && opts.status === true;
  for (let attempt = 0; ; attempt++) {
    try {
      return await startOnce(args, opts, omit, portChosen);
    } catch (err) {
      // A port we picked (the service's or its status port) may have been taken in between by another
      // test's process: try others. The service says so in one line ("… is already in use").
      if ((portChosen || statusChosen) && attempt < 4 && /EADDRINUSE|is already in use/.test(String((err as Error).message))) continue;
      throw err;
    }
  }
}

async function startOnce(args: string[], opts: StartOptions, omit: Set<string>, portChosen: boolean): Promise<ServerHandle> {
  const full = [...args];
  let port: number;
  if (portChosen) {
    port = await freePort();
    full.push('--port', String(port));
  } else {
    const given = flagValue(args, 'port');
    port = opts.port ?? Number(given);
    if (!Number.isInteger(port) || port <= 0) throw new Error('startServer: give opts.port when --port is not a valid flag');
  }
  if (!hasFlag(args, 'host') && !omit.has('host')) full.push('--host', '127.0.0.1');
  if (!hasFlag(args, 'auth') && !omit.has('auth')) full.push('--auth', 'open');
  if (!hasFlag(args, 'workers') && !omit.has('workers')) full.push('--workers', '2');
  let statusPort: number | undefined;
  if (hasFlag(args, 'status-port')) statusPort = Number(flagValue(args, 'status-port')) || undefined;
  else if (opts.status) { statusPort = await freePort(); full.push('--status-port', String(statusPort)); }
  else if (!omit.has('status-port')) full.push('--status-port', '0');
  const ownData = opts.dataDir === undefined && !hasFlag(args, 'data');
  const dataDir = opts.dataDir ?? flagValue(args, 'data') ?? tempDir();
  if (!hasFlag(args, 'data') && !omit.has('data')) full.push('--data', dataDir);

  const proc = spawn(process.execPath, [MAIN, ...full], { env: envWith(opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer) => { out += d.toString(); if (out.length > 1 << 20) out = out.slice(-(1 << 20)); };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  let hasExited = false;
  const exited = new Promise<Exit>((res) => proc.once('exit', (code, signal) => { hasExited = true; res({ code, signal }); }));

  const removeData = () => { if (ownData) rmSync(dataDir, { recursive: true, force: true }); };
  const waitExit = async (graceMs: number): Promise<Exit> => {
    if (hasExited) return exited;
    const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    const e = await exited;
    clearTimeout(t);
    return e;
  };

  const handle: ServerHandle = {
    port,
    url: `${opts.tls ? 'wss' : 'ws'}://127.0.0.1:${port}`,
    dataDir,
    statusUrl: statusPort === undefined ? undefined : `http://127.0.0.1:${statusPort}`,
    proc,
    output: () => out,
    exited,
    async stop(o = {}) {
      if (!hasExited) proc.kill('SIGTERM');
      const e = await waitExit(o.graceMs ?? 10_000);
      if (!o.keepData) removeData();
      return e;
    },
    async kill(signal = 'SIGKILL') {
      if (!hasExited) proc.kill(signal);
      return waitExit(10_000);
    },
    removeData,
  };

  try {
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
    await waitForInit(handle.url, deadline, () => hasExited);
    // The status server starts after the endpoint: wait for it too when asked for.
    if (handle.statusUrl) await waitForHttp(`${handle.statusUrl}/healthz`, deadline, () => hasExited);
  } catch (err) {
    const how = hasExited ? ` (${JSON.stringify(await exited)})` : '';
    await handle.stop();
    throw new Error(`${(err as Error).message}${how}\n--- server output ---\n${out}`);
  }
  return handle;
}

async function waitForHttp(url: string, deadline: number, exited: () => boolean): Promise<void> {
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (exited()) throw new Error('server exited before its status server was ready');
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      return;
    } catch (err) {
      lastError = err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`status server not ready: ${String(lastError)}`);
}

/**
 * The status server's bearer token: the one the server generated into `<data>/status-token` at its
 * first start (the default), or IMGC_STATUS_TOKEN / --status-token when the test gave one; undefined
 * with `--status-token none`.
 */
export function statusToken(server: { dataDir: string }, given?: string): string | undefined {
  if (given !== undefined) return given === 'none' ? undefined : given;
  const file = join(server.dataDir, 'status-token');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

/** fetch `<statusUrl><path>` with the server's bearer token (see `statusToken`). */
export async function statusFetch(server: ServerHandle, path: string, init: RequestInit = {}, token?: string): Promise<Response> {
  if (!server.statusUrl) throw new Error('statusFetch: start the server with { status: true }');
  const t = statusToken(server, token);
  const headers = new Headers(init.headers);
  if (t !== undefined && !headers.has('authorization')) headers.set('authorization', `Bearer ${t}`);
  return fetch(`${server.statusUrl}${path}`, { signal: AbortSignal.timeout(10_000), ...init, headers });
}

/** GET `<statusUrl><path>` (default /status) as JSON with the server's token; throws on a non-2xx answer. */
export async function getStatus<T = Record<string, unknown>>(server: ServerHandle, path = '/status', token?: string): Promise<T> {
  if (!server.statusUrl) throw new Error('getStatus: start the server with { status: true }');
  const res = await statusFetch(server, path, {}, token);
  const body = await res.text();
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${body}`);
  return JSON.parse(body) as T;
}

export interface RunResult extends Exit { output: string }

/** Runs the service with `args` and waits for it to exit by itself (config errors); SIGKILL after `timeoutMs`. */
export function runToExit(args: string[], opts: { env?: Record<string, string | undefined>; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((res) => {
    const proc = spawn(process.execPath, [MAIN, ...args], { env: envWith(opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    proc.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const t = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    proc.once('exit', (code, signal) => { clearTimeout(t); res({ code, signal, output: out }); });
  });
}
