/**
 * Issue 10, "Exposure", "Status and backups" and "Logs": the status token by default, backups kept
 * to a number and never into the data dir through a symlink, one fatal JSON line for a fault
 * nobody handled, refused frames counted, and repeated warnings aggregated.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { every, flushAggregated } from '../src/log-aggregate';
import { Client, isError, sleep } from './support/client';
import { getStatus, startServer, statusFetch, statusToken, tempDir, type ServerHandle } from './support/server';

interface Line { level: number; msg: string; [k: string]: unknown }

/** Every non-empty line of `output` as JSON; a line that is not JSON (a raw stack) fails the test. */
function jsonLines(output: string): Line[] {
  return output.split('\n').filter((l) => l.trim() !== '').map((l) => {
    try { return JSON.parse(l) as Line; } catch { throw new Error(`not a JSON log line: ${l}`); }
  });
}

async function get(url: string, token?: string, init: RequestInit = {}): Promise<{ status: number; json: any }> {
  const headers = new Headers(init.headers);
  if (token !== undefined) headers.set('authorization', `Bearer ${token}`);
  const res = await fetch(url, { ...init, headers, signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  let json: unknown;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: res.status, json };
}

describe('hardening: operations security', function () {
  this.timeout(60_000);
  const servers: ServerHandle[] = [];
  const dirs: string[] = [];
  const start = async (args: string[], opts: Parameters<typeof startServer>[1] = {}): Promise<ServerHandle> => {
    const s = await startServer(args, { status: true, ...opts });
    servers.push(s);
    return s;
  };
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  describe('status token by default', () => {
    it('is generated at first start (0600, data dir 0700), required but by the probes, and survives a restart', async () => {
      const data = join(tempDir('imgc-opsec-'), 'data');
      dirs.push(join(data, '..'));
      const first = await start([], { dataDir: data, env: { IMGC_LOG_LEVEL: 'info' } });
      const file = join(data, 'status-token');
      expect(fs.statSync(file).mode & 0o777, 'token file mode').to.equal(0o600);
      expect(fs.statSync(data).mode & 0o777, 'data dir mode').to.equal(0o700);
      const token = statusToken(first)!;
      expect(token).to.match(/^[A-Za-z0-9_-]{40,}$/);

      const base = first.statusUrl!;
      expect((await get(`${base}/status`)).status, '/status without a token').to.equal(401);
      expect((await get(`${base}/metrics`)).status, '/metrics without a token').to.equal(401);
      expect((await get(`${base}/status`, 'wrong')).status, '/status with a wrong token').to.equal(401);
      expect((await get(`${base}/backup`, undefined, { method: 'POST' })).status, 'POST /backup without a token').to.equal(401);
      expect((await get(`${base}/status`, token)).status, '/status with the token').to.equal(200);
      expect((await get(`${base}/healthz`)).status, '/healthz needs no token').to.equal(200);
      expect((await get(`${base}/readyz`)).status, '/readyz needs no token').to.equal(200);

      // The token is printed once, when it is created, at info.
      const shown = jsonLines(first.output()).filter((l) => JSON.stringify(l).includes(token));
      expect(shown.map((l) => [l.level, l.msg]), 'lines that show the token').to.deep.equal([[30, shown[0]?.msg]]);
      expect(shown[0]!.file).to.equal(file);

      await first.stop({ keepData: true });
      const second = await start([], { dataDir: data, env: { IMGC_LOG_LEVEL: 'info' } });
      expect(fs.readFileSync(file, 'utf8').trim(), 'the same token after a restart').to.equal(token);
      expect(fs.statSync(file).mode & 0o777).to.equal(0o600);
      expect((await get(`${second.statusUrl!}/status`, token)).status).to.equal(200);
      expect((await get(`${second.statusUrl!}/status`)).status).to.equal(401);
      const out = second.output();
      expect(out, 'a later start does not print the token').to.not.contain(token);
      expect(jsonLines(out).some((l) => l.file === file && /status token read/.test(l.msg)), 'a later start says where it is').to.equal(true);
    });

    it('--status-token none turns authentication off with a warning, and writes no token', async () => {
      const srv = await start(['--status-token', 'none'], { env: { IMGC_LOG_LEVEL: 'warn' } });
      expect((await get(`${srv.statusUrl!}/status`)).status).to.equal(200);
      expect(fs.existsSync(join(srv.dataDir, 'status-token'))).to.equal(false);
      expect(jsonLines(srv.output()).some((l) => l.level === 40 && /authentication is off/.test(l.msg)), 'warn line').to.equal(true);
    });
  });

  describe('backups', () => {
    it('--backups-keep N keeps the newest N IMGC backups under the backup root and nothing else is touched', async () => {
      const root = tempDir('imgc-opsec-backups-');
      dirs.push(root);
      // Not IMGC backups: a directory of someone else's, a directory with a marker-like file that is not ours, a file.
      fs.mkdirSync(join(root, 'notes'));
      fs.writeFileSync(join(root, 'notes', 'a.txt'), 'keep me');
      fs.mkdirSync(join(root, 'fake'));
      fs.writeFileSync(join(root, 'fake', 'imgc-backup.json'), '{"something":"else"}');
      fs.writeFileSync(join(root, 'README'), 'keep me');
      const srv = await start(['--backup-dir', root, '--backups-keep', '2']);
      const made: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await statusFetch(srv, '/backup', { method: 'POST', signal: AbortSignal.timeout(30_000) });
        const body = await r.json() as { ok: boolean; dest: string; pruned: string[] };
        expect(r.status, JSON.stringify(body)).to.equal(200);
        expect(body.dest.startsWith(root + '/'), body.dest).to.equal(true);
        made.push(body.dest);
        await sleep(5);
      }
      // An explicit dest directly under the root counts too.
      const manual = join(root, 'manual');
      const r = await statusFetch(srv, `/backup?dest=${encodeURIComponent(manual)}`, { method: 'POST', signal: AbortSignal.timeout(30_000) });
      const body = await r.json() as { pruned: string[] };
      expect(r.status, JSON.stringify(body)).to.equal(200);
      made.push(manual);
      expect(fs.readdirSync(root).sort()).to.deep.equal(['README', 'fake', 'notes', ...made.slice(-2).map((d) => d.slice(root.length + 1))].sort());
      expect(fs.readFileSync(join(root, 'notes', 'a.txt'), 'utf8')).to.equal('keep me');
      for (const d of made.slice(-2)) {
        expect(fs.statSync(d).mode & 0o777, `${d} mode`).to.equal(0o700);
        expect(fs.statSync(join(d, 'server-key.seed')).mode & 0o777).to.equal(0o600);
        expect(fs.statSync(join(d, 'status-token')).mode & 0o777).to.equal(0o600);
        expect(fs.existsSync(join(d, 'imgc-backup.json')), 'marker').to.equal(true);
      }
      // /status says where backups go, how many are kept and that none is running.
      const st = await getStatus<{ backups: { running: boolean; root: string; keep: number; kept: number } }>(srv);
      expect(st.backups).to.deep.equal({ running: false, root, keep: 2, kept: 2 });
    });

    it('a destination through a symlink into the data dir is refused: a symlinked parent and a symlinked destination', async () => {
      const srv = await start([]);
      const outside = tempDir('imgc-opsec-links-');
      dirs.push(outside);
      fs.mkdirSync(join(srv.dataDir, 'empty'));
      fs.symlinkSync(srv.dataDir, join(outside, 'to-data'));
      fs.symlinkSync(join(srv.dataDir, 'empty'), join(outside, 'to-empty'));
      const before = fs.readdirSync(srv.dataDir).sort();
      for (const dest of [join(outside, 'to-data', 'copy'), join(outside, 'to-data'), join(outside, 'to-empty')]) {
        const r = await statusFetch(srv, `/backup?dest=${encodeURIComponent(dest)}`, { method: 'POST', signal: AbortSignal.timeout(30_000) });
        const body = await r.json() as { ok: boolean; error: string };
        expect(r.status, `${dest}: ${JSON.stringify(body)}`).to.equal(400);
        expect(body.error, dest).to.match(/outside the data dir/);
      }
      expect(fs.readdirSync(srv.dataDir).sort(), 'nothing written into the data dir').to.deep.equal(before);
      expect(fs.readdirSync(join(srv.dataDir, 'empty'))).to.deep.equal([]);
      expect(fs.readdirSync(outside).sort(), 'no partial copies left').to.deep.equal(['to-data', 'to-empty']);
    });
  });

  describe('logs', () => {
    it('a throw nobody handles (--test-faults, SIGHUP) gives exactly one fatal JSON line and exit 1', async () => {
      const srv = await startServer(['--test-faults'], { env: { IMGC_LOG_LEVEL: 'info' } });
      servers.push(srv);
      srv.proc.kill('SIGHUP');
      const exit = await Promise.race([srv.exited, sleep(15_000).then(() => 'timeout' as const)]);
      expect(exit, srv.output()).to.deep.equal({ code: 1, signal: null });
      const lines = jsonLines(srv.output());
      const fatal = lines.filter((l) => l.level >= 60);
      expect(fatal, srv.output()).to.have.length(1);
      expect(fatal[0]!.msg).to.match(/uncaught exception/);
      expect(String((fatal[0]!.err as { stack?: string }).stack)).to.contain('test fault');
    });

    it('bad frames, rate-limit hits and refused sign-ins are counted in /status and /metrics and logged at debug with the address', async () => {
      const srv = await start(['--rate-limit', '5'], { env: { IMGC_LOG_LEVEL: 'debug' } });
      const before = await (await statusFetch(srv, '/status')).json() as { refused: Record<string, number> };
      expect(before.refused).to.deep.equal({ badFrames: 0, rateLimited: 0, signIns: 0 });
      const bad = await Client.connect(srv.url);
      bad.send('not json');
      await bad.next(isError(41400));
      bad.request({ act: 'chat', spam: 'wrong' });
      await bad.next(isError(44002));
      bad.send('[1]');
      await bad.next(isError(41400));
      const signIn = await Client.connect(srv.url);
      signIn.request({ act: 'active', acc: 'not-an-address' });
      await signIn.next(isError());
      const flood = await Client.connect(srv.url);
      for (let i = 0; i < 20; i++) flood.send('{}');
      await flood.next(isError(44029));
      await sleep(100);
      const s = await (await statusFetch(srv, '/status')).json() as { refused: Record<string, number> };
      expect(s.refused.badFrames, 'bad frames').to.be.at.least(3);
      expect(s.refused.signIns, 'sign-ins refused').to.equal(1);
      expect(s.refused.rateLimited, 'rate-limit hits').to.be.at.least(10);
      const metrics = await (await statusFetch(srv, '/metrics')).text();
      expect(metrics).to.match(new RegExp(`^imgc_sign_ins_refused_total 1$`, 'm'));
      expect(metrics).to.match(new RegExp(`^imgc_rate_limited_total ${s.refused.rateLimited}$`, 'm'));
      expect(metrics).to.match(/^imgc_frames_refused_total [1-9]\d*$/m);
      const debug = jsonLines(srv.output()).filter((l) => l.level === 20);
      for (const kind of ['bad frame', 'sign-in refused', 'rate limited']) {
        const l = debug.find((x) => x.msg === kind);
        expect(l, kind).to.not.equal(undefined);
        expect(l!.remote, `${kind}: remote address`).to.match(/127\.0\.0\.1/);
      }
      await Promise.all([bad.close(), signIn.close(), flood.close()]);
    });

    it('every(): a repeated warning is one line at once, then one line per interval with the count', async () => {
      const lines: Line[] = [];
      const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
      const warn = every('test: repeated', 100);
      for (let i = 0; i < 1000; i++) warn(log, { i }, 'it happened');
      expect(lines.map((l) => l.msg)).to.deep.equal(['it happened']);
      await sleep(150);
      expect(lines).to.have.length(2);
      expect(lines[1]).to.include({ level: 40, repeated: 999, i: 999 });
      // Quiet for an interval: the next one is logged at once again.
      await sleep(150);
      expect(lines).to.have.length(2);
      warn(log, { i: 'again' }, 'it happened');
      expect(lines).to.have.length(3);
      warn(log, { i: 'more' }, 'it happened');
      flushAggregated();
      expect(lines).to.have.length(4);
      expect(lines[3]).to.include({ repeated: 1, i: 'more' });
    });
  });
});
