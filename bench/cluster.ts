/**
 * `npm run bench:cluster`: cluster mode (--cluster, on one nats-server with JetStream) on 1, 2 and 3
 * nodes against the embedded service (one process, no NATS), all in one run, each configuration with
 * fresh processes, a fresh cluster name and fresh data directories. The embedded service is measured
 * first and again last: the second is the noise of the run, not a baseline of its own.
 *
 *   node dist/bench/cluster.js [--nodes 1,2,3] [--workers 1] [--pairs 500] [--window 4] [--group 20]
 *       [--clients 2000] [--fanout-window 16] [--duration 8] [--warmup 2] [--write]
 *
 * - cross-node pairs: the two accounts of a pair sign in on different nodes (pair p on nodes p and
 *   p+1), both send, closed loop (window per sender);
 * - group fan-out: groups of `--group` members spread round-robin over the nodes, the creator sends,
 *   closed loop (window per group).
 * CPU per delivery = (CPU time of every node process + nats-server's) / deliveries, from
 * /proc/<pid>/stat over the measured window; the ledger's entries and bytes from nats-server's
 * monitoring port (/jsz) over the same window.
 *
 *   node dist/bench/cluster.js --capacity [--target 100000] [--nodes 7] [--agents 8] [--concurrency 50] [--write]
 *
 * Capacity: `--target` idle signed-in sockets (`--auth open`) held by a cluster of `--nodes` processes
 * (`--workers 1`), opened by `--agents` load-generator processes, agent k binding its sockets to
 * 127.0.0.(2+k) so that every source address has its own ephemeral ports; RSS per connection = (sum of
 * the nodes' RSS holding them − their RSS before) / connections.
 *
 *   node dist/bench/cluster.js --replay [--messages 100000] [--accounts 200] [--write]
 *
 * Replay: what a new node costs. One node takes `--messages` direct messages (closed loop, each
 * acknowledged, i.e. stored in the ledger); then a node with an empty data directory joins and
 * replays the whole ledger before it listens. Its replay rate is quoted against the rate at which
 * the ledger was written in the same run; then the first node restarts on its replica (replaying
 * only what it had not applied).
 *
 * `--write` puts the results into docs/benchmarks.md between `<!-- cluster:begin -->` and
 * `<!-- cluster:end -->` (capacity: `clustercap`; replay: `clusterreplay`), leaving the rest of the file as it is.
 */
import { execSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { flagNum, now, openAccount, parseFlags, ProcWatch, rssBytes, sleep } from './common';
import * as driver from './driver';
import type { CapConnectArgs, ClusterTarget } from './agent-args';
import { pickPort, readTail, removeDir, restartServer, startServer, stopServer, tempDir, track, type Running } from './server';
import { closeAll, signInMany, type BenchClient } from './clients';
import { fmt, type RunResult } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');
const flags = parseFlags(process.argv.slice(2));
const capacityMode = flags.has('capacity');
const replayMode = flags.has('replay');
const duration = flagNum(flags, 'duration', 8);
const warmup = flagNum(flags, 'warmup', 2);
const workers = flagNum(flags, 'workers', 1);
const maxMinutes = flagNum(flags, 'max-minutes', capacityMode ? 30 : 10);
const t0 = now();
const loadStart = loadavg();

const say = (s: string): void => { process.stdout.write(`${s}\n`); };

setTimeout(() => {
  say(`\nbench:cluster: hard time limit of ${maxMinutes} min reached, stopping`);
  process.exit(4);
}, maxMinutes * 60_000).unref();

function loadavg(): string {
  try { return fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '); } catch { return '?'; }
}

// ---- nats-server ----

interface Nats { url: string; monitor: string; pid: number; child: ChildProcess; dir: string }

function reachable(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); res(true); });
    s.once('error', () => res(false));
  });
}

async function startNats(): Promise<Nats> {
  const port = await pickPort();
  const mport = await pickPort();
  const dir = tempDir('imgc-bench-nats-');
  const log = fs.openSync(path.join(dir, 'nats.log'), 'w');
  const child = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-m', String(mport), '-sd', path.join(dir, 'store')], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  track(child);
  const deadline = now() + 10_000;
  while (!(await reachable(port))) {
    if (child.exitCode !== null || now() > deadline) throw new Error(`nats-server did not start: ${readTail(path.join(dir, 'nats.log'))}`);
    await sleep(50);
  }
  return { url: `nats://127.0.0.1:${port}`, monitor: `http://127.0.0.1:${mport}`, pid: child.pid ?? -1, child, dir };
}

async function stopNats(n: Nats): Promise<void> {
  if (n.child.exitCode === null) {
    const gone = new Promise((r) => n.child.once('exit', r));
    n.child.kill('SIGTERM');
    await Promise.race([gone, sleep(5000)]);
    if (n.child.exitCode === null) n.child.kill('SIGKILL');
  }
  removeDir(n.dir);
}

/**
 * Removes a finished configuration's streams so that NATS carries nothing of it into the next: every
 * stream whose name holds the cluster's name (ledger, buckets, object stores; whatever a build keeps,
 * the name is unique to the configuration).
 */
async function dropStreams(n: Nats, clusterName: string): Promise<void> {
  const nc = await connect({ servers: n.url });
  try {
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const si of jsm.streams.list()) names.push(si.config.name);
    const ours = new RegExp(`(^|_)${clusterName}($|_)`);
    for (const s of names) if (ours.test(s)) await jsm.streams.delete(s);
  } finally {
    await nc.close();
  }
}

// ---- a cluster of node processes ----

interface Cluster { name: string; nodes: Running[]; statusPorts: number[]; token: string }

function getJson<T>(port: number, route: string, token: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: route, headers: { authorization: `Bearer ${token}` }, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => { try { resolve(JSON.parse(body) as T); } catch (e) { reject(e as Error); } });
    });
    req.on('timeout', () => req.destroy(new Error('status timeout')));
    req.on('error', reject);
  });
}

interface NodeStatus { connections: number; cluster: { node: string; serving: number[]; partitions: number; nodes: unknown[]; ready: boolean } }

let clusterSeq = 0;

/**
 * `n` nodes joined to `nats` under a fresh cluster name, one at a time: each starts once the nodes
 * before it have settled (every partition served by exactly one node, every node seeing the others).
 * Started all at once, a partition handed over to a node while a third one joins can stay unserved
 * (see docs/scaling.md).
 */
async function startCluster(nats: Nats, n: number, extra: string[] = []): Promise<Cluster> {
  const name = `b${process.pid.toString(36)}${Date.now().toString(36)}x${++clusterSeq}`;
  const token = randomBytes(16).toString('hex');
  const c: Cluster = { name, nodes: [], statusPorts: [], token };
  try {
    for (let i = 0; i < n; i++) {
      const sp = await pickPort();
      const node = await startServer({
        kind: 'service', workers, auth: 'open',
        extra: ['--cluster', nats.url, '--cluster-name', name, '--status-port', String(sp), '--status-token', token, '--max-connections-per-ip', '20000', '--max-connections', '20000', ...extra],
      }, 60_000);
      c.nodes.push(node);
      c.statusPorts.push(sp);
      await settled(c, 30_000);
    }
    return c;
  } catch (e) {
    await stopCluster(c);
    throw e;
  }
}

/** Waits until every node of `c` sees all of them, every partition has exactly one owner and every replica is current. */
async function settled(c: Cluster, timeoutMs: number): Promise<void> {
  const deadline = now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const st = await Promise.all(c.statusPorts.map((p) => getJson<NodeStatus>(p, '/status', c.token)));
      const served = st.flatMap((s) => s.cluster.serving);
      const parts = st[0]!.cluster.partitions;
      if (st.every((s) => s.cluster.nodes.length === c.nodes.length && s.cluster.ready) && served.length === parts && new Set(served).size === parts) return;
      const missing = Array.from({ length: parts }, (_, p) => p).filter((p) => !served.includes(p));
      last = `${missing.length > 0 ? `partitions ${missing.join(', ')} not served; ` : ''}${JSON.stringify(st.map((s) => ({ node: s.cluster.node, sees: s.cluster.nodes.length, serving: s.cluster.serving.length, ready: s.cluster.ready })))}`;
    } catch (e) {
      last = (e as Error).message;
    }
    if (now() > deadline) throw new Error(`cluster of ${c.nodes.length} not settled within ${timeoutMs / 1000} s: ${last}`);
    await sleep(200);
  }
}

async function stopCluster(c: Cluster): Promise<void> {
  await Promise.all(c.nodes.map((s) => stopServer(s)));
}

// ---- the throughput comparison ----

interface Config { name: string; nodes: number }

interface Measured { config: Config; pairs: RunResult | undefined; fanout: RunResult | undefined; startMs: number }

const problems: string[] = [];

async function measureConfig(nats: Nats, cfg: Config, label: string): Promise<Measured> {
  const pairsN = flagNum(flags, 'pairs', 500);
  const group = flagNum(flags, 'group', 20);
  const clients = flagNum(flags, 'clients', 2000);
  const tStart = now();
  let cluster: Cluster | undefined;
  let single: Running | undefined;
  const out: Measured = { config: cfg, pairs: undefined, fanout: undefined, startMs: 0 };
  try {
    let target: driver.Target;
    let ct: ClusterTarget | undefined;
    if (cfg.nodes === 0) {
      single = await startServer({ kind: 'service', workers, auth: 'open' });
      target = { url: single.url, pid: single.pid, label };
    } else {
      cluster = await startCluster(nats, cfg.nodes);
      target = { url: cluster.nodes[0]!.url, pid: cluster.nodes[0]!.pid, label };
      ct = { urls: cluster.nodes.map((s) => s.url), pids: cluster.nodes.map((s) => s.pid), natsPid: nats.pid, natsMonitor: nats.monitor, stream: `IMGC_${cluster.name}` };
    }
    out.startMs = now() - tStart;
    process.stdout.write(`· ${cfg.name}: up in ${(out.startMs / 1000).toFixed(1)} s; pairs … `);
    out.pairs = await driver.flow({ ...target, label: `${label}p` }, { mode: 'pairs', pairs: pairsN, duration, warmup, window: flagNum(flags, 'window', 4), rate: 0, ...(ct ? { cluster: ct } : {}) });
    process.stdout.write(`${fmt(out.pairs.figures['deliveries/s'])}/s; fan-out … `);
    out.fanout = await driver.flow({ ...target, label: `${label}f` }, { mode: 'fanout', group, clients, duration, warmup, window: flagNum(flags, 'fanout-window', 16), rate: 0, ...(ct ? { cluster: ct } : {}) });
    say(`${fmt(out.fanout.figures['deliveries/s'])}/s (${((now() - tStart) / 1000).toFixed(0)} s)`);
    for (const [what, r] of [['pairs', out.pairs], ['fan-out', out.fanout]] as const) for (const n of r.notes) say(`    ${what} note: ${n}`);
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0]!.slice(0, 400);
    say(`failed: ${msg}`);
    problems.push(`${cfg.name}: ${msg}`);
  } finally {
    const procs = cluster ? cluster.nodes : single ? [single] : [];
    for (const s of procs) {
      if (s.child.exitCode !== null || s.child.signalCode !== null) problems.push(`${cfg.name}: a process exited during the run: ${readTail(s.logPath, 300)}`);
    }
    if (cluster) {
      await stopCluster(cluster);
      await dropStreams(nats, cluster.name).catch((e: Error) => problems.push(`dropping the streams of ${cluster!.name}: ${e.message}`));
    }
    if (single) await stopServer(single);
  }
  return out;
}

/** CPU µs per delivery of one measurement: nodes, nats-server, both. */
function perDelivery(r: RunResult | undefined): { node: number; nats: number; total: number } {
  const f = r?.figures ?? {};
  const d = f['deliveries/s'] ?? NaN;
  const node = ((f['server CPU %'] ?? NaN) / 100 / d) * 1e6;
  const natsUs = f['nats CPU %'] === undefined ? 0 : ((f['nats CPU %'] ?? NaN) / 100 / d) * 1e6;
  return { node, nats: natsUs, total: node + natsUs };
}

function withDerived(r: RunResult | undefined): RunResult | undefined {
  if (!r) return r;
  const f = { ...r.figures };
  const pd = perDelivery(r);
  const sent = f['msgs sent/s'] ?? NaN;
  const extra: Record<string, number> = {
    'CPU µs/delivery (nodes + nats)': pd.total,
    'node CPU µs/delivery': pd.node,
    'node CPU µs/msg sent': ((f['server CPU %'] ?? NaN) / 100 / sent) * 1e6,
  };
  if (f['nats CPU %'] !== undefined) {
    extra['nats CPU µs/delivery'] = pd.nats;
    extra['nats CPU µs/msg sent'] = ((f['nats CPU %'] ?? NaN) / 100 / sent) * 1e6;
    const entries = f['ledger entries/s'] ?? NaN;
    extra['nats CPU µs/entry'] = ((f['nats CPU %'] ?? NaN) / 100 / entries) * 1e6;
    extra['node CPU µs/entry'] = ((f['server CPU %'] ?? NaN) / 100 / entries) * 1e6;
    extra['deliveries/entry'] = (f['deliveries/s'] ?? NaN) / entries;
    extra['entries/msg sent'] = entries / sent;
    extra['ledger B/msg sent'] = (f['ledger B/entry'] ?? NaN) * entries / sent;
    extra['nats msgs in+out/msg sent'] = ((f['nats msgs in/s'] ?? NaN) + (f['nats msgs out/s'] ?? NaN)) / sent;
    extra['nats B in+out/msg sent'] = (((f['nats MB in/s'] ?? NaN) + (f['nats MB out/s'] ?? NaN)) * 1e6) / sent;
  }
  return { figures: { ...f, ...extra }, notes: r.notes };
}

function cell(v: number | undefined, base: number | undefined, isBase: boolean): string {
  if (v === undefined) return '–';
  if (isBase || base === undefined || !Number.isFinite(base) || base === 0 || !Number.isFinite(v)) return fmt(v);
  return `${fmt(v)} (${(v / base).toFixed(2)}×)`;
}

function table(title: string, cols: string[], results: (RunResult | undefined)[]): string {
  const names: string[] = [];
  for (const r of results) for (const k of Object.keys(r?.figures ?? {})) if (!names.includes(k)) names.push(k);
  const base = results[0];
  const lines = [`### ${title}`, '', `| figure | ${cols.join(' | ')} |`, `|---|${cols.map(() => '---:').join('|')}|`];
  for (const n of names) lines.push(`| ${n} | ${results.map((r, i) => cell(r?.figures[n], base?.figures[n], i === 0)).join(' | ')} |`);
  const notes = results.flatMap((r, i) => (r?.notes ?? []).map((x) => `- ${cols[i]}: ${x}`));
  if (notes.length > 0) lines.push('', ...notes);
  lines.push('');
  return lines.join('\n');
}

function machine(): string {
  let cpu = 'unknown';
  try { cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpu; } catch { /* keep */ }
  let commit = '?';
  try { commit = execSync('git rev-parse --short HEAD', { cwd: ROOT, encoding: 'utf8' }).trim(); } catch { /* not a repo */ }
  let natsVersion = '?';
  try { natsVersion = execSync('nats-server --version', { encoding: 'utf8' }).trim(); } catch { /* missing */ }
  return `${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, ${natsVersion}, ${new Date().toISOString()}, commit ${commit};`
    + ` load average ${loadStart} at start, ${loadavg()} at end`;
}

async function throughput(): Promise<void> {
  const nodeCounts = (flags.get('nodes') ?? '1,2,3').split(',').map(Number).filter((n) => n > 0);
  const configs: Config[] = [{ name: 'embedded', nodes: 0 }, ...nodeCounts.map((n) => ({ name: `cluster ×${n}`, nodes: n }))];
  if (!flags.has('no-repeat')) configs.push({ name: 'embedded again', nodes: 0 });
  say(`bench:cluster: ${configs.map((c) => c.name).join(', ')}; --workers ${workers}; duration ${duration} s, warm-up ${warmup} s`);
  const nats = await startNats();
  const results: Measured[] = [];
  let ceiling: string | undefined;
  try {
    let k = 0;
    for (const cfg of configs) results.push(await measureConfig(nats, cfg, `c${process.pid}x${++k}`));
    if (!flags.has('no-ceiling')) ceiling = await streamCeiling(nats).catch((e: Error) => { problems.push(`stream ceiling: ${e.message}`); return undefined; });
  } finally {
    await stopNats(nats);
  }
  const cols = results.map((r) => r.config.name);
  const pairsN = flagNum(flags, 'pairs', 500);
  const group = flagNum(flags, 'group', 20);
  const clients = flagNum(flags, 'clients', 2000);
  const pairsTitle = `cross-node pairs (${pairsN} pairs, each pair's two accounts on different nodes, closed loop, window ${flagNum(flags, 'window', 4)}/client)`;
  const fanTitle = `group fan-out (${Math.floor(clients / group)} groups of ${group}, members round-robin over the nodes, closed loop, window ${flagNum(flags, 'fanout-window', 16)}/group)`;
  const pairs = results.map((r) => withDerived(r.pairs));
  const fan = results.map((r) => withDerived(r.fanout));

  // The summary: the figures the issue asks for, as ratios against the embedded service of this run.
  const sum: string[] = ['| scenario | figure | ' + cols.join(' | ') + ' |', `|---|---|${cols.map(() => '---:').join('|')}|`];
  const rows: Array<[string, string]> = [['deliveries/s', 'deliveries/s'], ['p99 ms', 'p99 ms'], ['CPU µs/delivery (nodes + nats)', 'CPU µs per delivery (nodes + nats-server)'],
    ['node CPU µs/delivery', '  of which the nodes'], ['nats CPU µs/delivery', '  of which nats-server']];
  for (const [scen, rs] of [['cross-node pairs', pairs], [`fan-out ${group}`, fan]] as const) {
    for (const [key, label] of rows) sum.push(`| ${scen} | ${label} | ${rs.map((r, i) => cell(r?.figures[key], rs[0]?.figures[key], i === 0)).join(' | ')} |`);
  }
  const fits: string[] = [];
  for (const [scen, rs] of [['cross-node pairs', pairs], [`fan-out ${group}`, fan]] as const) {
    const pts = results.map((r, i) => ({ n: r.config.nodes, y: rs[i]?.figures['node CPU µs/msg sent'] ?? NaN, z: rs[i]?.figures['nats CPU µs/msg sent'] ?? NaN }))
      .filter((p) => p.n > 0 && Number.isFinite(p.y));
    const base = rs[0]?.figures['node CPU µs/msg sent'];
    const fit = linearFit(pts.map((p) => p.n), pts.map((p) => p.y));
    if (fit) {
      fits.push(`| ${scen} | ${fmt(base)} | ${fmt(fit.a)} + ${fmt(fit.b)} · N | ${pts.map((p) => `${p.n}: ${fmt(p.y)}`).join(', ')} | ${pts.map((p) => `${p.n}: ${fmt(p.z)}`).join(', ')} |`);
    }
  }
  const md = [
    '## Cluster mode against the embedded service',
    '',
    `Written by \`bench/cluster.ts\` (\`npm run bench:cluster\`). One nats-server ${'(JetStream, file store, one replica)'} for the whole run;`,
    'each column is a fresh set of processes with a fresh cluster name and data directories; the embedded service (one process,',
    'no NATS) is measured first, as the baseline of every ratio `(…×)`, and again last, to show how far the machine drifted during',
    `the run. Every process runs \`--workers ${workers} --auth open\`. The load generator is one more process on the same cores.`,
    '',
    `Machine and run: ${machine()}.`,
    '',
    `Reproduce: \`npm run bench:cluster${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\``,
    '',
    '### Summary (ratios against the embedded service of the same run)',
    '',
    ...sum,
    '',
    'CPU per delivery = CPU time (utime + stime from /proc/<pid>/stat) of every node process and of nats-server over the measured',
    'window, divided by the deliveries in it. In cross-node pairs every message is one delivery; in fan-out one per receiving member.',
    'With one node there is no other node: the pairs are on the same node (that column is the cost of the ledger alone).',
    '',
    '### CPU per message sent against the number of nodes',
    '',
    'Node CPU (sum over the nodes) per message sent, fitted to a + b·N by least squares over the cluster columns: b is what one',
    'more node adds per message (every node applies every ledger entry), a what is paid once (accepting the request, deciding,',
    'publishing, writing to the recipients\' sockets).',
    '',
    '| scenario | embedded µs/msg | cluster fit µs/msg | cluster measured (N: µs/msg) | nats-server (N: µs/msg) |',
    '|---|---:|---:|---|---|',
    ...fits,
    '',
    ...(ceiling ? [ceiling, ''] : []),
    table(pairsTitle, cols, pairs),
    table(fanTitle, cols, fan),
    '- **ledger entries/s**, **ledger B/entry**: growth of the ledger stream (last sequence, bytes as nats-server stores them) over',
    '  the window, from nats-server\'s monitoring port; **KV writes/s**: the same for the key-value buckets (positions, heartbeats,',
    '  owners). **entries/msg sent**: ledger entries per message sent (a node batches the messages of one turn into one entry).',
    '- **server CPU %** is the sum over the nodes (100 % = one core); **nats CPU %** is nats-server\'s; **other CPU %** is the rest of',
    '  the machine (other sessions) during the window.',
    ...(problems.length > 0 ? ['', '### Problems in this run', '', ...problems.map((p) => `- ${p}`)] : []),
  ].join('\n');
  say('');
  say(md);
  if (flags.has('write')) writeSection('cluster', md);
}

/** Least squares y = a + b·x; undefined with fewer than two distinct x. */
function linearFit(xs: number[], ys: number[]): { a: number; b: number } | undefined {
  const n = xs.length;
  if (n < 2 || new Set(xs).size < 2) return undefined;
  const mx = xs.reduce((s, x) => s + x, 0) / n;
  const my = ys.reduce((s, y) => s + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) { sxy += (xs[i]! - mx) * (ys[i]! - my); sxx += (xs[i]! - mx) ** 2; }
  const b = sxy / sxx;
  return { a: my - b * mx, b };
}

/**
 * What one stream takes on this nats-server, without IMGC: entries of a few sizes published by one
 * client as fast as acknowledgements come back (256 in flight, as a node's own route publishes), and
 * one at a time with the subject's last sequence expected (as a partition's owner publishes: one
 * round trip per entry). nats-server's CPU per entry from /proc.
 */
async function streamCeiling(nats: Nats): Promise<string> {
  process.stdout.write('· stream ceiling … ');
  const nc = await connect({ servers: nats.url });
  const rows: string[] = [];
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc, { timeout: 10_000 });
    const stream = `CEIL${process.pid}`;
    await jsm.streams.add({ name: stream, subjects: [`ceil${process.pid}.>`], num_replicas: 1 });
    const secs = flagNum(flags, 'ceiling-seconds', 3);
    for (const size of [512, 4096, 32_768]) {
      const payload = randomBytes(size);
      const watch = new ProcWatch(nats.pid);
      const self = process.cpuUsage();
      watch.start();
      const tA = now();
      let done = 0;
      let inflight = 0;
      await new Promise<void>((resolve, reject) => {
        const pump = (): void => {
          while (inflight < 256 && now() - tA < secs * 1000) {
            inflight++;
            js.publish(`ceil${process.pid}.a`, payload).then(() => { inflight--; done++; pump(); }, reject);
          }
          if (inflight === 0) resolve();
        };
        pump();
      });
      const el = (now() - tA) / 1000;
      const w = watch.stop();
      const c = process.cpuUsage(self);
      rows.push(`| ${fmt(size)} B, 256 in flight | ${fmt(done / el)} | ${fmt((done * size) / el / 2 ** 20)} | ${fmt(w.cpuPct)} | ${fmt((w.cpuPct / 100 / (done / el)) * 1e6)} | ${fmt(((c.user + c.system) / 1e4) / el)} | – |`);
    }
    // One at a time, fenced like a partition's route: the rate is one round trip per entry.
    const payload = randomBytes(4096);
    const watch = new ProcWatch(nats.pid);
    const self = process.cpuUsage();
    watch.start();
    const tA = now();
    let last = (await js.publish(`ceil${process.pid}.p`, payload)).seq;
    let done = 1;
    const rtts: number[] = [];
    while (now() - tA < secs * 1000) {
      const t = now();
      last = (await js.publish(`ceil${process.pid}.p`, payload, { expect: { lastSubjectSequence: last } })).seq;
      rtts.push(now() - t);
      done++;
    }
    const el = (now() - tA) / 1000;
    const w = watch.stop();
    const c = process.cpuUsage(self);
    rtts.sort((x, y) => x - y);
    const p50 = rtts[Math.floor(rtts.length / 2)] ?? NaN;
    rows.push(`| 4,096 B, one at a time, expected last sequence | ${fmt(done / el)} | ${fmt((done * 4096) / el / 2 ** 20)} | ${fmt(w.cpuPct)} | ${fmt((w.cpuPct / 100 / (done / el)) * 1e6)} | ${fmt(((c.user + c.system) / 1e4) / el)} | ${fmt(p50)} |`);
    await jsm.streams.delete(stream);
  } finally {
    await nc.close();
  }
  say('done');
  return [
    '### One stream on this nats-server, without IMGC',
    '',
    'Entries published by one client (this bench process) to one stream (file store, one replica): the ceiling of the ledger on',
    'this machine and what an entry costs nats-server. The cluster\'s ledger is one such stream, so this is its upper bound',
    'whatever the number of nodes.',
    '',
    '| entries | entries/s | MiB/s | nats CPU % | nats CPU µs/entry | publisher CPU % | round trip p50 ms |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

// ---- capacity ----

interface Held {
  target: number;
  /** Sockets open at the clients after the connect phase. */
  open: number;
  /** Connections each server counts (/status). */
  counts: number[];
  peak: number;
  failed: number;
  errors: string[];
  connectMs: number;
  serversCpu: number;
  natsCpu: number;
  agentsCpu: number;
  otherCpu: number;
  rssIdle: number[];
  rssHeld: number[];
  natsIdle: number;
  natsHeld: number;
  agentRss: number;
  probesOk: number;
  probesSent: number;
  dead: string[];
}

/**
 * Signs in `target` idle sockets over `servers` (client i on server i mod n) from `k` agents, agent
 * j binding to 127.0.0.(2+j); holds them, probes them, and closes them.
 */
async function hold(servers: Running[], statusPorts: number[], token: string, nats: Nats | undefined, target: number, k: number, concurrency: number, label: string): Promise<Held> {
  const pids = servers.map((s) => s.pid);
  await sleep(3000);
  const rssIdle = pids.map(rssBytes);
  const natsIdle = nats ? rssBytes(nats.pid) : NaN;
  say(`  idle RSS: ${fmt(sum(rssIdle) / 2 ** 20)} MiB (${rssIdle.map((r) => fmt(r / 2 ** 20)).join(', ')})${nats ? `, nats-server ${fmt(natsIdle / 2 ** 20)} MiB` : ''}`);
  const agents: driver.Agent[] = [];
  try {
    for (let i = 0; i < k; i++) agents.push(new driver.Agent());
    const perAgent = Math.ceil(target / k);
    const urls = servers.map((s) => s.url);
    const serversWatch = new ProcWatch(pids);
    const natsWatch = nats ? new ProcWatch(nats.pid) : undefined;
    const agentsWatch = new ProcWatch(agents.map((a) => a.pid));
    serversWatch.start();
    natsWatch?.start();
    agentsWatch.start();
    const tConnect = now();
    let connectDone = false;
    let peak = 0;
    const counts = (): Promise<number[]> => Promise.all(statusPorts.map((p) => getJson<NodeStatus>(p, '/status', token).then((st) => st.connections, () => NaN)));
    const progress = (async () => {
      for (let tick = 1; !connectDone; tick++) {
        while (!connectDone && now() - tConnect < tick * 10_000) await sleep(250);
        if (connectDone) break;
        const c = await counts();
        peak = Math.max(peak, sum(c));
        say(`  ${((now() - tConnect) / 1000).toFixed(0)} s: ${fmt(sum(c))} connections held (${c.map(fmt).join(', ')}); RSS ${fmt(sum(pids.map(rssBytes)) / 2 ** 20)} MiB`);
      }
    })();
    const deadlineMs = flagNum(flags, 'deadline', 900) * 1000;
    const parts = await Promise.all(agents.map((a, i) => {
      const args: CapConnectArgs = {
        url: urls[0]!, urls, label, offset: i * perAgent, count: Math.max(0, Math.min(perAgent, target - i * perAgent)),
        concurrency, deadlineMs, localAddress: `127.0.0.${2 + i}`,
      };
      return a.call<{ held: number; failed: number; ms: number; firstError: string }>('capConnect', args, deadlineMs + 120_000)
        .catch((e: Error) => ({ held: 0, failed: args.count, ms: now() - tConnect, firstError: `agent ${i}: ${e.message.split('\n')[0]}` }));
    }));
    const connectMs = now() - tConnect;
    const cpu = serversWatch.stop();
    const natsCpu = natsWatch?.stop();
    const agentsCpu = agentsWatch.stop();
    connectDone = true;
    await progress;
    const failed = sum(parts.map((p) => p.failed));
    say(`  connected ${fmt(sum(parts.map((p) => p.held)))} of ${fmt(target)} in ${(connectMs / 1000).toFixed(0)} s (${fmt(failed)} failed)`);
    await sleep(5000);
    const rssHeld = pids.map(rssBytes);
    const natsHeld = nats ? rssBytes(nats.pid) : NaN;
    const held = await counts();
    const verify = await Promise.all(agents.map((a) => a.call<{ sent: number; ok: number }>('capVerify', 25, 60_000).catch(() => ({ sent: 25, ok: 0 }))));
    const status = await Promise.all(agents.map((a) => a.call<{ open: number; errors: number }>('capStatus', null, 60_000).catch(() => ({ open: 0, errors: 0 }))));
    const agentRss = sum(agents.map((a) => rssBytes(a.pid)));
    await Promise.all(agents.map((a) => a.call('capClose', null, 120_000).catch(() => undefined)));
    const r: Held = {
      target, open: sum(status.map((x) => x.open)), counts: held, peak: Math.max(peak, sum(held)), failed,
      errors: [...new Set(parts.filter((p) => p.firstError).map((p) => p.firstError))].slice(0, 3), connectMs,
      serversCpu: cpu.cpuPct, natsCpu: natsCpu?.cpuPct ?? NaN, agentsCpu: agentsCpu.cpuPct,
      otherCpu: Math.max(0, cpu.machinePct - cpu.cpuPct - (natsCpu?.cpuPct ?? 0) - agentsCpu.cpuPct),
      rssIdle, rssHeld, natsIdle, natsHeld, agentRss,
      probesOk: sum(verify.map((v) => v.ok)), probesSent: sum(verify.map((v) => v.sent)),
      dead: servers.filter((x) => x.child.exitCode !== null || x.child.signalCode !== null).map((x) => readTail(x.logPath, 300)),
    };
    say(`  held ${fmt(r.open)} (servers count ${fmt(sum(held))}); RSS per connection ${fmt(perConnKiB(r))} KiB; probes ${r.probesOk}/${r.probesSent}`);
    return r;
  } finally {
    for (const a of agents) a.stop();
  }
}

const perConnKiB = (h: Held): number => (sum(h.rssHeld) - sum(h.rssIdle)) / Math.max(1, h.open) / 1024;

async function capacity(): Promise<void> {
  const target = flagNum(flags, 'target', 100_000);
  const n = flagNum(flags, 'nodes', 7);
  const k = flagNum(flags, 'agents', 8);
  const concurrency = flagNum(flags, 'concurrency', 50);
  const perNode = Math.ceil(target / n);
  const perAgent = Math.ceil(target / k);
  const limit = Math.min(19_500, perNode + 1000);
  const notes: string[] = [];
  if (perNode > 19_000) notes.push(`${perNode} connections per node is near the 20,000 open files of a process: use more nodes`);
  if (perAgent > 19_000) notes.push(`${perAgent} sockets per agent is near the 20,000 open files of a process: use more agents`);
  const baseAgents = Math.max(1, Math.ceil(perNode / perAgent));
  say(`bench:cluster --capacity: first the embedded service holding ${fmt(perNode)} (one node's share), then ${fmt(target)} sockets on ${n} nodes (~${fmt(perNode)} each), ${k} agents (~${fmt(perAgent)} each, from 127.0.0.2..127.0.0.${k + 1})`);
  const token = randomBytes(16).toString('hex');
  const limits = ['--max-connections', String(limit), '--max-connections-per-ip', String(limit)];
  // The baseline: one embedded process (no NATS) with one node's share, measured the same way in the same run.
  let base: Held | undefined;
  {
    const sp = await pickPort();
    const single = await startServer({ kind: 'service', workers, auth: 'open', extra: ['--status-port', String(sp), '--status-token', token, ...limits] });
    try {
      say('  embedded service up');
      base = await hold([single], [sp], token, undefined, perNode, baseAgents, concurrency, `capb${process.pid}`);
    } catch (e) {
      problems.push(`embedded baseline: ${(e as Error).message}`);
    } finally {
      await stopServer(single);
    }
  }
  const nats = await startNats();
  let cluster: Cluster | undefined;
  let held: Held | undefined;
  try {
    const tUp = now();
    cluster = await startCluster(nats, n, limits);
    say(`  cluster of ${n} up and placed in ${((now() - tUp) / 1000).toFixed(1)} s`);
    held = await hold(cluster.nodes, cluster.statusPorts, cluster.token, nats, target, k, concurrency, `cap${process.pid}`);
  } finally {
    if (cluster) await stopCluster(cluster);
    await stopNats(nats);
  }
  const h = held;
  const b = base;
  const mib = (x: number): string => fmt(x / 2 ** 20);
  const both = (f: (x: Held) => string): string => `${b ? f(b) : '–'} | ${f(h)}`;
  if (h.failed > 0) notes.push(`cluster: ${fmt(h.failed)} connects or sign-ins failed; first errors: ${h.errors.join(' | ')}`);
  if (b && b.failed > 0) notes.push(`embedded: ${fmt(b.failed)} connects or sign-ins failed; first errors: ${b.errors.join(' | ')}`);
  if (h.probesOk < h.probesSent) notes.push(`cluster: only ${h.probesOk} of ${h.probesSent} probe messages arrived within 5 s`);
  for (const d of h.dead) notes.push(`a node exited: ${d}`);
  const reached = h.open >= target;
  const ratio = b ? ` (${(perConnKiB(h) / perConnKiB(b)).toFixed(2)}× embedded)` : '';
  const rows: Array<[string, string]> = [
    ['processes holding the sockets', `1 | ${n}`],
    ['target', both((x) => fmt(x.target))],
    ['sockets held (open at the clients after the connect phase)', both((x) => `${fmt(x.open)}${x.open >= x.target ? ' (reached)' : ' (NOT reached)'}`)],
    ['connections counted by the servers (/status)', both((x) => `${fmt(sum(x.counts))}${x.counts.length > 1 ? ` (${x.counts.map(fmt).join(', ')})` : ''}`)],
    ['connects + sign-ins failed', both((x) => fmt(x.failed))],
    ['connect + sign-in phase', both((x) => `${(x.connectMs / 1000).toFixed(0)} s (${fmt(x.open / (x.connectMs / 1000))}/s)`)],
    ['CPU during it: servers (sum, % of one core)', both((x) => fmt(x.serversCpu))],
    ['CPU during it: nats-server', both((x) => fmt(x.natsCpu))],
    ['CPU during it: load generators (sum)', both((x) => fmt(x.agentsCpu))],
    ['CPU during it: other processes', both((x) => fmt(x.otherCpu))],
    ['RSS idle (sum over the servers)', both((x) => `${mib(sum(x.rssIdle))} MiB`)],
    ['RSS holding the sockets (sum)', both((x) => `${mib(sum(x.rssHeld))} MiB${x.rssHeld.length > 1 ? ` (${x.rssHeld.map(mib).join(', ')})` : ''}`)],
    ['**RSS per connection** (held − idle) / sockets', `${b ? `${fmt(perConnKiB(b))} KiB` : '–'} | **${fmt(perConnKiB(h))} KiB**${ratio}`],
    ['nats-server RSS idle → holding', both((x) => (Number.isFinite(x.natsIdle) ? `${mib(x.natsIdle)} → ${mib(x.natsHeld)} MiB` : '–'))],
    ['load generators\' RSS (sum, the client ends)', both((x) => `${mib(x.agentRss)} MiB`)],
    ['probe messages between held clients', both((x) => `${x.probesOk} of ${x.probesSent}`)],
  ];
  const md = [
    '## Capacity: concurrent signed-in sockets on a cluster of node processes',
    '',
    `Written by \`bench/cluster.ts --capacity\`. **${fmt(target)} idle sockets${reached ? '' : ' NOT'} held** (signed in with \`--auth open\`) by a cluster of ${n} node`,
    `processes and one nats-server, after the embedded service (one process, no NATS) held one node's share, ${fmt(perNode)}, in the same run`,
    `as the baseline. Every server runs \`--workers ${workers}\` with \`--max-connections\` and \`--max-connections-per-ip\` raised to ${fmt(limit)}`,
    `(a process may hold 20,000 open files). The sockets come from load-generator processes of up to ${fmt(perAgent)} each (${k} for the cluster,`,
    `${baseAgents} for the baseline), agent j binding its sockets to 127.0.0.(2+j), so that each source address has its own ${fmt(ephemeralPorts())}`,
    `ephemeral ports; client i connects to server i mod ${n}; ${concurrency} sign-ins in flight per agent. The servers\' connection counts`,
    'come from their /status; the probes are direct messages between held clients (in the cluster mostly across nodes).',
    '',
    `Machine and run: ${machine()}.`,
    '',
    `Reproduce: \`npm run build && node dist/bench/cluster.js ${process.argv.slice(2).join(' ')}\``,
    '',
    '| figure | embedded | cluster |',
    '|---|---:|---:|',
    ...rows.map(([x, y]) => `| ${x} | ${y} |`),
    '',
    ...notes.map((x) => `- ${x}`),
    ...(problems.length > 0 ? ['', ...problems.map((p) => `- problem: ${p}`)] : []),
  ].join('\n');
  say('');
  say(md);
  if (flags.has('write')) writeSection('clustercap', md);
}

function ephemeralPorts(): number {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return hi! - lo! + 1;
  } catch {
    return NaN;
  }
}

const sum = (xs: number[]): number => xs.reduce((s, x) => s + (Number.isFinite(x) && x > 0 ? x : 0), 0);

function writeSection(marker: string, markdown: string): void {
  const file = path.resolve(ROOT, flags.get('out') ?? 'docs/benchmarks.md');
  const begin = `<!-- ${marker}:begin -->`;
  const end = `<!-- ${marker}:end -->`;
  const doc = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# IMGC benchmarks\n';
  const block = `${begin}\n${markdown.trimEnd()}\n${end}`;
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  fs.writeFileSync(file, i >= 0 && j > i ? doc.slice(0, i) + block + doc.slice(j + end.length) : `${doc.trimEnd()}\n\n${block}\n`);
  say(`wrote the ${marker} section of ${path.relative(process.cwd(), file)}`);
}

// ---- replay: what a new node costs ----

async function replay(): Promise<void> {
  const total = flagNum(flags, 'messages', 100_000);
  const nAcc = flagNum(flags, 'accounts', 200);
  const window = 16;
  const nats = await startNats();
  try {
    const c = await startCluster(nats, 1);
    const accounts = Array.from({ length: nAcc }, (_, i) => openAccount('replay', i));
    let answered = 0;
    let sent = 0;
    const per = Math.ceil(total / nAcc);
    const pump = (cl: BenchClient): void => {
      while (cl.inflight < window && cl.got + cl.inflight < per) {
        cl.inflight++;
        sent++;
        cl.sendRaw(`{"cat":"chat","act":"chat","to":${JSON.stringify(accounts[(cl.idx + 1) % nAcc])},"msg":"replay ${sent} ${'x'.repeat(40)}","callback":"r"`);
      }
    };
    const handler = (cl: BenchClient, data: Buffer): void => {
      if (!data.includes('"callback":"r"')) return;
      cl.inflight--; cl.got++; answered++;
      pump(cl);
    };
    const many = await signInMany(c.nodes[0]!.url, accounts, handler, { concurrency: 50, deadlineMs: 60_000 });
    say(`· replay: ${fmt(total)} direct messages into a 1-node cluster …`);
    const tw = now();
    for (const cl of many.clients) pump(cl);
    while (answered < per * many.clients.length && now() - tw < 300_000) await sleep(50);
    const writeMs = now() - tw;
    await closeAll(many.clients);
    const nc = await connect({ servers: nats.url });
    const info = await (await jetstreamManager(nc)).streams.info(`IMGC_${c.name}`);
    await nc.close();
    const entries = info.state.messages;
    const bytes = info.state.bytes;
    say(`  written in ${(writeMs / 1000).toFixed(1)} s: ${fmt(entries)} ledger entries, ${(bytes / 1048576).toFixed(1)} MiB; a new node joins …`);
    const sp = await pickPort();
    const tj = now();
    const fresh = await startServer({ kind: 'service', workers, auth: 'open', extra: ['--cluster', nats.url, '--cluster-name', c.name, '--status-port', String(sp), '--status-token', c.token] }, 600_000);
    const joinMs = now() - tj;
    c.nodes.push(fresh);
    c.statusPorts.push(sp);
    await settled(c, 60_000);
    say(`  a new node replayed it and listened in ${(joinMs / 1000).toFixed(1)} s; the first node restarts on its replica …`);
    const restarted = await restartServer(c.nodes[0]!, 120_000);
    c.nodes[0] = restarted.running;
    await stopCluster(c);
    const writeRate = (per * many.clients.length) / (writeMs / 1000);
    const replayRate = (per * many.clients.length) / (joinMs / 1000);
    const md = [
      '## Cluster: what a new node costs (replaying the ledger)',
      '',
      `Written by \`bench/cluster.ts --replay\` on ${machine()}. One node of a cluster took`,
      `${fmt(per * many.clients.length)} direct messages from ${fmt(many.clients.length)} accounts (closed loop, ${window} in flight each, every one acknowledged: stored in the ledger);`,
      'then a node with an empty data directory joined: it replays the whole ledger into its replica before it listens.',
      '',
      '| figure | value |',
      '|---|---:|',
      `| messages written | ${fmt(per * many.clients.length)} in ${(writeMs / 1000).toFixed(1)} s (${fmt(writeRate)}/s) |`,
      `| ledger | ${fmt(entries)} entries, ${(bytes / 1048576).toFixed(1)} MiB (${fmt(bytes / (per * many.clients.length))} B per message) |`,
      `| new node: start to listening (replay included) | ${(joinMs / 1000).toFixed(1)} s (${fmt(replayRate)} messages/s, ${(replayRate / writeRate).toFixed(2)}× the rate they were written) |`,
      `| first node: restart on its replica (stop + start) | ${(restarted.stopMs / 1000).toFixed(1)} s + ${(restarted.startMs / 1000).toFixed(1)} s |`,
      '',
      'A new node\'s start grows with the ledger (nothing trims it yet: no snapshots); a node that restarts on its own replica',
      'replays only what it missed.',
    ].join('\n');
    say(md);
    if (flags.has('write')) writeSection('clusterreplay', md);
  } finally {
    await stopNats(nats);
  }
}

async function main(): Promise<void> {
  if (replayMode) await replay();
  else if (capacityMode) await capacity(); else await throughput();
  say(`bench:cluster: done in ${((now() - t0) / 1000).toFixed(0)} s`);
  process.exit(0);
}

main().catch((e: Error) => {
  say(`bench:cluster failed: ${e.stack ?? e.message}`);
  process.exit(1);
});
