/**
 * Cluster mode on a NATS cluster of three servers with the stream and buckets replicated three
 * times (--cluster-replicas 3): IMGC nodes keep serving, and lose nothing acknowledged, when one
 * NATS server dies.
 */
import { expect } from 'chai';
import { accountsReady, newAccounts, type Account } from './support/accounts';
import { ClientPool, isMessage, sleep, type Frame } from './support/client';
import { ask, device, makeGroup } from './support/devices';
import { startCluster, type ClusterHandle } from './support/cluster';
import { natsAvailable, startNatsCluster } from './support/nats';

describe('cluster: on a NATS cluster of three, replicated three times', function () {
  this.timeout(120_000);
  const pool = new ClientPool();
  let nats: Awaited<ReturnType<typeof startNatsCluster>>;
  let cluster: ClusterHandle | undefined;

  before(async function () {
    if (!natsAvailable()) this.skip();
    await accountsReady();
  });
  // Each attempt (npm test retries this file) on a NATS cluster of its own: the test kills one of
  // its servers, and an attempt's nodes are stopped before the next one starts.
  beforeEach(async () => { nats = await startNatsCluster(3); });
  afterEach(async () => {
    pool.closeAll();
    await cluster?.stop();
    cluster = undefined;
    await nats?.stop();
  });

  it('a NATS server dies: messages acknowledged before and after are all delivered and in history', async () => {
    // JetStream needs its meta leader before a replicated stream can be made: startCluster retries through startServer's deadline.
    cluster = await startCluster(2, { natsUrl: nats.url, args: ['--cluster-replicas', '3'] });
    const [alice, bob, carol] = newAccounts(3) as [Account, Account, Account];
    const a = await device(pool, cluster.nodes[0]!.url, alice, 'alice@0', false);
    const b = await device(pool, cluster.nodes[1]!.url, bob, 'bob@1', false);
    const gid = await makeGroup(a, [bob, carol], [b]);
    const acked: string[] = [];
    const send = async (text: string): Promise<void> => {
      for (let attempt = 0; attempt < 20; attempt++) {
        const f: Frame = await ask(a, { cat: 'group', act: 'chat', to: gid, msg: text, mid: text }).catch(() => ({ type: 'timeout' }));
        if (f.type === 'notice') { acked.push(text); return; }
        await sleep(250);
      }
    };
    for (let i = 0; i < 10; i++) await send(`before-${i}`);
    await nats.servers[2]!.stop();
    for (let i = 0; i < 10; i++) await send(`after-${i}`);
    expect(acked.filter((t) => t.startsWith('after-')).length, 'writes go on with two of three NATS servers').to.equal(10);
    const got = await b.nextN(20, isMessage(), 15_000, 'group messages').catch((e: unknown) => {
      throw new Error(`${String(e)}\nnode 1 said:\n${cluster!.nodes[1]!.output().slice(-3000)}`);
    });
    expect(got.map((f) => f.msg)).to.deep.equal(acked);
    const c = await device(pool, cluster.nodes[1]!.url, carol, 'carol@1', false);
    const backlog = await c.nextN(20, isMessage(), 15_000, 'backlog');
    expect(backlog.map((f) => f.msg)).to.deep.equal(acked);
  });
});
