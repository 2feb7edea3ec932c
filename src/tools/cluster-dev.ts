/**
 * `npm run cluster -- N [flags] [node flags]`: a cluster of N nodes on this machine, for development.
 *
 * Starts a nats-server with JetStream (store in `<dir>/nats`, port 4222), unless `--nats URL` names one
 * that already runs, and N IMGC nodes joined to it: node i (1..N) on WebSocket port base+i-1 (7788,
 * 7789, …), status port status-base+i-1 (9788, 9789, …), data directory `<dir>/node-<i>`, its log in
 * `<dir>/node-<i>.log` (nats-server's in `<dir>/nats.log`). The nodes start one at a time, each once the
 * cluster before it has settled (every partition served by one node); one line per node is printed once
 * its /readyz answers 200. SIGINT or SIGTERM is passed on to every node; once they have stopped, nats-server is
 * stopped too. A node that dies is reported, not restarted. The directory is kept across runs, so the
 * cluster comes back with its data (`--fresh` starts over).
 *
 *   npm run cluster -- 3
 *   npm run cluster -- 3 --auth open
 *   npm run cluster -- 2 --nats nats://127.0.0.1:4222 --cluster-name other
 *
 * Flags of the tool: --nats URL, --nats-port P (4222), --base-port P (7788), --status-base-port P (9788),
 * --dir DIR (./backup/cluster-dev), --fresh. Every other flag goes to each node as it is (see
 * `npm start -- --help`), after the tool's defaults `--cluster-name dev --host 127.0.0.1`, so it can
 * change them; `--port`, `--status-port`, `--data` and `--cluster` are the tool's to set.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { makeDirs } from '../files';

const MAIN = path.resolve(__dirname, '..', 'main.js');
const USAGE = `usage: npm run cluster -- [N] [--nats URL | --nats-port P] [--base-port P] [--status-base-port P] [--dir DIR] [--fresh] [node flags…]
  N                     nodes to start (default 3)
  --nats URL            use this running NATS (with JetStream) instead of starting nats-server
  --nats-port P         port of the nats-server started here (default 4222)
  --base-port P         WebSocket port of node 1; node i gets P+i-1 (default 7788)
  --status-base-port P  status port of node 1; node i gets P+i-1 (default 9788)
  --dir DIR             nats store, node data directories and logs (default ./backup/cluster-dev)
  --fresh               remove what an earlier run left in DIR first
every other flag is passed to each node (e.g. --auth open, --workers 1, --cluster-name NAME)`;

/** Flags the tool sets per node: given by hand they would put every node on the same port or directory. */
const OWN = new Set(['port', 'status-port', 'data', 'cluster']);

interface Args {
  n: number;
  nats: string | undefined;
  natsPort: number;
  basePort: number;
  statusBasePort: number;
  dir: string;
  fresh: boolean;
  pass: string[];
}

const say = (line: string): void => { process.stdout.write(`${line}\n`); };
const warn = (line: string): void => { process.stderr.write(`${line}\n`); };

function port(v: string | undefined, flag: string): number {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${flag} needs a port (1-65535), got ${JSON.stringify(v)}`);
  return n;
}

export function parseArgs(argv: string[]): Args {
  const a: Args = { n: 3, nats: undefined, natsPort: 4222, basePort: 7788, statusBasePort: 9788, dir: path.join('backup', 'cluster-dev'), fresh: false, pass: [] };
  let sawN = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') ? (eq > 0 ? arg.slice(2, eq) : arg.slice(2)) : undefined;
    const value = (): string | undefined => (eq > 0 ? arg.slice(eq + 1) : argv[++i]);
    if (name === undefined) {
      if (sawN || !/^\d+$/.test(arg)) throw new Error(`unexpected argument ${JSON.stringify(arg)}`);
      a.n = Number(arg);
      if (a.n < 1 || a.n > 64) throw new Error(`N must be between 1 and 64, got ${a.n}`);
      sawN = true;
      continue;
    }
    switch (name) {
      case 'nats': { const v = value(); if (!v) throw new Error('--nats needs a URL'); a.nats = v; break; }
      case 'nats-port': a.natsPort = port(value(), '--nats-port'); break;
      case 'base-port': a.basePort = port(value(), '--base-port'); break;
      case 'status-base-port': a.statusBasePort = port(value(), '--status-base-port'); break;
      case 'dir': { const v = value(); if (!v) throw new Error('--dir needs a directory'); a.dir = v; break; }
      case 'fresh': a.fresh = true; break;
      default: {
        if (OWN.has(name)) throw new Error(`--${name} is set by the tool for each node (use --base-port, --status-base-port, --dir, --nats)`);
        // A node flag: passed on with its value, if it has one (the next argument unless it is a flag).
        a.pass.push(arg);
        if (eq < 0 && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) a.pass.push(argv[++i]!);
      }
    }
  }
  if (a.basePort + a.n - 1 > 65535 || a.statusBasePort + a.n - 1 > 65535) throw new Error('ports past 65535');
  const ws = new Set(Array.from({ length: a.n }, (_, i) => a.basePort + i));
  for (let i = 0; i < a.n; i++) if (ws.has(a.statusBasePort + i)) throw new Error('the WebSocket and status port ranges overlap');
  return a;
}

/** The value of node flag `--name` among the passed flags (the last one wins, as in the node). */
function passed(pass: string[], name: string): string | undefined {
  let v: string | undefined;
  for (let i = 0; i < pass.length; i++) {
    const a = pass[i]!;
    if (a === `--${name}`) v = pass[i + 1] !== undefined && !pass[i + 1]!.startsWith('--') ? pass[i + 1] : 'true';
    else if (a.startsWith(`--${name}=`)) v = a.slice(name.length + 3);
  }
  return v;
}

function reachable(host: string, p: number): Promise<boolean> {
  return new Promise((res) => {
    const s = net.connect(p, host);
    s.setTimeout(1000, () => { s.destroy(); res(false); });
    s.once('connect', () => { s.destroy(); res(true); });
    s.once('error', () => res(false));
  });
}

function readyz(host: string, p: number): Promise<boolean> {
  return new Promise((res) => {
    const req = http.get({ host, port: p, path: '/readyz', timeout: 1000 }, (r) => { r.resume(); res(r.statusCode === 200); });
    req.on('timeout', () => req.destroy());
    req.on('error', () => res(false));
  });
}

function tail(file: string, lines = 3): string {
  try {
    const text = fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    return text.length > 1500 ? text.slice(-1500) : text;
  } catch {
    return '';
  }
}

/** A path as the user would type it: relative to the working directory when inside it. */
function shown(p: string): string {
  const r = path.relative(process.cwd(), p);
  return r !== '' && !r.startsWith('..') && !path.isAbsolute(r) ? r : p;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const wildcard = (h: string): boolean => h === '0.0.0.0' || h === '::' || h === '';

interface Child {
  name: string;
  proc: ChildProcess;
  log: string;
  exited: Promise<void>;
  gone: boolean;
}

/** Spawns in its own process group: a Ctrl-C reaches this tool only, which stops nodes first, then NATS. */
function start(name: string, cmd: string, args: string[], log: string, env: NodeJS.ProcessEnv = process.env): Child {
  const fd = fs.openSync(log, 'a');
  fs.writeSync(fd, `--- ${name} started ${new Date().toISOString()}: ${cmd} ${args.join(' ')}\n`);
  const proc = spawn(cmd, args, { stdio: ['ignore', fd, fd], detached: true, env });
  fs.closeSync(fd);
  const child: Child = { name, proc, log, gone: false, exited: Promise.resolve() };
  child.exited = new Promise((res) => {
    proc.once('exit', () => { child.gone = true; res(); });
    proc.once('error', (err) => {
      child.gone = true;
      warn(`${name}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? `${cmd} not found on PATH` : err.message}`);
      res();
    });
  });
  return child;
}

async function stopChild(c: Child, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (c.gone) return;
  try { c.proc.kill(signal); } catch { /* gone */ }
  const t = setTimeout(() => { if (!c.gone) { warn(`${c.name} did not stop within ${graceMs} ms: SIGKILL`); c.proc.kill('SIGKILL'); } }, graceMs);
  await c.exited;
  clearTimeout(t);
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) { say(USAGE); return 0; }
  let a: Args;
  try {
    a = parseArgs(argv);
  } catch (err) {
    warn(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (!fs.existsSync(MAIN)) { warn(`${MAIN} is missing: run npm run build`); return 2; }
  const dir = path.resolve(a.dir);
  if (a.fresh) {
    fs.rmSync(path.join(dir, 'nats'), { recursive: true, force: true });
    for (const e of fs.existsSync(dir) ? fs.readdirSync(dir) : []) if (/^node-\d+(\.log)?$/.test(e) || e === 'nats.log') fs.rmSync(path.join(dir, e), { recursive: true, force: true });
  }
  makeDirs(dir);

  const children: Child[] = [];
  let stopping = false;
  // The last resort: this process is going away with children still running.
  process.on('exit', () => { for (const c of children) if (!c.gone) try { c.proc.kill('SIGTERM'); } catch { /* gone */ } });

  let nats: Child | undefined;
  let natsUrl = a.nats;
  if (natsUrl === undefined) {
    if (await reachable('127.0.0.1', a.natsPort)) {
      warn(`port ${a.natsPort} is in use: if that is a NATS with JetStream, pass --nats nats://127.0.0.1:${a.natsPort}; else choose --nats-port`);
      return 2;
    }
    const store = path.join(dir, 'nats');
    makeDirs(store);
    nats = start('nats-server', 'nats-server', ['-js', '-a', '127.0.0.1', '-p', String(a.natsPort), '-sd', store], path.join(dir, 'nats.log'));
    children.push(nats);
    const deadline = Date.now() + 10_000;
    while (!(await reachable('127.0.0.1', a.natsPort))) {
      if (nats.gone || Date.now() > deadline) {
        warn(`nats-server did not start (is it installed? https://docs.nats.io/running-a-nats-service/introduction/installation):\n${tail(nats.log, 5)}`);
        await stopChild(nats, 'SIGKILL', 1000);
        return 1;
      }
      await sleep(50);
    }
    natsUrl = `nats://127.0.0.1:${a.natsPort}`;
    say(`nats-server pid ${nats.proc.pid ?? '?'} on ${natsUrl} (JetStream store ${shown(store)}, log ${shown(nats.log)})`);
  } else {
    say(`using NATS at ${natsUrl}`);
  }

  const host = passed(a.pass, 'host') ?? '127.0.0.1';
  const wsHost = wildcard(host) ? '127.0.0.1' : host;
  const statusHost = passed(a.pass, 'status-host') ?? '127.0.0.1';
  const probeHost = wildcard(statusHost) ? '127.0.0.1' : statusHost;
  const scheme = passed(a.pass, 'tls-cert') !== undefined ? 'wss' : 'ws';
  const name = passed(a.pass, 'cluster-name') ?? 'dev';
  const tokenSetting = passed(a.pass, 'status-token');

  const nodes: DevNode[] = [];
  const stop = async (signal: NodeJS.Signals): Promise<void> => {
    if (stopping) {
      warn(`${signal} again: SIGKILL to everything`);
      for (const c of children) if (!c.gone) c.proc.kill('SIGKILL');
      return;
    }
    stopping = true;
    const live = nodes.filter((n) => !n.gone);
    say(`${signal}: stopping ${live.length} node${live.length === 1 ? '' : 's'}${nats ? ', then nats-server' : ''}`);
    // A node's own graceful stop is bounded by --shutdown-ms (10 s by default).
    await Promise.all(live.map((n) => stopChild(n, signal, 30_000)));
    if (nats) await stopChild(nats, 'SIGTERM', 10_000);
    say('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  const watchExit = (c: Child): void => {
    void c.exited.then(() => {
      if (stopping) return;
      const how = c.proc.exitCode !== null ? `code ${c.proc.exitCode}` : `signal ${c.proc.signalCode ?? '?'}`;
      warn(`${c.name} (pid ${c.proc.pid ?? '?'}) exited with ${how}; it is not restarted. Last lines of ${shown(c.log)}:\n${tail(c.log)}`);
      if (c === nats) warn(`the nodes cannot write until a NATS is back on ${natsUrl}`);
      if (nodes.length > 0 && nodes.every((n) => n.gone)) {
        warn('every node has exited');
        stopping = true;
        void (nats ? stopChild(nats, 'SIGTERM', 10_000) : Promise.resolve()).then(() => process.exit(1));
      }
    });
  };
  if (nats) watchExit(nats);

  const tokenOf = (n: DevNode): string | undefined => {
    if (tokenSetting === 'none') return undefined;
    if (tokenSetting !== undefined) return tokenSetting;
    try { return fs.readFileSync(path.join(n.data, 'status-token'), 'utf8').trim(); } catch { return undefined; }
  };

  // One node at a time: each joins once the nodes before it have settled (every partition served by
  // exactly one node that every node sees), so that no partition is handed over while yet another
  // node joins.
  for (let i = 1; i <= a.n && !stopping; i++) {
    const p = a.basePort + i - 1;
    const sp = a.statusBasePort + i - 1;
    const data = path.join(dir, `node-${i}`);
    makeDirs(data);
    const args = [MAIN, '--cluster', natsUrl, '--cluster-name', 'dev', '--host', '127.0.0.1', ...a.pass, '--port', String(p), '--status-port', String(sp), '--data', data];
    const c = start(`node ${i}`, process.execPath, args, path.join(dir, `node-${i}.log`));
    children.push(c);
    const node: DevNode = Object.assign(c, { index: i, port: p, statusPort: sp, data, ready: false });
    nodes.push(node);
    watchExit(node);
    say(`node ${i} pid ${c.proc.pid ?? '?'} starting (log ${shown(c.log)})`);
    const t0 = Date.now();
    let slowWarned = false;
    while (!stopping && !node.gone && !(await readyz(probeHost, sp))) {
      if (!slowWarned && Date.now() - t0 > 60_000) {
        slowWarned = true;
        warn(`node ${i} not ready after 60 s (see its log); still waiting`);
      }
      await sleep(200);
    }
    if (stopping || node.gone) continue;
    node.ready = true;
    const token = tokenSetting === 'none' ? 'no token' : tokenSetting !== undefined ? 'token as given' : `token in ${shown(path.join(data, 'status-token'))}`;
    say(`node ${i} ready: ${scheme}://${wsHost}:${p}  status http://${probeHost}:${sp}/status (${token})  pid ${c.proc.pid ?? '?'}`);
    if (i < a.n) {
      const why = await settled(nodes.filter((n) => n.ready && !n.gone), probeHost, tokenOf, () => stopping, 30_000);
      if (why !== undefined) warn(`the cluster has not settled 30 s after node ${i} joined (${why}); starting the next node anyway`);
    }
  }
  const ready = nodes.filter((n) => n.ready && !n.gone).length;
  if (!stopping && ready > 0) say(`cluster "${name}": ${ready} of ${a.n} nodes ready on ${natsUrl}; Ctrl-C stops them`);
  return -1;
}

type DevNode = Child & { index: number; port: number; statusPort: number; data: string; ready: boolean };

interface ClusterView { cluster: { nodes: unknown[]; serving: number[]; partitions: number } }

function getStatus(host: string, p: number, token: string | undefined): Promise<ClusterView | undefined> {
  return new Promise((res) => {
    const req = http.get({ host, port: p, path: '/status', timeout: 2000, headers: token !== undefined ? { authorization: `Bearer ${token}` } : {} }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (d: string) => { body += d; });
      r.on('end', () => { try { res(r.statusCode === 200 ? JSON.parse(body) as ClusterView : undefined); } catch { res(undefined); } });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => res(undefined));
  });
}

/** Waits until every node sees all of `nodes` and every partition is served by exactly one; undefined, or what is still missing. */
async function settled(nodes: DevNode[], host: string, tokenOf: (n: DevNode) => string | undefined, stopping: () => boolean, timeoutMs: number): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  let why = 'no status';
  while (!stopping() && Date.now() < deadline) {
    const st = await Promise.all(nodes.map((n) => getStatus(host, n.statusPort, tokenOf(n))));
    if (st.every((x) => x !== undefined)) {
      const views = st as ClusterView[];
      const parts = views[0]!.cluster.partitions;
      const served = views.flatMap((v) => v.cluster.serving);
      const missing = Array.from({ length: parts }, (_, p) => p).filter((p) => !served.includes(p));
      if (views.every((v) => v.cluster.nodes.length === nodes.length) && missing.length === 0 && served.length === parts) return undefined;
      why = missing.length > 0 ? `partitions ${missing.join(', ')} not served` : views.some((v) => v.cluster.nodes.length !== nodes.length) ? 'nodes do not see each other yet' : 'a partition served twice';
    }
    await sleep(200);
  }
  return stopping() ? undefined : why;
}

main().then((code) => { if (code >= 0) process.exit(code); }, (err: unknown) => {
  warn(`cluster-dev failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
