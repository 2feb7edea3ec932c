/**
 * Supervision: a shard crashed on purpose mid-traffic is restarted and its actors come back; the
 * restart budget stops a crash loop; SIGTERM during traffic shuts down cleanly and loses nothing
 * that was acknowledged.
 */
import { expect } from 'chai';
import { freePort, startServer, statusFetch, type ServerHandle } from './support/server';
import { Client, isMessage, isNotice, sleep, type Frame } from './support/client';
import { newAccounts, type Account } from './support/accounts';
import { useServerPerTest } from './support/suite';
import { workerOf, groupAddress } from '../src/supervisor/placement';

async function status(server: ServerHandle): Promise<Record<string, any>> {
  const res = await statusFetch(server, '/status');
  return (await res.json()) as Record<string, any>;
}

async function until<T>(f: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('supervision', function () {
  this.timeout(60_000);
  const ctx = useServerPerTest();
  let accs: Account[];

  before(() => { accs = newAccounts(4); });

  it('restarts a crashed shard mid-traffic; its groups keep their members and stored messages', async () => {
    const [a, b, c] = accs as [Account, Account, Account];
    const statusPort = await freePort();
    ctx.srv = await startServer(['--test-faults', '--status-port', String(statusPort)]);
    const ca = await Client.connect(ctx.srv.url);
    await ca.signIn(a);
    // Groups on both shards, with `c` away so messages are kept for it.
    const groups: string[] = [];
    for (let i = 0; groups.length < 8 && i < 40; i++) {
      ca.request({ cat: 'group', act: 'create', list: [b.address, c.address], callback: `g${i}` });
      groups.push((await ca.next((f) => f.method?.callback === `g${i}`)).msg.id);
    }
    expect(new Set(groups.map((g) => workerOf(groupAddress(g), 16, 2))).size).to.equal(2);
    const cb = await Client.connect(ctx.srv.url);
    await cb.signIn(b);
    cb.clear();

    // Traffic flows while shard 0 is crashed (SIGUSR2 is the test-only fault switch).
    let sent = 0;
    for (; sent < 40; sent++) {
      ca.request({ cat: 'group', act: 'chat', to: groups[sent % groups.length], msg: { n: sent }, mid: `m${sent}` });
      if (sent === 20) ctx.srv.proc.kill('SIGUSR2');
      await sleep(5);
    }
    const acks = await ca.nextN(sent, isNotice('group', 'chat'), 15_000).catch((e) => { process.stderr.write(ctx.srv!.output()); throw e; });
    expect(acks).to.have.length(sent);
    const st = await until(async () => { const s = await status(ctx.srv!); return s.restarts.total >= 1 && s.workers.every((w: any) => w.up) ? s : undefined; }, 10_000, 'the restart');
    expect(st.restarts.total).to.equal(1);

    // Every group still answers with its members; b got every message exactly once.
    for (const g of groups) {
      ca.request({ cat: 'group', act: 'detail', id: g, callback: `d${g}` });
      const d = await ca.next((f) => f.method?.callback === `d${g}`);
      expect(d.msg.group).to.have.members([a.address, b.address, c.address]);
    }
    const got: Frame[] = [];
    for (;;) { const more = (await cb.collect(300)).filter(isMessage()); if (more.length === 0) break; got.push(...more); }
    const ns = got.map((f) => f.msg.n as number);
    expect(new Set(ns).size).to.equal(ns.length);
    expect(ns.sort((x, y) => x - y)).to.deep.equal([...Array(sent).keys()]);

    // c was away all along: everything is kept for it, across the crash.
    const cc = await Client.connect(ctx.srv.url);
    await cc.signIn(c);
    const kept = [];
    for (;;) { const more = (await cc.collect(300)).filter(isMessage()); if (more.length === 0) break; kept.push(...more); }
    expect(kept.map((f) => f.msg.n).sort((x, y) => x - y)).to.deep.equal([...Array(sent).keys()]);
    await Promise.all([ca.close(), cb.close(), cc.close()]);
  });

  it('the restart budget stops a crash loop with a clean shutdown', async () => {
    ctx.srv = await startServer(['--test-faults', '--restart-max', '2', '--restart-window-ms', '60000']);
    for (let i = 0; i < 3; i++) {
      ctx.srv.proc.kill('SIGUSR2');
      await sleep(1500);
    }
    const exit = await Promise.race([ctx.srv.exited, sleep(15_000).then(() => null)]);
    expect(exit, 'the server gave up').to.not.equal(null);
    expect(exit!.code).to.equal(1);
    expect(ctx.srv.output()).to.match(/restart budget exhausted/);
    ctx.srv = undefined;
  });

  it('SIGTERM during traffic: clients hear 1001, exit 0, and the directory restores with nothing acknowledged missing', async () => {
    const [a, b] = accs as [Account, Account];
    ctx.srv = await startServer([]);
    const ca = await Client.connect(ctx.srv.url);
    await ca.signIn(a);
    const acked = new Set<number>();
    ca.ws.on('message', (d) => { const f = JSON.parse(String(d)) as Frame; if (isNotice('chat', 'chat')(f)) acked.add(Number(f.msg.mid)); });
    let i = 0;
    const pump = (async () => { while (ca.open && i < 5000) { ca.request({ cat: 'chat', act: 'chat', to: b.address, msg: { i }, mid: String(i) }); i++; await sleep(1); } })();
    await until(async () => (acked.size > 50 ? true : undefined), 10_000, 'acknowledgements');
    const exit = await ctx.srv.stop({ keepData: true });
    await pump;
    expect(exit.code).to.equal(0);
    expect(ca.closedWith?.code).to.equal(1001);

    ctx.srv = await startServer([], { dataDir: ctx.srv.dataDir });
    const cb = await Client.connect(ctx.srv.url);
    await cb.signIn(b);
    const got = new Set<number>();
    for (;;) { const more = (await cb.collect(300)).filter(isMessage()); if (more.length === 0) break; for (const f of more) got.add(f.msg.i); }
    for (const m of acked) expect(got.has(m), `acknowledged ${m}`).to.equal(true);
    await cb.close();
  });
});
