/**
 * `npm run cluster -- N` (src/tools/cluster-dev.ts): the tool starts its own nats-server and two
 * nodes on free ports in a temporary directory, prints a ready line per node, every node answers a
 * WebSocket with its init frame, and SIGTERM stops every child before the tool exits.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { Client } from './support/client';
import { natsAvailable } from './support/nats';
import { tempDir } from './support/server';

const TOOL = resolve(__dirname, '..', 'src', 'tools', 'cluster-dev.js');

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

/** `n` consecutive ports that were free a moment ago, below the ephemeral range. */
async function freeRun(n: number, avoid: Set<number>): Promise<number> {
  for (let k = 0; k < 200; k++) {
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    const run = Array.from({ length: n }, (_, i) => base + i);
    if (run.some((p) => avoid.has(p))) continue;
    if ((await Promise.all(run.map(portFree))).every(Boolean)) {
      for (const p of run) avoid.add(p);
      return base;
    }
  }
  throw new Error('no free run of ports');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm run cluster (src/tools/cluster-dev.ts)', function () {
  this.timeout(30_000);
  let dir: string;
  let tool: ChildProcess | undefined;
  let out = '';

  before(function () {
    if (!natsAvailable()) this.skip();
    dir = tempDir('imgc-cluster-dev-');
  });
  after(async () => {
    // On a failure: the tool stops its children on SIGTERM; whatever is left after that is killed here.
    if (tool && tool.exitCode === null && tool.signalCode === null) {
      const gone = new Promise((res) => tool!.once('exit', res));
      tool.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 15_000))]);
    }
    for (const m of out.matchAll(/ pid (\d+)/g)) if (alive(Number(m[1]))) process.kill(Number(m[1]), 'SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('starts NATS and two nodes, prints their URLs when ready, and stops them all on SIGTERM', async () => {
    const used = new Set<number>();
    const base = await freeRun(2, used);
    const statusBase = await freeRun(2, used);
    const natsPort = await freeRun(1, used);
    tool = spawn(process.execPath, [TOOL, '2', '--base-port', String(base), '--status-base-port', String(statusBase), '--nats-port', String(natsPort),
      '--dir', join(dir, 'cluster'), '--auth', 'open', '--workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, IMGC_LOG_LEVEL: 'warn' } });
    tool.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    tool.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    const exited = new Promise<number | null>((res) => tool!.once('exit', (code) => res(code)));

    // Ready lines: `node <i> ready: ws://127.0.0.1:<port>  status http://127.0.0.1:<port>/status (…)  pid <pid>`.
    const deadline = Date.now() + 20_000;
    const readyRe = /^node (\d+) ready: (ws:\/\/\S+)\s+status (http:\/\/\S+) .* pid (\d+)$/gm;
    let ready: RegExpExecArray[] = [];
    while (Date.now() < deadline) {
      ready = [...out.matchAll(readyRe)];
      if (/cluster "dev": \d+ of 2 nodes ready/.test(out) || tool.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(ready.length, out).to.equal(2);
    const urls = ready.map((m) => m[2]!).sort();
    expect(urls).to.deep.equal([`ws://127.0.0.1:${base}`, `ws://127.0.0.1:${base + 1}`]);
    expect(ready.map((m) => m[3]!).sort()).to.deep.equal([`http://127.0.0.1:${statusBase}/status`, `http://127.0.0.1:${statusBase + 1}/status`]);
    expect(out).to.match(/cluster "dev": 2 of 2 nodes ready/);

    for (const url of urls) {
      const c = await Client.connect(url);
      expect(c.init.act).to.equal('init');
      expect(c.spam).to.be.a('string').and.not.equal('');
      c.ws.terminate();
    }

    const natsPid = Number(/^nats-server pid (\d+)/m.exec(out)?.[1]);
    const pids = [natsPid, ...ready.map((m) => Number(m[4]))];
    expect(pids.every((p) => Number.isInteger(p) && p > 0), out).to.equal(true);
    expect(pids.every(alive)).to.equal(true);

    tool.kill('SIGTERM');
    const code = await exited;
    expect(code, out).to.equal(0);
    expect(out).to.match(/SIGTERM: stopping 2 nodes, then nats-server/);
    expect(pids.filter(alive), out).to.deep.equal([]);
  });
});
