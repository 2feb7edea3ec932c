/**
 * A real nats-server with JetStream for one test suite: on a free loopback port, with its store in
 * a fresh temporary directory (never a shared one), stopped and removed by `stop`. nats-server
 * comes from Debian's package (.ci/run installs it); `natsAvailable()` says whether it is here.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { freePort, tempDir } from './server';

export interface NatsHandle {
  port: number;
  url: string;
  storeDir: string;
  proc: ChildProcess;
  output(): string;
  /** Stops the server (SIGTERM; SIGKILL after 5 s); keeps its store when `keepStore`. */
  stop(opts?: { keepStore?: boolean }): Promise<void>;
}

export function natsAvailable(): boolean {
  return spawnSync('nats-server', ['--version']).status === 0;
}

function reachable(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = netConnect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); res(true); });
    s.once('error', () => res(false));
  });
}

/** Starts nats-server -js on a free port (or `opts.port`), with its store in `opts.storeDir` or a new temp dir. */
export async function startNats(opts: { port?: number; storeDir?: string; extra?: string[] } = {}): Promise<NatsHandle> {
  const port = opts.port ?? await freePort();
  const storeDir = opts.storeDir ?? tempDir('imgc-nats-');
  const proc = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir, ...(opts.extra ?? [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer): void => { out += d.toString(); if (out.length > 1 << 18) out = out.slice(-(1 << 18)); };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  let exited = false;
  const done = new Promise<void>((res) => proc.once('exit', () => { exited = true; res(); }));
  const deadline = Date.now() + 10_000;
  while (!(await reachable(port))) {
    if (exited || Date.now() > deadline) throw new Error(`nats-server did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    storeDir,
    proc,
    output: () => out,
    async stop(o = {}) {
      if (!exited) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await done;
        clearTimeout(t);
      }
      if (!o.keepStore && opts.storeDir === undefined) rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

/**
 * A NATS cluster of `n` servers with JetStream (routes on free ports), for replicated streams;
 * `url` lists every server. Resolves once JetStream has a meta leader (`ready`).
 */
export async function startNatsCluster(n: number): Promise<{ servers: NatsHandle[]; url: string; stop(): Promise<void> }> {
  const routePorts = await Promise.all(Array.from({ length: n }, () => freePort()));
  const routes = routePorts.map((p) => `nats://127.0.0.1:${p}`).join(',');
  const name = `imgc-test-${process.pid}-${Date.now()}`;
  const servers = await Promise.all(routePorts.map((rp, i) => startNats({ extra: ['--server_name', `s${i}`, '--cluster_name', name, '--cluster', `nats://127.0.0.1:${rp}`, '--routes', routes] })));
  return {
    servers,
    url: servers.map((s) => s.url).join(','),
    async stop() { await Promise.all(servers.map((s) => s.stop())); },
  };
}
