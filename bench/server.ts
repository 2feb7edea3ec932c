/**
 * Servers under test as child processes: the floor or the service, fresh each time,
 * ready when a WebSocket connect gets its first frame. Ports are taken below the
 * ephemeral range so they never collide with the load generator's client ports.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import WebSocket from 'ws';
import { now, sleep } from './common';

export type Kind = 'floor' | 'service';

export interface ServerSpec {
  kind: Kind;
  workers: number;
  auth: 'open' | 'signed';
  /** Extra service flags (e.g. --max-frame for a 2000-member create). */
  extra?: string[];
  /** Another build's main.js (e.g. the previous version, for same-run comparisons); default this build's. */
  main?: string;
  /** Column name for `main` (default `old`). */
  mainName?: string;
}

export interface Running {
  spec: ServerSpec;
  port: number;
  pid: number;
  url: string;
  child: ChildProcess;
  /** The service's data directory (`<root>/data`); the root itself for the floor. */
  dataDir: string;
  /** The temporary directory holding the data directory and the log, removed at stop. */
  rootDir: string;
  logPath: string;
}

const ROOT = path.resolve(__dirname, '..', '..');
export const SERVICE_MAIN = path.join(ROOT, 'dist', 'src', 'main.js');

/**
 * Flags every measured service gets unless the scenario sets them: no status server (two runs must
 * not meet on its port), connection limits and the per-address group quota above what any scenario uses from this one address
 * (the defaults, 1,000 per address and 15,000 in total, are for production behind a proxy). Another
 * build (`--old`) gets them too, so that both run the same scenario: it must know these flags (every
 * build since the connection limits does).
 */
function serviceDefaults(extra: string[]): string[] {
  const out: string[] = [];
  if (!extra.includes('--status-port')) out.push('--status-port', '0');
  if (!extra.includes('--max-connections-per-ip')) out.push('--max-connections-per-ip', '20000');
  if (!extra.includes('--max-connections')) out.push('--max-connections', '20000');
  // Every group of a scenario is created from this one address.
  if (!extra.includes('--groups-per-hour-per-address')) out.push('--groups-per-hour-per-address', '10000000');
  return out;
}
export const FLOOR_MAIN = path.join(ROOT, 'dist', 'bench', 'floor.js');

const live = new Set<ChildProcess>();
/** Temporary directories of processes still running: removed at exit when a run stops half-way. */
const dirs = new Set<string>();
let cleanupInstalled = false;

function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  const killAll = (): void => {
    for (const c of live) {
      try {
        c.kill('SIGKILL');
      } catch {
        // gone
      }
    }
    for (const d of dirs) removeDir(d);
  };
  process.on('exit', killAll);
  // SIGHUP too: a closed terminal must not leave nodes and nats-server behind.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

/** A fresh temporary directory, removed when this process exits unless `removeDir` removed it before. */
export function tempDir(prefix: string): string {
  installCleanup();
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.add(d);
  return d;
}

export function removeDir(d: string): void {
  dirs.delete(d);
  try {
    fs.rmSync(d, { recursive: true, force: true });
  } catch {
    // leave it
  }
}

/** Tracks a child so it dies with this process. */
export function track(c: ChildProcess): void {
  installCleanup();
  live.add(c);
  c.once('exit', () => live.delete(c));
}

let nextPort = 21000 + (process.pid % 50) * 100;

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A port below the ephemeral range that was free a moment ago. */
export async function pickPort(): Promise<number> {
  for (let k = 0; k < 200; k++) {
    const p = nextPort++;
    if (nextPort > 32000) nextPort = 21000;
    if (await portFree(p)) return p;
  }
  throw new Error('no free port in 21000-32000');
}

/** One probe: connect, wait for the first frame. */
function probe(url: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const t = setTimeout(() => done(false), timeoutMs);
    function done(ok: boolean): void {
      clearTimeout(t);
      try {
        ws.terminate();
      } catch {
        // gone
      }
      resolve(ok);
    }
    ws.once('message', () => done(true));
    ws.once('error', () => done(false));
    ws.once('close', () => done(false));
  });
}

export async function startServer(spec: ServerSpec, readyTimeoutMs = 30_000): Promise<Running> {
  installCleanup();
  const port = await pickPort();
  const dataDir = tempDir('imgc-bench-');
  const logPath = path.join(dataDir, 'server.log');
  const log = fs.openSync(logPath, 'w');
  let child: ChildProcess;
  if (spec.kind === 'floor') {
    child = spawn(process.execPath, [FLOOR_MAIN, '--port', String(port), '--host', '127.0.0.1'],
      { stdio: ['ignore', log, log, 'ipc'] });
  } else {
    const data = path.join(dataDir, 'data');
    fs.mkdirSync(data);
    child = spawn(process.execPath, [spec.main ?? SERVICE_MAIN, '--port', String(port), '--host', '127.0.0.1', '--auth', spec.auth,
      '--workers', String(spec.workers), '--data', data, ...serviceDefaults(spec.extra ?? []), ...(spec.extra ?? [])],
    { stdio: ['ignore', log, log], env: { ...process.env, IMGC_LOG_LEVEL: 'warn' } });
  }
  fs.closeSync(log);
  track(child);
  const url = `ws://127.0.0.1:${port}`;
  const dataSub = path.join(dataDir, 'data');
  const running: Running = { spec, port, pid: child.pid ?? -1, url, child, dataDir: fs.existsSync(dataSub) ? dataSub : dataDir, rootDir: dataDir, logPath };
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const deadline = now() + readyTimeoutMs;
  while (now() < deadline && !exited) {
    if (await probe(url, 2000)) return running;
    await sleep(100);
  }
  const tail = readTail(logPath);
  await stopServer(running);
  throw new Error(`${describe(spec)} not ready on ${url}${exited ? ' (exited)' : ''}: ${tail}`);
}

export function readTail(file: string, bytes = 800): string {
  try {
    const s = fs.readFileSync(file, 'utf8');
    return s.slice(-bytes).trim();
  } catch {
    return '';
  }
}

export async function stopServer(r: Running): Promise<void> {
  const c = r.child;
  if (c.exitCode === null && c.signalCode === null) {
    const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGTERM');
    const t = sleep(5000).then(() => {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    });
    await Promise.race([gone, t]);
    await Promise.race([gone, sleep(2000)]);
  }
  removeDir(r.rootDir);
}

/**
 * A deploy: SIGTERM, wait for the exit (the graceful stop), then the same build again on the same
 * port and data directory. Returns the new process and the times (ms) of the stop and of the start
 * until the first frame is answered. The log is appended to.
 */
export async function restartServer(r: Running, readyTimeoutMs = 60_000): Promise<{ running: Running; stopMs: number; startMs: number }> {
  const c = r.child;
  const t0 = now();
  if (c.exitCode === null && c.signalCode === null) {
    const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGTERM');
    await Promise.race([gone, sleep(30_000)]);
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await gone;
    }
  }
  const stopMs = now() - t0;
  const t1 = now();
  const spec = r.spec;
  const log = fs.openSync(r.logPath, 'a');
  fs.writeSync(log, `\n--- restart (stopped in ${stopMs.toFixed(0)} ms, exit ${String(c.exitCode ?? c.signalCode)}) ---\n`);
  let child: ChildProcess;
  if (spec.kind === 'floor') {
    child = spawn(process.execPath, [FLOOR_MAIN, '--port', String(r.port), '--host', '127.0.0.1'], { stdio: ['ignore', log, log, 'ipc'] });
  } else {
    child = spawn(process.execPath, [spec.main ?? SERVICE_MAIN, '--port', String(r.port), '--host', '127.0.0.1', '--auth', spec.auth,
      '--workers', String(spec.workers), '--data', r.dataDir, ...(spec.extra ?? [])],
    { stdio: ['ignore', log, log], env: { ...process.env, IMGC_LOG_LEVEL: 'warn' } });
  }
  fs.closeSync(log);
  track(child);
  const running: Running = { ...r, pid: child.pid ?? -1, child };
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const deadline = now() + readyTimeoutMs;
  while (now() < deadline && !exited) {
    if (await probe(r.url, 2000)) return { running, stopMs, startMs: now() - t1 };
    await sleep(20);
  }
  throw new Error(`${describe(spec)} not ready again on ${r.url}${exited ? ' (exited)' : ''}: ${readTail(r.logPath)}`);
}

export function describe(spec: ServerSpec): string {
  if (spec.kind === 'service' && spec.main !== undefined) return `${spec.mainName ?? 'old'} w${spec.workers}`;
  return spec.kind === 'floor' ? 'floor' : `service w${spec.workers}${spec.auth === 'signed' ? ' signed' : ''}${spec.extra?.length ? ` ${spec.extra.join(' ')}` : ''}`;
}
