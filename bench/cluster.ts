/**
 * `npm run bench:cluster`: cluster mode (--cluster, on one nats-server with JetStream) on 1, 2 and 3
 * nodes against the embedded service (one process, no NATS), all in one run, each configuration with
 * fresh processes, a fresh cluster name and fresh data directories. The embedded service is measured
 * first and again last: the second is the noise of the run, not a baseline of its own.
 *
 *   node dist/bench/cluster.js [--nodes 1,2,3] [--load spread|one|both] [--workers 1] [--pairs 500] [--window 4]
 *       [--group 20] [--clients 2000] [--fanout-window 16] [--duration 8] [--warmup 2] [--no-repeat] [--no-ceiling]
 *       [--write [--out FILE]]
 *
 * - pairs: both accounts of a pair send, closed loop (window per sender);
 * - group fan-out: groups of `--group` members, the creator sends, closed loop (window per group).
 * `--load` places the clients: `spread` puts a pair's two accounts on different nodes (pair p on
 * nodes p and p+1) and a group's members round-robin over the nodes; `one` signs every client in on
 * node 1 of the N nodes (the others hold no socket: what they spend is what they pay for
 * conversations they take no part in). `both` (the default) measures the spread clusters, then the
 * same node counts with all the load on node 1; the one-node cluster, the same load either way, is
 * measured once and is the first point of both.
 * CPU per delivery over the cluster = (CPU time of every node process + nats-server's) / deliveries,
 * from /proc/<pid>/stat over the measured window (node 1 also apart); the ledger's entries and bytes,
 * what JetStream stores and nats-server's bytes in and out from its monitoring port (/jsz, /varz)
 * over the same window. Only the wire, /status and /proc are read, so the bench measures any build
 * that keeps them.
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
 * `--write` puts the results into docs/benchmarks.md (or `--out FILE`) between `<!-- cluster:begin -->`
 * and `<!-- cluster:end -->`, and the figures by load placement and node count (CPU per delivery over
 * the cluster against one node, one node against the embedded service) between
 * `<!-- clusterload:begin -->` and `<!-- clusterload:end -->` (capacity: `clustercap`; replay:
 * `clusterreplay`), leaving the rest of the file as it is.
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

/**
 * Where the clients sign in: `spread` over the nodes (a pair's two accounts on different nodes, a
 * group's members round-robin), or `one`: every client on node 1, the other nodes holding no socket.
 */
type Load = 'spread' | 'one';

/** `nodes` 0 is the embedded service. */
interface Config { name: string; nodes: number; load: Load }

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
      // With all the load on node 1 the driver knows only its URL (every account signs in there); CPU is still every node's.
      const urls = cfg.load === 'one' ? [cluster.nodes[0]!.url] : cluster.nodes.map((s) => s.url);
      ct = { urls, pids: cluster.nodes.map((s) => s.pid), natsPid: nats.pid, natsMonitor: nats.monitor, stream: `IMGC_${cluster.name}` };
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
  const node = usPer(f['server CPU %'], d);
  const natsUs = f['nats CPU %'] === undefined ? 0 : usPer(f['nats CPU %'], d);
  return { node, nats: natsUs, total: node + natsUs };
}

/** CPU µs per event from a CPU % (of one core) and a rate of events per second. */
const usPer = (cpuPct: number | undefined, perS: number): number => ((cpuPct ?? NaN) / 100 / perS) * 1e6;

function withDerived(r: RunResult | undefined, nodes: number): RunResult | undefined {
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
    extra['JetStream stored B/msg sent'] = ((f['JetStream stored MB/s'] ?? NaN) * 1e6) / sent;
  }
  if (f['node 1 CPU %'] !== undefined) {
    extra['node 1 CPU µs/delivery'] = usPer(f['node 1 CPU %'], f['deliveries/s'] ?? NaN);
    // One node has no other nodes: left out rather than shown as 0.
    if (nodes > 1) extra['other nodes CPU µs/delivery'] = pd.node - extra['node 1 CPU µs/delivery'];
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
  const loads = loadsOf(flags.get('load'));
  const configs = configsOf(nodeCountsOf(flags.get('nodes')), loads);
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
  const pairsTitle = `pairs (${pairsN} pairs, closed loop, window ${flagNum(flags, 'window', 4)}/client; load spread: each pair's two accounts on different nodes; all on node 1: both there)`;
  const fanTitle = `group fan-out (${Math.floor(clients / group)} groups of ${group}, closed loop, window ${flagNum(flags, 'fanout-window', 16)}/group; load spread: members round-robin over the nodes; all on node 1: every member there)`;
  const pairs = results.map((r) => withDerived(r.pairs, r.config.nodes));
  const fan = results.map((r) => withDerived(r.fanout, r.config.nodes));
  const scenarios: Scenario[] = [['pairs', pairs], [`fan-out ${group}`, fan]];

  // The summary: the figures the issue asks for, as ratios against the embedded service of this run.
  const sum: string[] = ['| scenario | figure | ' + cols.join(' | ') + ' |', `|---|---|${cols.map(() => '---:').join('|')}|`];
  const rows: Array<[string, string]> = [['deliveries/s', 'deliveries/s'], ['p99 ms', 'p99 ms'], ['CPU µs/delivery (nodes + nats)', 'CPU µs per delivery (nodes + nats-server)'],
    ['node CPU µs/delivery', '  of which the nodes'], ['nats CPU µs/delivery', '  of which nats-server']];
  for (const [scen, rs] of scenarios) {
    for (const [key, label] of rows) sum.push(`| ${scen} | ${label} | ${rs.map((r, i) => cell(r?.figures[key], rs[0]?.figures[key], i === 0)).join(' | ')} |`);
  }
  const fits: string[] = [];
  for (const load of loads) {
    for (const [scen, rs] of scenarios) {
      const pts = seriesOf(results, load).map((i) => ({ n: results[i]!.config.nodes, y: rs[i]?.figures['node CPU µs/msg sent'] ?? NaN, z: rs[i]?.figures['nats CPU µs/msg sent'] ?? NaN }))
        .filter((p) => Number.isFinite(p.y));
      const base = rs[0]?.figures['node CPU µs/msg sent'];
      const fit = linearFit(pts.map((p) => p.n), pts.map((p) => p.y));
      if (fit) {
        fits.push(`| ${scen} | ${LOAD_NAME[load]} | ${fmt(base)} | ${fmt(fit.a)} + ${fmt(fit.b)} · N | ${pts.map((p) => `${p.n}: ${fmt(p.y)}`).join(', ')} | ${pts.map((p) => `${p.n}: ${fmt(p.z)}`).join(', ')} |`);
      }
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
    'window, divided by the deliveries in it. In pairs every message is one delivery; in fan-out one per receiving member.',
    'With one node there is no other node: the pairs are on the same node (that column is the cost of the ledger alone).',
    '',
    '### CPU per message sent against the number of nodes',
    '',
    'Node CPU (sum over the nodes) per message sent, fitted to a + b·N by least squares over the cluster columns of one load',
    'placement (the one-node cluster in both): b is what one more node adds per message (with all the load on node 1, what a',
    'node that takes no part in the conversations pays), a what is paid once (accepting the request, deciding, publishing,',
    'writing to the recipients\' sockets).',
    '',
    '| scenario | load | embedded µs/msg | cluster fit µs/msg | cluster measured (N: µs/msg) | nats-server (N: µs/msg) |',
    '|---|---|---:|---:|---|---|',
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
  const placement = placementSection(results, scenarios, loads);
  say('');
  say(md);
  say('');
  say(placement);
  if (flags.has('write')) {
    writeSection('cluster', md);
    writeSection('clusterload', placement, 'cluster');
  }
}

// ---- load placement: what the issue's figures are read from ----

type Scenario = [string, (RunResult | undefined)[]];

const LOAD_NAME: Record<Load, string> = { spread: 'load spread', one: 'all load on node 1' };

/** `--load spread|one|both` (both: spread first, then one, in the same run). */
function loadsOf(v: string | undefined): Load[] {
  if (v === undefined || v === 'both') return ['spread', 'one'];
  if (v === 'spread' || v === 'one') return [v];
  return usage(`--load wants spread, one or both, not ${v}`);
}

/** `--nodes 1,2,3`: distinct node counts, in the order given. */
function nodeCountsOf(v: string | undefined): number[] {
  const ns = (v ?? '1,2,3').split(',').map(Number);
  if (ns.some((n) => !Number.isInteger(n) || n < 1 || n > 16)) return usage(`--nodes wants node counts from 1 to 16 separated by commas, not ${v}`);
  return [...new Set(ns)];
}

/** An operator's mistake on the command line: one plain line, exit 2, before anything is started. */
function usage(line: string): never {
  say(`bench:cluster: ${line}`);
  process.exit(2);
}

/**
 * The embedded service, the cluster of one node, the spread clusters, then the clusters with all load
 * on node 1, and the embedded service again. With one node both placements are the same load, so the
 * one-node cluster is measured once and is the first point of both series.
 */
function configsOf(nodeCounts: number[], loads: Load[]): Config[] {
  const out: Config[] = [{ name: 'embedded', nodes: 0, load: 'spread' }];
  if (nodeCounts.includes(1)) out.push({ name: 'cluster ×1', nodes: 1, load: loads[0]! });
  for (const load of loads) {
    for (const n of nodeCounts) if (n > 1) out.push({ name: load === 'one' ? `×${n}, all on node 1` : `cluster ×${n}`, nodes: n, load });
  }
  if (!flags.has('no-repeat')) out.push({ name: 'embedded again', nodes: 0, load: 'spread' });
  return out;
}

/** Indices of one placement's clusters in `results`, by node count: the one-node cluster, then that placement's larger ones. */
function seriesOf(results: Measured[], load: Load): number[] {
  return results.map((r, i) => ({ c: r.config, i }))
    .filter(({ c }) => c.nodes === 1 || (c.nodes > 1 && c.load === load))
    .sort((x, y) => x.c.nodes - y.c.nodes)
    .map(({ i }) => i);
}

const ratio = (v: number | undefined, base: number | undefined): string =>
  (v !== undefined && base !== undefined && Number.isFinite(v) && Number.isFinite(base) && base > 0 ? `${(v / base).toFixed(2)}×` : '–');

const CPU_KEY = 'CPU µs/delivery (nodes + nats)';

/**
 * The figures issue 21 is judged by, from this run's measurements: CPU per delivery over the whole
 * cluster (every node and nats-server) against the one-node cluster, with the load spread and with
 * all of it on node 1, and the one-node cluster's deliveries against the embedded service.
 */
function placementSection(results: Measured[], scenarios: Scenario[], loads: Load[]): string {
  const one = results.findIndex((r) => r.config.nodes === 1);
  const head = ['| figure | nodes | ' + scenarios.map(([s]) => s).join(' | ') + ' | issue 21 asks |', `|---|---:|${scenarios.map(() => '---:').join('|')}|---|`];
  const line = (label: string, n: number | string, f: (rs: (RunResult | undefined)[]) => string, asks: string): string =>
    `| ${label} | ${n} | ${scenarios.map(([, rs]) => f(rs)).join(' | ')} | ${asks} |`;
  if (one >= 0) head.push(line('one-node cluster: deliveries/s against the embedded service', 1, (rs) => ratio(rs[one]?.figures['deliveries/s'], rs[0]?.figures['deliveries/s']), '≥ 0.8×'));
  for (const load of [...loads].reverse()) {
    for (const i of seriesOf(results, load).filter((k) => k !== one)) {
      const n = results[i]!.config.nodes;
      const asks = load === 'one' ? (n === 3 ? '≤ 1.2×' : '') : '≤ 1.3× (1 to 4 nodes)';
      head.push(line(`${LOAD_NAME[load]}: CPU per delivery against 1 node`, n, (rs) => ratio(rs[i]?.figures[CPU_KEY], rs[one]?.figures[CPU_KEY]), asks));
      head.push(line(`${LOAD_NAME[load]}: deliveries/s against 1 node`, n, (rs) => ratio(rs[i]?.figures['deliveries/s'], rs[one]?.figures['deliveries/s']), ''));
    }
  }
  const again = results.findIndex((r, i) => i > 0 && r.config.nodes === 0);
  const drift = again > 0
    ? `The embedded service measured again at the end of the run delivered ${scenarios.map(([s, rs]) => `${ratio(rs[again]?.figures['deliveries/s'], rs[0]?.figures['deliveries/s'])} (${s})`).join(' and ')} of the first: the noise of this run.`
    : 'The embedded service was measured once (`--no-repeat`).';
  const details = loads.map((load) => seriesTable(results, scenarios, load)).filter((t) => t !== '');
  return [
    '## Cluster: CPU per delivery as nodes are added, with the load spread and all on one node',
    '',
    'Written by `bench/cluster.ts` from the same run as "Cluster mode against the embedded service" above (the same machine line,',
    'the same measurements). **CPU per delivery over the cluster** = CPU time (utime + stime from /proc/<pid>/stat) of every node',
    'process and of nats-server over the measured window, divided by the deliveries in it. **Load spread**: a pair\'s two accounts',
    'sign in on different nodes, a group\'s members round-robin over the nodes. **All load on node 1**: every client signs in on',
    'node 1 of the N nodes (a pair\'s two accounts, all of a group\'s members); the other nodes hold no socket, so what they spend',
    'is what they pay for conversations they take no part in. The one-node cluster is one measurement, the first point of both.',
    '',
    ...(one >= 0 ? head : ['No one-node cluster in this run (`--nodes` without 1): no ratios against one node.']),
    '',
    drift,
    '',
    ...details,
  ].join('\n');
}

/** One placement's figures by node count, each against the one-node cluster. */
function seriesTable(results: Measured[], scenarios: Scenario[], load: Load): string {
  const idx = seriesOf(results, load);
  if (idx.length === 0 || (load === 'one' && idx.every((i) => results[i]!.config.nodes === 1))) return '';
  const rows: Array<[string, string]> = [
    ['deliveries/s', 'deliveries/s'],
    [CPU_KEY, '**CPU µs per delivery over the cluster** (nodes + nats-server)'],
    ['node 1 CPU µs/delivery', '  of which node 1'],
    ['other nodes CPU µs/delivery', '  of which the other nodes'],
    ['nats CPU µs/delivery', '  of which nats-server'],
    ['nats B in+out/msg sent', 'nats-server bytes in + out per message sent'],
    ['ledger B/msg sent', 'ledger bytes per message sent'],
    ['JetStream stored B/msg sent', 'JetStream bytes stored per message sent (every stream)'],
    ['p99 ms', 'p99 ms (closed loop, mostly queueing)'],
  ];
  const base = idx[0]!;
  const lines = [
    `### ${LOAD_NAME[load]}: by number of nodes (ratios against ${results[base]!.config.nodes} node${results[base]!.config.nodes > 1 ? 's' : ''})`,
    '',
    `| scenario | figure | ${idx.map((i) => `${results[i]!.config.nodes} node${results[i]!.config.nodes > 1 ? 's' : ''}`).join(' | ')} |`,
    `|---|---|${idx.map(() => '---:').join('|')}|`,
  ];
  for (const [scen, rs] of scenarios) {
    for (const [key, label] of rows) lines.push(`| ${scen} | ${label} | ${idx.map((i) => cell(rs[i]?.figures[key], rs[base]?.figures[key], i === base)).join(' | ')} |`);
  }
  lines.push('');
  return lines.join('\n');
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

/**
 * Puts `markdown` between the `marker` pair of docs/benchmarks.md (or `--out`), leaving the rest of the
 * file as it is. A section the file does not have yet goes right after the `after` section when there
 * is one, else at the end.
 */
function writeSection(marker: string, markdown: string, after?: string): void {
  const file = path.resolve(ROOT, flags.get('out') ?? 'docs/benchmarks.md');
  const begin = `<!-- ${marker}:begin -->`;
  const end = `<!-- ${marker}:end -->`;
  const doc = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# IMGC benchmarks\n';
  const block = `${begin}\n${markdown.trimEnd()}\n${end}`;
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  const afterEnd = after === undefined ? -1 : doc.indexOf(`<!-- ${after}:end -->`);
  let next: string;
  if (i >= 0 && j > i) next = doc.slice(0, i) + block + doc.slice(j + end.length);
  else if (afterEnd >= 0) {
    const k = afterEnd + `<!-- ${after}:end -->`.length;
    next = `${doc.slice(0, k)}\n\n${block}${doc.slice(k)}`;
  } else next = `${doc.trimEnd()}\n\n${block}\n`;
  fs.writeFileSync(file, next);
  say(`wrote the ${marker} section of ${path.relative(process.cwd(), file)}`);
}

// ---- replay: what a new node costs ----

async function replay(): Promise<void> {
  const total = flagNum(flags, 'messages', 100_000);
  const nAcc = flagNum(flags, 'accounts', 200);
  const window = 16;
  const nats = await startNats();
  try {
    // Snapshots looked at every second, so the ledger is trimmed soon after the writing stops.
    const snap = ['--cluster-snapshot-ms', '1000', '--cluster-snapshot-records', String(Math.max(1000, Math.floor(total / 20))), '--cluster-snapshot-entries', '50'];
    const c = await startCluster(nats, 1, snap);
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
    const jsm = await jetstreamManager(nc);
    const streamInfo = () => jsm.streams.info(`IMGC_${c.name}`);
    const info = await streamInfo();
    const entries = info.state.messages;
    const bytes = info.state.bytes;
    say(`  written in ${(writeMs / 1000).toFixed(1)} s: ${fmt(entries)} ledger entries, ${(bytes / 1048576).toFixed(1)} MiB; waiting for the snapshots and the trim …`);
    // The snapshots are written and the ledger trimmed below them (a few looks of the policy).
    // Until the ledger holds less than a tenth of what was written (every partition's snapshot is
    // written again once its few last records lag the ledger), or two minutes.
    const tt = now();
    let trimmed = await streamInfo();
    while (trimmed.state.messages > entries / 10 && now() - tt < 120_000) { await sleep(500); trimmed = await streamInfo(); }
    const trimMs = now() - tt;
    await nc.close();
    say(`  ledger trimmed to ${fmt(trimmed.state.messages)} entries, ${(trimmed.state.bytes / 1048576).toFixed(1)} MiB (from entry ${fmt(trimmed.state.first_seq)}) after ${(trimMs / 1000).toFixed(1)} s; a new node joins …`);
    const sp = await pickPort();
    const tj = now();
    const fresh = await startServer({ kind: 'service', workers, auth: 'open', extra: ['--cluster', nats.url, '--cluster-name', c.name, '--status-port', String(sp), '--status-token', c.token, ...snap] }, 600_000);
    const joinMs = now() - tj;
    c.nodes.push(fresh);
    c.statusPorts.push(sp);
    await settled(c, 600_000);
    // … and the new node serves its share (the others hand partitions over once it is seen).
    for (;;) {
      const st = await getJson<NodeStatus>(sp, '/status', c.token);
      if (st.cluster.serving.length > 0) { await settled(c, 600_000); break; }
      if (now() - tj > 600_000) throw new Error('the new node got no partition');
      await sleep(100);
    }
    const servedMs = now() - tj;
    const dirBytes = (dir: string): number => Number(execSync(`du -sb ${JSON.stringify(dir)} | cut -f1`).toString().trim());
    const stores = c.nodes.map((n) => dirBytes(n.dataDir));
    say(`  a new node listened in ${(joinMs / 1000).toFixed(1)} s and served its partitions in ${(servedMs / 1000).toFixed(1)} s; the first node restarts on its replica …`);
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
      'the nodes wrote their snapshots (`--cluster-snapshot-ms 1000`) and the ledger was trimmed below them; then a node with an',
      'empty data directory joined: it starts from the shared snapshot, replays what came after, and loads the partitions',
      'it takes over from their snapshots.',
      '',
      '| figure | value |',
      '|---|---:|',
      `| messages written | ${fmt(per * many.clients.length)} in ${(writeMs / 1000).toFixed(1)} s (${fmt(writeRate)}/s) |`,
      `| ledger before the trim | ${fmt(entries)} entries, ${(bytes / 1048576).toFixed(1)} MiB (${fmt(bytes / (per * many.clients.length))} B per message) |`,
      `| ledger after the trim | ${fmt(trimmed.state.messages)} entries, ${(trimmed.state.bytes / 1048576).toFixed(2)} MiB (trimmed ${(trimMs / 1000).toFixed(1)} s after the writing stopped) |`,
      `| new node: start to listening | ${(joinMs / 1000).toFixed(1)} s (${fmt(replayRate)} messages/s of history, ${(replayRate / writeRate).toFixed(2)}× the rate they were written) |`,
      `| new node: start to serving its partitions (loaded from their snapshots) | ${(servedMs / 1000).toFixed(1)} s |`,
      `| data directories after the join (node 1, the new node) | ${stores.map((b) => `${(b / 1048576).toFixed(1)} MiB`).join(', ')} |`,
      `| first node: restart on its replica (stop + start) | ${(restarted.stopMs / 1000).toFixed(1)} s + ${(restarted.startMs / 1000).toFixed(1)} s |`,
      '',
      'A new node\'s start no longer replays the history: it loads the shared snapshot (states and memberships) and its share of',
      'the partitions\' snapshots; the ledger holds what came after the snapshots.',
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
