/**
 * Hardening (issue 10): no request and no stored item of one group stops the process.
 * (a) A group whose stored state is not a group record answers 41401 to every request, is shown
 *     as broken in /status and /metrics and logged once, while the process and every other group
 *     go on. (b) A request that crashes its shard every time it is decided (the test-only fault
 *     `chat` with msg "__crash_shard__") is replayed once, then refused as poison: its requester
 *     hears 41401, the restarts stay within the budget, and the requests that shared its batch
 *     are decided as usual.
 */
import { expect } from 'chai';
import { LmdbStore } from '../src/store/lmdb/lmdb-store';
import { workerOf, groupAddress } from '../src/supervisor/placement';
import { getStatus, startServer, statusFetch, type ServerHandle } from './support/server';
import { Client, isError, isMessage, isNotice, sleep, withCallback } from './support/client';
import { accountsReady, newAccounts, type Account } from './support/accounts';

const INTERNAL = 41401;

async function create(c: Client, members: string[], callback: string): Promise<string> {
  c.request({ cat: 'group', act: 'create', list: members, callback });
  return (await c.next(withCallback(callback))).msg.id as string;
}

describe('hardening: poison requests and broken groups', function () {
  this.timeout(60_000);
  let srv: ServerHandle | undefined;
  const clients: Client[] = [];
  let accs: Account[];

  before(async () => {
    await accountsReady();
    accs = newAccounts(3);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    if (srv) await srv.stop();
    srv = undefined;
  });

  async function connect(acc: Account): Promise<Client> {
    const c = await Client.connect(srv!.url);
    clients.push(c);
    await c.signIn(acc);
    return c;
  }

  it('a group with a corrupt stored state answers 41401 and shows in /status; the process and other groups go on', async () => {
    const [a, b] = accs as [Account, Account];
    srv = await startServer([]);
    let ca = await connect(a);
    const bad = await create(ca, [b.address], 'c1');
    const good = await create(ca, [b.address], 'c2');
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await srv.stop({ keepData: true });

    // The stored record loses its member list (and gains garbage) while the server is stopped.
    const store = LmdbStore.open({ dir: srv.dataDir, fsync: 'off' });
    expect(store.states.get(`group:${bad}`)).to.have.property('group');
    store.states.put(`group:${bad}`, { id: bad, garbage: true, manager: 42 });
    await store.flush();
    await store.close();

    srv = await startServer([], { dataDir: srv.dataDir, status: true });
    ca = await connect(a);
    const cb = await connect(b);
    cb.clear();

    for (let i = 0; i < 2; i++) {
      const d = await ca.expectError({ cat: 'group', act: 'detail', id: bad, callback: `d${i}` });
      expect(d.code).to.equal(INTERNAL);
      expect(d.error).to.match(/could not be read/);
      const c = await ca.expectError({ cat: 'group', act: 'chat', to: bad, msg: { n: i }, mid: `bad${i}`, callback: `x${i}` });
      expect(c.code).to.equal(INTERNAL);
    }
    expect(srv.proc.exitCode, 'the process is still up').to.equal(null);
    expect(await cb.none(isMessage(), 300)).to.have.length(0);

    // The other group works: detail, and a chat reaches the other member.
    ca.request({ cat: 'group', act: 'detail', id: good, callback: 'dg' });
    expect((await ca.next(withCallback('dg'))).msg.group).to.have.members([a.address, b.address]);
    ca.request({ cat: 'group', act: 'chat', to: good, msg: { ok: 1 }, mid: 'g1' });
    await ca.next(isNotice('group', 'chat'));
    expect((await cb.next(isMessage())).msg).to.deep.equal({ ok: 1 });

    // /status names it on its worker and in the total; /metrics has the figures.
    const st = await getStatus<any>(srv);
    expect(st.brokenGroups).to.equal(1);
    const w = workerOf(groupAddress(bad), 16, 2);
    expect(st.workers[w].brokenGroups).to.equal(1);
    expect(st.workers[w].broken).to.deep.equal([bad]);
    expect(st.workers[1 - w].brokenGroups).to.equal(0);
    const metrics = await (await statusFetch(srv, '/metrics')).text();
    expect(metrics).to.match(/^imgc_groups_broken 1$/m);
    expect(metrics).to.match(new RegExp(`^imgc_worker_broken_groups\\{worker="${w}"\\} 1$`, 'm'));

    // Logged at error once with the group id, not once per request; no worker died.
    const lines = srv.output().split('\n').filter((l) => l.includes('group is broken'));
    expect(lines).to.have.length(1);
    expect(JSON.parse(lines[0]!)).to.include({ group: bad, level: 50 });
    expect(st.restarts.total).to.equal(0);
  });

  it('a request that crashes its shard every time is replayed once, then refused as poison; its batch-mates and other groups go on', async () => {
    const [a, b] = accs as [Account, Account];
    srv = await startServer(['--test-faults', '--restart-max', '3'], { status: true });
    const ca = await connect(a);
    // Two groups on the same shard, and one on the other.
    const byWorker: string[][] = [[], []];
    for (let i = 0; (byWorker[0]!.length < 2 || byWorker[1]!.length < 1) && i < 40; i++) {
      const g = await create(ca, [b.address], `c${i}`);
      byWorker[workerOf(groupAddress(g), 16, 2)]!.push(g);
    }
    const w = byWorker[0]!.length >= 2 ? 0 : 1;
    const [poisoned, sibling] = byWorker[w] as [string, string];
    const other = byWorker[1 - w]![0]!;
    const cb = await connect(b);
    cb.clear();

    // The poison and ordinary chats leave in the same batch to the same shard.
    ca.request({ cat: 'group', act: 'chat', to: poisoned, msg: '__crash_shard__', mid: 'p', callback: 'p' });
    for (let i = 0; i < 5; i++) ca.request({ cat: 'group', act: 'chat', to: sibling, msg: { n: i }, mid: `s${i}` });
    const refused = await ca.next((f) => f.type === 'error' && f.request?.callback === 'p', 20_000, 'the poison refused')
      .catch((e) => { process.stderr.write(srv!.output()); throw e; });
    expect(refused.code).to.equal(INTERNAL);
    expect(refused.error).to.match(/could not be processed/);

    // Every batch-mate was decided (acknowledged, delivered once), none refused.
    const acks = await ca.nextN(5, isNotice('group', 'chat'), 10_000);
    expect(acks.map((f) => f.msg.mid).sort()).to.deep.equal(['s0', 's1', 's2', 's3', 's4']);
    const got = (await cb.collect(500)).filter(isMessage()).map((f) => f.msg.n);
    expect(got.sort()).to.deep.equal([0, 1, 2, 3, 4]);
    expect(await ca.none(isError(), 100)).to.have.length(0);

    // Still up, two restarts (first crash, then the one replay), within the budget of 3.
    await sleep(500);
    expect(srv.proc.exitCode).to.equal(null);
    const st = await getStatus<any>(srv);
    expect(st.restarts.total).to.equal(2);
    expect(st.poisonRequests).to.equal(1);
    expect(st.workers.every((x: any) => x.up)).to.equal(true);

    // The poisoned group itself and the other groups work.
    for (const g of [poisoned, sibling, other]) {
      ca.request({ cat: 'group', act: 'chat', to: g, msg: { after: g }, mid: `after-${g}` });
      await ca.next((f) => isNotice('group', 'chat')(f) && f.msg.mid === `after-${g}`);
      expect((await cb.next(isMessage((f) => f.msg.after === g))).msg).to.deep.equal({ after: g });
    }

    // Logged as poison with the act and group, never the message text.
    const poison = srv.output().split('\n').filter((l) => l.includes('"msg":"poison'));
    expect(poison).to.have.length(1);
    expect(JSON.parse(poison[0]!)).to.include({ act: 'chat', group: poisoned, level: 40 });
    expect(srv.output()).to.not.include('__crash_shard__');
  });
});
