/**
 * The status server of the real service (`--status-port`): figures that follow what clients do,
 * readiness, Prometheus text, the bearer token, and the online backup route.
 */
import { expect } from 'chai';
import { existsSync, statSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { accountsReady, newAccount } from './support/accounts';
import { Client, isNotice, sleep } from './support/client';
import { freePort, startServer, statusToken, tempDir, type ServerHandle } from './support/server';
import type { StatusSnapshot } from '../src/status/snapshot';

const VERSION = (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

interface Answer { status: number; headers: Headers; text: string; json: any }

/** The token `http` sends when the call gives no authorization of its own (the first suite's server's). */
let defaultToken: string | undefined;

async function http(port: number, path: string, init: RequestInit = {}): Promise<Answer> {
  const headers = new Headers(init.headers);
  if (defaultToken !== undefined && !headers.has('authorization')) headers.set('authorization', `Bearer ${defaultToken}`);
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { ...init, headers });
  const text = await res.text();
  let json: unknown;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, text, json };
}

async function status(port: number, token?: string): Promise<StatusSnapshot> {
  const a = await http(port, '/status', token ? { headers: { authorization: `Bearer ${token}` } } : {});
  expect(a.status, a.text).to.equal(200);
  return a.json as StatusSnapshot;
}

/** Polls /status until `check` holds (figures follow sockets asynchronously); returns the last snapshot. */
async function statusUntil(port: number, check: (s: StatusSnapshot) => boolean, what: string, ms = 5000): Promise<StatusSnapshot> {
  const deadline = Date.now() + ms;
  let s = await status(port);
  while (!check(s)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last /status: ${JSON.stringify(s)}`);
    await sleep(50);
    s = await status(port);
  }
  return s;
}

// NaN in any case: Prometheus reads the value with Go's ParseFloat, which takes it case-insensitively, and
// prom-client writes a gauge with no sample yet (the event-loop lag right after start) as `Nan`.
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? (-?(?:\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|[Nn][Aa][Nn]|\+Inf|-Inf)$/;

interface Parsed { types: Map<string, string>; helps: Set<string>; samples: Array<{ name: string; labels: string; value: number }> }

/** Parses Prometheus text strictly: every line is a HELP, a TYPE or a sample that follows its TYPE. */
function parseMetrics(text: string): Parsed {
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Parsed['samples'] = [];
  const closed = new Set<string>();
  let current: string | undefined;
  expect(text.endsWith('\n'), 'ends with a newline').to.equal(true);
  for (const line of text.slice(0, -1).split('\n')) {
    // prom-client separates families with an empty line, which the format allows.
    if (line === '') continue;
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line);
    if (help) { helps.add(help[1]!); continue; }
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      expect(types.has(type[1]!), `one TYPE line for ${type[1]}`).to.equal(false);
      expect(helps.has(type[1]!), `HELP before TYPE for ${type[1]}`).to.equal(true);
      if (current) closed.add(current);
      current = type[1]!;
      types.set(current, type[2]!);
      continue;
    }
    const m = SAMPLE.exec(line);
    expect(m, `sample line: ${JSON.stringify(line)}`).to.not.equal(null);
    // A histogram's samples are its _bucket, _sum and _count series.
    const name = current !== undefined && types.get(current) === 'histogram' ? m![1]!.replace(/_(bucket|sum|count)$/, '') : m![1]!;
    expect(name, `sample ${m![1]!} grouped under its TYPE`).to.equal(current);
    expect(closed.has(name)).to.equal(false);
    samples.push({ name: m![1]!, labels: m![2] ?? '', value: Number(m![3]) });
  }
  for (const [name, kind] of types) if (kind === 'counter') expect(name, 'counter names end in _total').to.match(/_total$/);
  return { types, helps, samples };
}

function value(p: Parsed, name: string, labels = ''): number | undefined {
  return p.samples.find((s) => s.name === name && s.labels === labels)?.value;
}

describe('status server (--status-port)', function () {
  this.timeout(30_000);
  let srv: ServerHandle;
  let sport: number;
  const clients: Client[] = [];
  const connect = async (): Promise<Client> => { const c = await Client.connect(srv.url); clients.push(c); return c; };

  before(async () => {
    await accountsReady();
    sport = await freePort();
    srv = await startServer(['--status-port', String(sport), '--workers', '2']);
    // No --status-token: the server generated one into its data directory.
    defaultToken = statusToken(srv);
    expect(defaultToken, 'generated status token').to.be.a('string');
  });
  afterEach(async () => { await Promise.all(clients.splice(0).map((c) => c.close())); });
  after(async () => { await srv?.stop(); });

  it('answers /healthz and /readyz once the service serves', async () => {
    const h = await http(sport, '/healthz');
    expect(h.status).to.equal(200);
    expect(h.json).to.deep.equal({ ok: true });
    const r = await http(sport, '/readyz');
    expect(r.status, r.text).to.equal(200);
    expect(r.json).to.include({ ready: true });
  });

  it('/status reports version, uptime, readiness and every worker thread', async () => {
    const s = await status(sport);
    expect(s.version).to.equal(VERSION);
    expect(s.ready).to.equal(true);
    expect(s.uptimeSeconds).to.be.a('number').and.at.least(0);
    expect(s.workers).to.have.length(2);
    const threads = new Set<number>();
    for (const [i, w] of s.workers.entries()) {
      expect(w.index).to.equal(i);
      expect(w.up).to.equal(true);
      expect(w.responsive).to.equal(true);
      expect(w.threadId).to.be.a('number').and.above(0);
      threads.add(w.threadId!);
      expect(Date.parse(w.startedAt!)).to.be.at.most(Date.now());
      expect(w.mailboxDepth).to.be.a('number').and.at.least(0);
      expect(w.groups).to.be.a('number');
      expect(w.processed).to.be.a('number');
    }
    expect(threads.size, 'distinct thread ids').to.equal(2);
    expect(s.statsComplete).to.equal(true);
    expect(s.unresponsiveWorkers).to.deep.equal([]);
    expect(s.restarts).to.deep.equal({ total: 0, max: 5, windowMs: 60_000 });
    expect(s.chain).to.equal(null);
  });

  it('connections and accounts follow sockets; messages in/out and stored messages follow chatting', async () => {
    const before = await statusUntil(sport, (s) => s.connections === 0, 'no connections');
    const [a, b, c] = await Promise.all([connect(), connect(), connect()]);
    await statusUntil(sport, (s) => s.connections === 3, '3 connections');

    const alice = newAccount();
    const carol = newAccount();
    const away = newAccount(); // never signs in: what is sent to it is kept
    await a.signIn(alice);
    await c.signIn(carol);
    await statusUntil(sport, (s) => s.accounts === 2, '2 accounts signed in');

    // Alice writes to the away account: stored once in their conversation's log, acknowledged to Alice once durable.
    const n = 5;
    for (let i = 0; i < n; i++) a.request({ act: 'chat', to: away.address, msg: `m${i}`, mid: `k${i}` });
    await a.nextN(n, isNotice('chat', 'chat'), 5000, 'chat acks');
    // Alice to Carol (online): delivered, written out.
    a.request({ act: 'chat', to: carol.address, msg: 'hi' });
    await c.next((f) => f.type === 'message' && f.msg === 'hi');

    const appended = (x: StatusSnapshot): number => Number((x.delivery as { appended?: number } | null)?.appended ?? 0);
    const s = await statusUntil(sport, (x) => appended(x) >= appended(before) + n + 1, `${n + 1} more stored messages`);
    expect(s.messages.inTotal - before.messages.inTotal, 'frames in').to.be.at.least(2 + n + 1);
    // Frames out counts what the node routes (acks, pushes, backlogs); a connection's own notices may not count.
    expect(s.messages.outTotal - before.messages.outTotal, 'frames out').to.be.at.least(n + 1);
    expect(s.messages.inPerSecond, 'in per second').to.be.above(0);
    expect(s.messages.outPerSecond, 'out per second').to.be.above(0);
    expect(s.delivery, 'the delivery actor reports its store').to.have.nested.property('store.backend', 'lmdb');
    expect(Number((s.delivery as { store: { lastOffset: number } }).store.lastOffset), 'store offsets').to.be.at.least(n + 1);

    // Groups: a created group shows as resident.
    a.request({ cat: 'group', act: 'create', list: [carol.address], callback: 'g1' });
    await a.next(isNotice('group', 'create'), 5000, 'group created');
    await statusUntil(sport, (x) => x.groups.resident >= before.groups.resident + 1, 'one more group');

    await Promise.all([a.close(), b.close()]);
    const after = await statusUntil(sport, (x) => x.connections === 1, '1 connection after two closed');
    expect(after.accounts).to.equal(1);
  });

  it('/metrics is Prometheus text with the same figures, per-worker labels and _total counters', async () => {
    const c = await connect();
    await statusUntil(sport, (s) => s.connections === 1, '1 connection');
    const a = await http(sport, '/metrics');
    expect(a.status).to.equal(200);
    expect(a.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
    const p = parseMetrics(a.text);
    expect(value(p, 'imgc_connections')).to.equal(1);
    expect(value(p, 'imgc_ready')).to.equal(1);
    expect(p.types.get('imgc_frames_in_total')).to.equal('counter');
    expect(p.types.get('imgc_frames_out_total')).to.equal('counter');
    expect(p.types.get('imgc_worker_restarts_total')).to.equal('counter');
    expect(p.types.get('imgc_connections')).to.equal('gauge');
    for (const w of ['0', '1']) {
      expect(value(p, 'imgc_worker_up', `{worker="${w}"}`), `worker ${w} up`).to.equal(1);
      expect(value(p, 'imgc_worker_mailbox_depth', `{worker="${w}"}`)).to.be.a('number');
      expect(value(p, 'imgc_worker_processed_total', `{worker="${w}"}`)).to.be.a('number');
    }
    expect(p.samples.find((s) => s.name === 'imgc_info')!.labels).to.contain(`version="${VERSION}"`);

    const in0 = value(p, 'imgc_frames_in_total')!;
    const someone = newAccount();
    await c.signIn(someone);
    const p2 = parseMetrics((await http(sport, '/metrics')).text);
    expect(value(p2, 'imgc_frames_in_total')!).to.be.above(in0);
    expect(value(p2, 'imgc_accounts_signed_in')).to.equal(1);
  });

  it('unknown paths are 404 JSON, wrong methods 405 with Allow', async () => {
    const nf = await http(sport, '/nope');
    expect(nf.status).to.equal(404);
    expect(nf.headers.get('content-type')).to.match(/^application\/json/);
    expect(nf.json).to.have.property('error');
    const wm = await http(sport, '/status', { method: 'POST' });
    expect(wm.status).to.equal(405);
    expect(wm.headers.get('allow')).to.contain('GET');
    const wb = await http(sport, '/backup');
    expect(wb.status).to.equal(405);
    expect(wb.headers.get('allow')).to.equal('POST');
  });

  it('POST /backup copies the data dir online into a new directory', async () => {
    const bad = await http(sport, '/backup?dest=relative/dir', { method: 'POST' });
    expect(bad.status).to.equal(400);
    const dest = join(tempDir('imgc-status-backup-'), 'copy');
    try {
      const r = await http(sport, `/backup?dest=${encodeURIComponent(dest)}`, { method: 'POST' });
      expect(r.status, r.text).to.equal(200);
      expect(r.json).to.include({ ok: true, dest });
      expect(existsSync(join(dest, 'store')), 'the store copied').to.equal(true);
      // The server's key stays readable by its owner alone in the copy.
      expect(statSync(join(dest, 'server-key.seed')).mode & 0o077, 'key mode').to.equal(0);
    } finally {
      rmSync(join(dest, '..'), { recursive: true, force: true });
    }
  });
});

describe('status server with --status-token', function () {
  this.timeout(30_000);
  let srv: ServerHandle;
  let sport: number;
  const token = 'Tok-' + Math.random().toString(36).slice(2);

  before(async () => {
    sport = await freePort();
    defaultToken = undefined;
    srv = await startServer(['--status-port', String(sport), '--workers', '1'], { env: { IMGC_STATUS_TOKEN: token } });
  });
  after(async () => { await srv?.stop(); });

  it('refuses requests without the right bearer token with 401; the probes need none', async () => {
    for (const path of ['/status', '/metrics', '/nope']) {
      const none = await http(sport, path);
      expect(none.status, `${path} without a token`).to.equal(401);
      expect(none.headers.get('www-authenticate')).to.match(/^Bearer/);
    }
    expect((await http(sport, '/backup', { method: 'POST' })).status, 'POST /backup without a token').to.equal(401);
    expect((await http(sport, '/healthz')).status, '/healthz without a token').to.equal(200);
    expect((await http(sport, '/readyz')).status, '/readyz without a token').to.equal(200);
    // The given token is used as is: nothing is generated into the data directory.
    expect(existsSync(join(srv.dataDir, 'status-token')), 'no generated token file').to.equal(false);
    for (const h of [`Bearer ${token}x`, `Bearer ${token.slice(0, -1)}`, `Basic ${token}`, token, 'Bearer']) {
      expect((await http(sport, '/status', { headers: { authorization: h } })).status, h).to.equal(401);
    }
  });

  it('answers with the token', async () => {
    const s = await status(sport, token);
    expect(s.ready).to.equal(true);
    expect(s.workers).to.have.length(1);
    const m = await http(sport, '/metrics', { headers: { authorization: `bearer ${token}` } });
    expect(m.status).to.equal(200);
    parseMetrics(m.text);
  });

  it('goes away with the service: SIGTERM exits 0 and the status port closes', async () => {
    const exit = await srv.stop();
    expect(exit).to.deep.equal({ code: 0, signal: null });
    let err: unknown;
    try { await http(sport, '/healthz'); } catch (e) { err = e; }
    expect(String((err as { cause?: unknown })?.cause ?? err)).to.match(/ECONNREFUSED/);
  });
});
