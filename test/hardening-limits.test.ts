/**
 * Limits (issue 10), against the real server over real sockets: connections in total and per
 * remote address (HTTP 503 before the upgrade, counted), groups created per account per hour
 * (44029 with retryAfterMs), the block list size (44744), each shown in /status; and a server out
 * of file descriptors (a child under `ulimit -n 256`) stays up and serves again once sockets close.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import WebSocket from 'ws';
import { freePort, getStatus, MAIN, statusFetch, tempDir, type ServerHandle } from './support/server';
import { useServer } from './support/suite';
import { Client, isError, isNotice, sleep } from './support/client';
import { accountsReady, newAccounts, randomAddresses, type Account } from './support/accounts';
import { AggregatedWarnings, Limits } from '../src/supervisor/limits';
import type { Logger } from '../src/log';

interface LimitView { value: number; hits: number }
interface Status { connections: number; limits: Record<string, LimitView> & { groups: number } }

/** Opens a WebSocket from `localAddress`: the socket once the init frame came, or the HTTP status that refused it. */
function attempt(url: string, localAddress = '127.0.0.1'): Promise<{ ws?: WebSocket; status?: number; retryAfter?: string; error?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { localAddress, perMessageDeflate: false });
    const t = setTimeout(() => { ws.terminate(); resolve({ error: 'timeout' }); }, 5000);
    ws.once('unexpected-response', (_req, res) => { clearTimeout(t); resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] }); ws.terminate(); });
    ws.once('message', () => { clearTimeout(t); resolve({ ws }); });
    ws.once('error', (e) => { clearTimeout(t); resolve({ error: e.message }); });
  });
}

async function closeWs(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  await new Promise<void>((res) => { ws.once('close', () => res()); ws.close(); });
}

async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  let v = await get();
  while (!ok(v)) {
    if (Date.now() > deadline) throw new Error(`${what}: last ${JSON.stringify(v)}`);
    await sleep(50);
    v = await get();
  }
  return v;
}

/**
 * The server in a child under `ulimit -n <n>` (open auth, its own data directory and status port),
 * once it listens and its status server answers.
 */
async function underUlimit(n: number, extra: string[]) {
  const port = await freePort();
  const statusPort = await freePort();
  const data = tempDir();
  const args = ['--port', String(port), '--host', '127.0.0.1', '--auth', 'open', '--data', data, '--status-port', String(statusPort), ...extra];
  const quoted = [MAIN, ...args].map((x) => `'${x}'`).join(' ');
  const proc = spawn('sh', ['-c', `ulimit -n ${n}; exec '${process.execPath}' ${quoted}`], { env: { ...process.env, IMGC_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  proc.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  let exited: number | null | undefined;
  proc.once('exit', (code) => { exited = code; });
  const url = `ws://127.0.0.1:${port}`;
  const srv = { statusUrl: `http://127.0.0.1:${statusPort}`, dataDir: data } as ServerHandle;
  const stop = async (): Promise<void> => {
    if (exited === undefined) {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    }
    rmSync(data, { recursive: true, force: true });
  };
  try {
    await until('the server listens', () => attempt(url), (r) => r.ws !== undefined || exited !== undefined, 20_000).then((r) => r.ws?.terminate());
    expect(exited, out).to.equal(undefined);
    await until('the status server answers', () => getStatus<Status>(srv).catch(() => undefined), (x) => x !== undefined);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, srv, proc, output: () => out, exitCode: () => exited, stop };
}

describe('limits: unit', () => {
  const values = { maxConnections: 1, maxConnectionsPerIp: 1, groupsPerHour: 2, groupsPerHourPerAddress: 3, strangerAddsPerHour: 1, minFreeMb: 0, maxGroups: 10, maxGroupSize: 5, maxBlocked: 1, detailBytes: 100 };
  const lines: Array<Record<string, unknown>> = [];
  const log = { warn: (o: Record<string, unknown>, msg: string) => lines.push({ ...o, msg }) } as unknown as Logger;

  it('the hourly quota counts per account and opens again when the hour is over', () => {
    const l = new Limits(values, log);
    expect(l.takeGroupQuota('a', undefined, 0)).to.equal(undefined);
    expect(l.takeGroupQuota('a', undefined, 1000)).to.equal(undefined);
    expect(l.takeGroupQuota('a', undefined, 2000)).to.deep.equal({ limit: 'groupsPerHour', retryAfterMs: 3600_000 - 2000 });
    expect(l.takeGroupQuota('b', undefined, 2000)).to.equal(undefined);
    expect(l.takeGroupQuota('a', undefined, 3600_000)).to.equal(undefined);
  });

  it('the hourly quota also counts per remote address, whatever the accounts; a refusal takes nothing', () => {
    const l = new Limits(values, log);
    expect(l.takeGroupQuota('a', '10.0.0.1', 0)).to.equal(undefined);
    expect(l.takeGroupQuota('b', '10.0.0.1', 0)).to.equal(undefined);
    expect(l.takeGroupQuota('c', '10.0.0.1', 0)).to.equal(undefined);
    expect(l.takeGroupQuota('d', '10.0.0.1', 1000)).to.deep.equal({ limit: 'groupsPerHourPerAddress', retryAfterMs: 3600_000 - 1000 });
    expect(l.takeGroupQuota('d', '10.0.0.2', 1000)).to.equal(undefined);
    // d's refusal from the first address took nothing of its own quota: one more is left.
    expect(l.takeGroupQuota('d', '10.0.0.3', 1000)).to.equal(undefined);
    expect(l.takeGroupQuota('d', '10.0.0.4', 1000)?.limit).to.equal('groupsPerHour');
  });

  it('the quota windows survive a snapshot and restore (a restart), and only open windows are kept', () => {
    const now = Date.now();
    const l = new Limits(values, log);
    l.takeGroupQuota('a', '10.0.0.1', now - 3600_000 - 1);
    l.takeGroupQuota('b', '10.0.0.2', now);
    l.takeGroupQuota('b', '10.0.0.2', now);
    const stored = JSON.parse(JSON.stringify(l.snapshot(now))) as unknown;
    const again = new Limits(values, log);
    again.restore(stored, now);
    expect(again.takeGroupQuota('b', '10.0.0.9', now)?.limit).to.equal('groupsPerHour');
    expect(again.takeGroupQuota('a', '10.0.0.1', now)).to.equal(undefined);
    again.restore({ account: { x: 'bad' }, address: 7 }, now);
    expect(again.takeGroupQuota('x', undefined, now)).to.equal(undefined);
  });

  it('repeated warnings: the first at once, the rest summed into one line per interval', async () => {
    lines.length = 0;
    const w = new AggregatedWarnings(log, 200);
    for (let i = 0; i < 1000; i++) w.warn('k', 'refused');
    expect(lines).to.have.length(1);
    await sleep(300);
    expect(lines).to.have.length(2);
    expect(lines[1]).to.include({ limit: 'k', count: 999 });
    w.stop();
  });
});

describe('hardening: limits', function () {
  this.timeout(60_000);
  before(async () => { await accountsReady(); });

  describe('connections', () => {
    const ctx = useServer(['--max-connections', '5', '--max-connections-per-ip', '3', '--workers', '1'], { status: true });

    it('refuses past the per-address cap and the total cap with 503, counts it, and accepts again once a socket closes', async () => {
      // The readiness probe's socket is gone first.
      await until('no connection open', () => getStatus<Status>(ctx.srv), (s) => s.connections === 0);
      const a = [await attempt(ctx.srv.url), await attempt(ctx.srv.url), await attempt(ctx.srv.url)];
      expect(a.every((x) => x.ws !== undefined), JSON.stringify(a.map((x) => x.status ?? x.error))).to.equal(true);
      expect((await attempt(ctx.srv.url)).status, 'a fourth from 127.0.0.1').to.equal(503);
      // Other addresses still get in, up to the total.
      const b = [await attempt(ctx.srv.url, '127.0.0.2'), await attempt(ctx.srv.url, '127.0.0.3')];
      expect(b.every((x) => x.ws !== undefined)).to.equal(true);
      expect((await attempt(ctx.srv.url, '127.0.0.4')).status, 'a sixth in total').to.equal(503);

      let s = await getStatus<Status>(ctx.srv);
      expect(s.connections).to.equal(5);
      expect(s.limits.maxConnectionsPerIp).to.deep.equal({ value: 3, hits: 1 });
      expect(s.limits.maxConnections).to.deep.equal({ value: 5, hits: 1 });
      const metrics = await (await statusFetch(ctx.srv, '/metrics')).text();
      expect(metrics).to.match(/^imgc_limit_hits_total\{limit="maxConnectionsPerIp"\} 1$/m);
      expect(metrics).to.match(/^imgc_limit\{limit="maxConnections"\} 5$/m);

      // One from 127.0.0.1 closes: 127.0.0.1 gets in again (and that is the total again).
      await closeWs(a[0]!.ws!);
      await until('the close is seen', () => getStatus<Status>(ctx.srv), (x) => x.connections === 4);
      const again = await attempt(ctx.srv.url);
      expect(again.ws, `refused: ${again.status ?? again.error}`).to.not.equal(undefined);
      expect((await attempt(ctx.srv.url, '127.0.0.5')).status).to.equal(503);
      s = await getStatus<Status>(ctx.srv);
      expect(s.limits.maxConnections.hits).to.equal(2);
      for (const x of [...a.slice(1), ...b, again]) await closeWs(x.ws!);
    });
  });

  describe('groups', () => {
    const ctx = useServer(['--groups-per-hour', '3', '--max-blocked', '2', '--workers', '1'], { status: true });
    let a: Account, b: Account, c: Account;
    before(() => { [a, b, c] = newAccounts(3) as [Account, Account, Account]; });

    it('groups-per-hour: past the quota a create gets 44029 with retryAfterMs, counted in /status; others still create', async () => {
      const ca = await Client.connect(ctx.srv.url);
      await ca.signIn(a);
      for (let i = 0; i < 3; i++) {
        ca.request({ cat: 'group', act: 'create', list: [b.address], callback: `q${i}` });
        await ca.next(isNotice('group', 'create'));
      }
      const refused = await ca.expectError({ cat: 'group', act: 'create', list: [b.address] });
      expect(refused.code).to.equal(44029);
      expect(refused.retryAfterMs).to.be.a('number').within(1, 3600_000);
      expect(refused.error).to.match(/3 groups per hour/);
      const s = await getStatus<Status>(ctx.srv);
      expect(s.limits.groupsPerHour).to.deep.equal({ value: 3, hits: 1 });
      expect(s.limits.groups).to.equal(3);
      // Another account has its own quota.
      const cc = await Client.connect(ctx.srv.url);
      await cc.signIn(c);
      cc.request({ cat: 'group', act: 'create', list: [b.address] });
      await cc.next(isNotice('group', 'create'));
      expect((await getStatus<Status>(ctx.srv)).limits.groups).to.equal(4);
      await Promise.all([ca.close(), cc.close()]);
    });

    it('max-blocked: a deport past the block list size gets 44744, counted; the group still answers detail', async () => {
      const cc = await Client.connect(ctx.srv.url);
      await cc.signIn(c);
      const others = randomAddresses(3);
      cc.request({ cat: 'group', act: 'create', list: others });
      const id = (await cc.next(isNotice('group', 'create'))).msg.id as string;
      for (const acc of others.slice(0, 2)) {
        cc.request({ cat: 'group', act: 'deport', id, account: acc });
        await cc.next(isNotice('group', 'deport'));
      }
      const refused = await cc.expectError({ cat: 'group', act: 'deport', id, account: others[2]! });
      expect(refused.code).to.equal(44744);
      expect(refused.error).to.match(/block list is full \(2\)/);
      cc.request({ cat: 'group', act: 'detail', id });
      const detail = await cc.next(isNotice('group', 'detail'));
      expect(detail.msg.block).to.have.length(2);
      const s = await getStatus<Status>(ctx.srv);
      expect(s.limits.maxBlocked).to.deep.equal({ value: 2, hits: 1 });
      expect(s.limits.detailBytes.value).to.equal(1024 * 1024);
      await cc.close();
    });
  });

  describe('detail size', () => {
    const ctx = useServer(['--max-buffered', String(64 * 1024), '--max-frame', String(8 * 1024), '--workers', '1'], { status: true });

    it('a detail answer larger than max-buffered / 8 gets 44744, counted; a smaller group still answers', async () => {
      const [m] = newAccounts(1) as [Account];
      const c = await Client.connect(ctx.srv.url);
      await c.signIn(m);
      // 150 members (a 7.7 KB create frame) and a 2,000-character announcement: more than 8 KB of detail.
      c.request({ cat: 'group', act: 'create', list: randomAddresses(150) });
      const big = (await c.next(isNotice('group', 'create'))).msg.id as string;
      c.request({ cat: 'group', act: 'update', id: big, key: 'announce', val: 'a'.repeat(2000) });
      await c.next(isNotice('group', 'update'));
      const refused = await c.expectError({ cat: 'group', act: 'detail', id: big });
      expect(refused.code).to.equal(44744);
      expect(refused.error).to.match(/larger than 8192 bytes/);
      c.request({ cat: 'group', act: 'create', list: randomAddresses(3) });
      const small = (await c.next(isNotice('group', 'create'))).msg.id as string;
      c.request({ cat: 'group', act: 'detail', id: small });
      expect((await c.next(isNotice('group', 'detail'))).msg.group).to.have.length(4);
      const s = await getStatus<Status>(ctx.srv);
      expect(s.limits.detailBytes).to.deep.equal({ value: 8192, hits: 1 });
      await c.close();
    });
  });

  describe('out of file descriptors', function () {
    this.timeout(120_000);
    it('a server under ulimit -n 256 flooded past it stays up (even restarting a worker), accepts again once sockets close, and a group create works', async () => {
      const [a, b] = newAccounts(2) as [Account, Account];
      const { url, srv, proc, output, exitCode, stop } = await underUlimit(256, ['--workers', '1', '--test-faults']);
      const out = (): string => output();
      const held: WebSocket[] = [];
      try {
        const early = await Client.connect(url);
        await early.signIn(a);

        // Sockets that never sign in, well past the descriptor limit.
        const results = await Promise.all(Array.from({ length: 400 }, () => attempt(url)));
        for (const r of results) if (r.ws) held.push(r.ws);
        expect(held.length, 'sockets held').to.be.above(50).and.below(256);
        // While flooded, a worker thread dies and must be restarted (it opens files), and a signed-in client creates a group.
        proc.kill('SIGUSR2');
        await sleep(1500);
        expect(exitCode(), `the server exited:\n${out().slice(-3000)}`).to.equal(undefined);
        early.request({ cat: 'group', act: 'create', list: [b.address] });
        const during = await early.next((f) => isNotice('group', 'create')(f) || isError()(f), 10_000);
        expect(during.type, JSON.stringify(during)).to.equal('notice');

        // Others close: a later client connects, signs in and creates a group.
        for (const ws of held.splice(0)) ws.terminate();
        const c = await until('a client connects again', async () => Client.connect(url).catch(() => undefined), (x) => x !== undefined, 20_000);
        await c!.signIn(b);
        c!.request({ cat: 'group', act: 'create', list: [a.address] });
        const created = await c!.next((f) => isNotice('group', 'create')(f) || isError()(f));
        expect(created.type, JSON.stringify(created)).to.equal('notice');
        await Promise.all([c!.close(), early.close()]);
        const s = await getStatus<Status>(srv);
        expect(s.limits.descriptors.hits, 'connections dropped for descriptors, counted').to.be.above(0);
        expect(s.limits.descriptors.value).to.be.above(0).and.below(256);
        expect(exitCode()).to.equal(undefined);
        // Aggregated: one line per interval, not one per refused or dropped connection.
        const lines = out().split('\n').filter((l) => l.includes('"limit":"descriptors"')).length;
        expect(lines, out().slice(-2000)).to.be.within(1, 4);
      } finally {
        for (const ws of held) ws.terminate();
        await stop();
      }
    });

    it('past the descriptor cap a new client gets HTTP 503 with Retry-After, never a reset; once sockets close it gets in', async () => {
      const { url, srv, output, stop } = await underUlimit(256, ['--workers', '1', '--handshake-ms', '60000']);
      const held: WebSocket[] = [];
      try {
        const cap = (await getStatus<Status>(srv)).limits.descriptors.value;
        expect(cap, 'the socket cap').to.be.above(20).and.below(256);
        // A few at a time (fewer than the answering margin), well past the cap.
        const refused: { status?: number; retryAfter?: string }[] = [];
        for (let i = 0; i < cap + 60; i += 8) {
          const batch = await Promise.all(Array.from({ length: 8 }, () => attempt(url)));
          for (const r of batch) {
            if (r.ws) held.push(r.ws);
            else {
              expect(r.error, `attempt ${i}: ${output().slice(-1500)}`).to.equal(undefined);
              refused.push(r);
            }
          }
        }
        expect(held.length, 'sockets up to the cap').to.equal(cap);
        expect(refused.length).to.equal(Math.ceil((cap + 60) / 8) * 8 - cap);
        for (const r of refused) expect(r).to.deep.equal({ status: 503, retryAfter: '1' });
        const next = await attempt(url);
        expect(next, 'the next one').to.deep.include({ status: 503, retryAfter: '1' });
        const s = await getStatus<Status>(srv);
        expect(s.limits.descriptors.hits, 'refusals counted').to.be.at.least(refused.length);
        for (const ws of held.splice(0, 5)) ws.terminate();
        const again = await until('a client connects again', () => attempt(url), (r) => r.ws !== undefined, 10_000);
        held.push(again.ws!);
      } finally {
        for (const ws of held) ws.terminate();
        await stop();
      }
    });
  });
});
