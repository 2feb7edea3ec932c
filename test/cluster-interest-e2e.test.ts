/**
 * A node with no part in an entry skips it unread (src/cluster/interest.ts), on three real nodes
 * and a real nats-server: it counts the entries it skipped, and skipping loses nothing. The
 * recipient, away while its messages were sent, signs in afterwards on the node that skipped them
 * and gets every one in its backlog (the pair's first message made it a member there), then gets
 * the next live. The owner that published the entries applied them from memory.
 */
import { expect } from 'chai';
import { convPartition } from '../src/actors/address';
import { directConv } from '../src/store/ports';
import { newAccounts, type Account } from './support/accounts';
import { isMessage } from './support/client';
import { clusterPerTest, startCluster, type ClusterStatus } from './support/cluster';
import { ask, device } from './support/devices';
import { getStatus, type ServerHandle } from './support/server';

const PARTITIONS = 8;
type LedgerStatus = ClusterStatus & { cluster: { ledger: { skipped: number; fromMemory: number } } };

describe('cluster: entries a node has no part in are skipped unread', function () {
  this.timeout(120_000);
  const { pool, use } = clusterPerTest();

  it('a node holding no socket of a pair skips its entries; the recipient signing in there later has every message, then the next live', async () => {
    const cluster = use(await startCluster(3, { args: ['--partitions', String(PARTITIONS)] }));
    await cluster.ready();
    const st = await Promise.all(cluster.nodes.map((n) => getStatus<LedgerStatus>(n)));
    // The skipping node `x` must not keep the pair's partition (its keeper reads every entry of it).
    const x = st.findIndex((s) => s.cluster.serving.length < PARTITIONS);
    expect(x, 'a node that does not serve every partition').to.be.at.least(0);
    const sender = cluster.nodes[(x + 1) % 3]!;
    const xNode: ServerHandle = cluster.nodes[x]!;
    let pair: [Account, Account] | undefined;
    for (let k = 0; k < 50 && pair === undefined; k++) {
      const [a, b] = newAccounts(2) as [Account, Account];
      if (!st[x]!.cluster.serving.includes(convPartition(directConv(a.address, b.address), PARTITIONS))) pair = [a, b];
    }
    if (pair === undefined) throw new Error('no pair outside the node\'s partitions');
    const [alice, bob] = pair;

    const owner = cluster.nodes[st.findIndex((s) => s.cluster.serving.includes(convPartition(directConv(alice.address, bob.address), PARTITIONS)))]!;
    const fromMemoryBefore = (await getStatus<LedgerStatus>(owner)).cluster.ledger.fromMemory;
    const skippedBefore = (await getStatus<LedgerStatus>(xNode)).cluster.ledger.skipped;
    const a = await device(pool, sender.url, alice, 'alice', false);
    const N = 12;
    for (let k = 0; k < N; k++) {
      const f = await ask(a, { cat: 'chat', act: 'chat', to: bob.address, msg: `m${k}`, mid: `m${k}` });
      expect(f.type, JSON.stringify(f)).to.equal('notice');
    }
    const after = (await getStatus<LedgerStatus>(xNode)).cluster.ledger;
    // The first message concerns every node (it makes the pair members); the rest are not x's.
    expect(after.skipped - skippedBefore, 'entries x skipped').to.be.at.least(N - 1);
    // The owner published every one of them, and applied them from memory, not decoded again.
    expect((await getStatus<LedgerStatus>(owner)).cluster.ledger.fromMemory - fromMemoryBefore, 'entries the owner applied from memory').to.be.at.least(N);

    const b = await device(pool, xNode.url, bob, 'bob@x', false);
    const backlog = await b.nextN(N, isMessage(), 8000);
    expect(backlog.map((f) => f.msg)).to.deep.equal(Array.from({ length: N }, (_, k) => `m${k}`));
    const seqs = backlog.map((f) => f.seq as number);
    expect(seqs, 'in seq order').to.deep.equal([...seqs].sort((p, q) => p - q));

    // Bob is here now: the next message is read by x and reaches him live, after the backlog.
    await ask(a, { cat: 'chat', act: 'chat', to: bob.address, msg: 'live', mid: 'live' });
    const live = await b.next(isMessage(), 5000, 'live message');
    expect(live.msg).to.equal('live');
    expect(live.seq as number).to.be.greaterThan(seqs[seqs.length - 1]!);
  });
});
