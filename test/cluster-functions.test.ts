/**
 * Cluster mode (--cluster, on a real nats-server with JetStream): every IM and group function with
 * the clients spread over three real nodes, multi-device across nodes, offline delivery and history
 * from another node, and /status showing the cluster (resume tokens across nodes: cluster-failover).
 */
import { expect } from 'chai';
import { accountsReady, newAccounts, type Account } from './support/accounts';
import { ImgcClient, type MessageFrame } from '../src/client/index';
import { ClientPool, isMessage, isNotice, sleep, until, type Client, type Frame } from './support/client';
import { startCluster, type ClusterHandle, type ClusterStatus } from './support/cluster';
import { natsAvailable } from './support/nats';
import { getStatus, statusFetch } from './support/server';
import { ask, device, makeGroup } from './support/devices';

describe('cluster: every function across three nodes', function () {
  this.timeout(60_000);
  let cluster: ClusterHandle;
  const clients = new ClientPool();
  /** Signs `acc` in on node `i`. */
  const on = (i: number, acc: Account, name = `n${i}`, own = false): Promise<Client> => device(clients, cluster.nodes[i]!.url, acc, name, own);

  before(async function () {
    if (!natsAvailable()) this.skip();
    await accountsReady();
    cluster = await startCluster(3);
  });
  afterEach(() => clients.closeAll());
  after(async () => { await cluster?.stop(); });

  it('/status shows the cluster: three nodes, every partition served by exactly one', async () => {
    const st = await Promise.all(cluster.nodes.map((s) => getStatus<ClusterStatus>(s)));
    const ids = st.map((s) => s.cluster.node);
    expect(new Set(ids).size).to.equal(3);
    for (const s of st) {
      expect(s.cluster.nodes.map((n) => n.id).sort()).to.deep.equal([...ids].sort());
      expect(s.cluster.engine.connected).to.equal(true);
    }
    const all = st.flatMap((s) => s.cluster.serving).sort((a, b) => a - b);
    expect(all).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7]);
    const ready = await statusFetch(cluster.nodes[1]!, '/readyz');
    expect(ready.status).to.equal(200);
  });

  it('end to end: the SDK on node 0 encrypts to a device whose key packages were published on node 2', async () => {
    const [alice, bob] = newAccounts(2);
    const b = new ImgcClient({ url: cluster.nodes[2]!.url, signer: bob.pair });
    const a = new ImgcClient({ url: cluster.nodes[0]!.url, signer: alice.pair });
    try {
      const got: MessageFrame[] = [];
      let published = false;
      b.on('message', (m) => got.push(m));
      b.on('e2e', () => { published = true; });
      await b.connect();
      await until('bob\'s key packages on the server', () => published);
      await a.connect();
      // The directory is a state applied on every node: node 0 sees it once the ledger carried it.
      let r = await a.send(bob.address, 'across the cluster');
      for (let i = 0; i < 50 && !r.encrypted; i++) { await sleep(100); r = await a.send(bob.address, 'across the cluster'); }
      expect(r.encrypted).to.equal(true);
      await until('bob reads it', () => got.some((m) => m.msg === 'across the cluster' && m.e2e?.encrypted === true));
    } finally { a.close(); b.close(); }
  });

  it('a direct message between clients on different nodes, live, with one seq on every node', async () => {
    const [alice, bob] = newAccounts(2);
    const a = await on(0, alice, 'alice@0');
    const b = await on(1, bob, 'bob@1');
    const cb = 'dm1';
    a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: { hi: 'across' }, callback: cb });
    const f = await b.next(isMessage(), 5000);
    expect(f).to.deep.include({ msg: { hi: 'across' }, from: alice.address, to: bob.address, type: 'message' });
    const ack = await a.next((x) => x.method?.callback === cb, 5000, 'sender answer');
    expect(ack.type).to.equal('notice');
    // History of the conversation read from the third node names the same record.
    const c2 = await on(2, bob, 'bob@2');
    const h = await ask(c2, { cat: 'chat', act: 'history', with: alice.address, limit: 10 });
    expect(h.type, JSON.stringify(h)).to.equal('notice');
    const msgs = (h.msg.messages ?? h.msg.items ?? h.msg) as Frame[];
    expect(JSON.stringify(msgs)).to.include('across');
    expect(JSON.stringify(msgs)).to.include(String(f.seq));
  });

  it('offline delivery: sent through node 0 while away, delivered at sign-in on node 2, in order', async () => {
    const [alice, bob] = newAccounts(2);
    const a = await on(0, alice);
    for (let i = 0; i < 20; i++) a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: `m${i}` });
    await ask(a, { cat: 'chat', act: 'chat', to: bob.address, msg: 'last' });
    const b = await on(2, bob);
    const got = await b.nextN(21, isMessage(), 10_000);
    expect(got.map((x) => x.msg)).to.deep.equal([...Array.from({ length: 20 }, (_, i) => `m${i}`), 'last']);
    const seqs = got.map((x) => x.seq as number);
    expect([...seqs].sort((x, y) => x - y)).to.deep.equal(seqs);
  });

  it('multi-device across nodes: both devices of an account get a message, on different nodes', async () => {
    const [alice, bob] = newAccounts(2);
    const b0 = await on(0, bob, 'bob-phone@0');
    const b1 = await on(1, bob, 'bob-desk@1');
    const a = await on(2, alice);
    a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: 'both' });
    const [x, y] = await Promise.all([b0.next(isMessage(), 5000), b1.next(isMessage(), 5000)]);
    expect(x.msg).to.equal('both');
    expect(y.seq).to.equal(x.seq);
  });

  it('groups: create, chat, notice, detail, join, members, leave, deport, recover, divert, update, destroy with members on three nodes', async () => {
    const [alice, bob, carol, dave] = newAccounts(4);
    const a = await on(0, alice, 'alice@0');
    const b = await on(1, bob, 'bob@1');
    const c = await on(2, carol, 'carol@2');
    const gid = await makeGroup(a, [bob, carol], [b, c]);
    // chat from node 1 reaches nodes 0 and 2 with one seq.
    b.request({ cat: 'group', act: 'chat', to: gid, msg: 'g1' });
    const [ga, gc] = await Promise.all([a.next(isMessage(), 5000), c.next(isMessage(), 5000)]);
    expect(ga).to.deep.include({ msg: 'g1', from: bob.address });
    expect(gc.seq).to.equal(ga.seq);
    // notice from the manager
    a.request({ cat: 'group', act: 'notice', to: gid, msg: 'hear ye' });
    const heard = await c.next((f) => f.method?.cat === 'group' && f.method?.act === 'notice' && f.msg === 'hear ye', 5000, 'the group notice');
    expect(heard.from).to.equal(alice.address);
    // detail from node 2
    const d1 = await ask(c, { cat: 'group', act: 'detail', id: gid });
    expect(d1.msg.group).to.deep.equal([alice.address, bob.address, carol.address]);
    // members: add dave (signed in on node 1)
    const d = await on(1, dave, 'dave@1');
    const m = await ask(a, { cat: 'group', act: 'members', id: gid, members: [alice.address, bob.address, carol.address, dave.address].join('_') });
    expect(m.type, JSON.stringify(m)).to.equal('notice');
    await d.next((f) => f.method?.cat === 'group' && f.msg?.id === gid, 5000, 'dave told');
    // update nick, from node 0, visible in detail from node 1
    const u = await ask(a, { cat: 'group', act: 'update', id: gid, key: 'nick', val: 'cluster-nick' });
    expect(u.type, JSON.stringify(u)).to.equal('notice');
    expect((await ask(d, { cat: 'group', act: 'detail', id: gid })).msg.nick).to.equal('cluster-nick');
    // deport dave, recover him, he leaves himself
    expect((await ask(a, { cat: 'group', act: 'deport', id: gid, account: dave.address })).type).to.equal('notice');
    expect((await ask(d, { cat: 'group', act: 'detail', id: gid })).code).to.equal(44501);
    expect((await ask(a, { cat: 'group', act: 'recover', id: gid, account: dave.address })).type).to.equal('notice');
    const joined = await ask(d, { cat: 'group', act: 'join', id: gid, account: dave.address });
    expect(joined.type, JSON.stringify(joined)).to.equal('notice');
    expect((await ask(d, { cat: 'group', act: 'detail', id: gid })).msg.group).to.include(dave.address);
    // divert the manager to bob (node 1); bob then destroys the group
    expect((await ask(a, { cat: 'group', act: 'divert', id: gid, manager: bob.address })).type).to.equal('notice');
    expect((await ask(b, { cat: 'group', act: 'detail', id: gid })).msg.manager).to.equal(bob.address);
    expect((await ask(c, { cat: 'group', act: 'leave', id: gid, account: carol.address })).type).to.equal('notice');
    expect((await ask(b, { cat: 'group', act: 'destory', id: gid })).type).to.equal('notice');
    expect((await ask(a, { cat: 'group', act: 'detail', id: gid })).code).to.equal(44100);
  });

  it('a group\'s history and its away members\' backlog are served by any node', async () => {
    const [alice, bob, carol] = newAccounts(3);
    const a = await on(0, alice);
    const b = await on(1, bob);
    const gid = await makeGroup(a, [bob, carol], [b]);
    for (let i = 0; i < 5; i++) await ask(b, { cat: 'group', act: 'chat', to: gid, msg: `h${i}` });
    const c = await on(2, carol);
    const backlog = await c.nextN(5, isMessage(), 5000);
    expect(backlog.map((x) => x.msg)).to.deep.equal(['h0', 'h1', 'h2', 'h3', 'h4']);
    const h = await ask(a, { cat: 'chat', act: 'history', group: gid, limit: 3 });
    expect(JSON.stringify(h.msg)).to.include('h4').and.not.include('"h1"');
  });

  it('edit and delete across nodes', async () => {
    const [alice, bob] = newAccounts(2);
    const a = await on(0, alice);
    const b = await on(1, bob);
    a.request({ cat: 'chat', act: 'chat', to: bob.address, msg: 'typo' });
    const orig = await b.next(isMessage(), 5000);
    const e = await ask(a, { cat: 'chat', act: 'edit', with: bob.address, seq: orig.seq, msg: 'fixed' });
    expect(e.type, JSON.stringify(e)).to.equal('notice');
    const n = await b.next(isNotice('chat', 'edit'), 5000);
    expect(n.msg).to.equal('fixed');
  });

  it('typing and live read receipts reach the other side on another node', async () => {
    const [alice, bob] = newAccounts(2);
    const a = await on(0, alice, 'alice@0');
    const b = await on(1, bob, 'bob@1');
    // Typing reaches only an account that shares a conversation: a message first, acknowledged (so
    // the sender's node has applied it) before the typing.
    await ask(a, { cat: 'chat', act: 'chat', to: bob.address, msg: 'read me', mid: 'typing-first' });
    const m = await b.next(isMessage(), 5000);
    a.request({ cat: 'chat', act: 'typing', with: bob.address });
    const t = await b.next(isNotice('chat', 'typing'), 5000);
    expect(t.msg).to.deep.equal({ account: alice.address, with: alice.address });
    const r = await ask(b, { cat: 'chat', act: 'read', with: alice.address, seq: m.seq });
    expect(r.type, JSON.stringify(r)).to.equal('notice');
    const seen = await a.next(isNotice('chat', 'read'), 5000);
    expect(seen.msg).to.deep.include({ account: bob.address, seq: m.seq });
  });

  it('presence across nodes: online while a socket is open on any node, offline when the last closes', async () => {
    const [alice, bob] = newAccounts(2);
    const a = await on(0, alice, 'alice@0');
    const b1 = await on(1, bob, 'bob-phone@1');
    await ask(a, { cat: 'chat', act: 'chat', to: bob.address, msg: 'contact' });
    await b1.next(isMessage(), 5000);
    const live = (f: Frame): boolean => isNotice('chat', 'presence')(f) && f.method.callback === undefined && f.msg?.account === bob.address;
    const ans = await ask(a, { cat: 'chat', act: 'presence', subscribe: [bob.address] });
    expect(ans.msg.presence[0]).to.include({ account: bob.address, online: true });
    const b2 = await on(2, bob, 'bob-desk@2');
    // Nodes hear of each other's sockets within milliseconds (presence is eventually consistent across nodes).
    await sleep(300);
    await b1.close();
    expect(await a.none(live, 500), 'still online on node 2').to.deep.equal([]);
    await b2.close();
    const off = await a.next(live, 5000, 'offline frame');
    expect(off.msg.online).to.equal(false);
    await on(1, bob, 'bob-again@1');
    expect((await a.next(live, 5000, 'online frame')).msg.online).to.equal(true);
  });

  it('positions follow the account: acknowledged on node 0, not delivered again at sign-in on node 1', async () => {
    const [alice, bob] = newAccounts(2);
    const a = await on(2, alice, 'alice@2');
    const b0 = await on(0, bob, 'bob@0');
    for (let i = 0; i < 5; i++) await ask(a, { cat: 'chat', act: 'chat', to: bob.address, msg: `old${i}` });
    const old = await b0.nextN(5, isMessage(), 5000);
    b0.request({ cat: 'chat', act: 'ack', seq: old[4]!.seq });
    await sleep(300);
    await b0.close();
    for (let i = 0; i < 2; i++) await ask(a, { cat: 'chat', act: 'chat', to: bob.address, msg: `new${i}` });
    const b1 = await on(1, bob, 'bob@1');
    const got = await b1.nextN(2, isMessage(), 5000);
    expect(got.map((f) => f.msg)).to.deep.equal(['new0', 'new1']);
    expect(await b1.none(isMessage(), 500), 'nothing acknowledged comes again').to.deep.equal([]);
  });
});
