/**
 * When a node writes snapshots and trims the ledger (src/cluster/snapshot-policy.ts), with fake
 * snapshots: a partition's at first and then after a quarter more records, the shared one by the
 * node serving partition 0 every N entries, and the trim below what the snapshots cover and every
 * live node applied.
 */
import { expect } from 'chai';
import { SnapshotPolicy } from '../src/cluster/snapshot-policy';
import type { Snapshots, Written } from '../src/cluster/snapshots';
import { logger } from '../src/log';
import type { Store } from '../src/store/ports';

function harness(opts = { minRecords: 10, sharedEntries: 100 }) {
  const objects = new Map<string, number>();
  const writes: string[] = [];
  const trims: number[] = [];
  const state = { serving: [0, 3], stored: new Map<number, number>(), applied: 50, live: [50, 40] };
  const counts = new Map<string, number>();
  const snapshots = {
    listed: () => Promise.resolve(new Map(objects)),
    writePartition: (p: number, seq: number): Promise<Written> => {
      writes.push(`p.${p}@${seq}`);
      objects.set(`p.${p}`, seq);
      return Promise.resolve({ object: `p.${p}`, seq, count: counts.get(`p.${p}`) ?? 40, bytes: 1 });
    },
    writeShared: (seq: number): Promise<Written> => {
      writes.push(`shared@${seq}`);
      objects.set('shared', seq);
      return Promise.resolve({ object: 'shared', seq, count: 1, bytes: 1 });
    },
    covered: () => {
      const all = ['shared', ...[0, 1, 2, 3].map((p) => `p.${p}`)].map((o) => objects.get(o));
      return Promise.resolve(all.some((s) => s === undefined) ? undefined : Math.min(...(all as number[])));
    },
    trimLedger: (below: number) => { trims.push(below); return Promise.resolve(1); },
  } as unknown as Snapshots;
  const policy = new SnapshotPolicy({
    snapshots, store: {} as Store, partitions: 4,
    serving: () => state.serving,
    storedOf: (p) => state.stored.get(p) ?? 0,
    applied: () => state.applied,
    liveApplied: () => state.live,
    log: logger({ part: 'test' }),
  }, { everyMs: 1000, ...opts });
  return { policy, objects, writes, trims, state, counts };
}

describe('cluster: when snapshots are written and the ledger trimmed', () => {
  it('writes a served partition\'s snapshot when there is none, then again after max(minRecords, a quarter of it) more records', async () => {
    const h = harness();
    await h.policy.look();
    expect(h.writes).to.include.members(['p.0@50', 'p.3@50']);
    h.writes.length = 0;
    h.state.stored.set(3, 9);
    await h.policy.look();
    expect(h.writes.filter((w) => w.startsWith('p.'))).to.deep.equal([]);
    h.state.stored.set(3, 10);
    h.state.applied = 60;
    await h.policy.look();
    expect(h.writes.filter((w) => w.startsWith('p.'))).to.deep.equal(['p.3@60']);
  });

  it('a partition with a few new records is written again once its snapshot lags the ledger by sharedEntries (it holds the trim back)', async () => {
    const h = harness();
    await h.policy.look();
    h.writes.length = 0;
    h.state.stored.set(3, 1);
    h.state.applied = 149;
    await h.policy.look();
    expect(h.writes.filter((w) => w.startsWith('p.3'))).to.deep.equal([]);
    h.state.applied = 150;
    await h.policy.look();
    expect(h.writes.filter((w) => w.startsWith('p.3'))).to.deep.equal(['p.3@150']);
    // With nothing new, no rewrite however far the ledger went.
    h.state.applied = 1000;
    await h.policy.look();
    expect(h.writes.filter((w) => w.startsWith('p.0'))).to.deep.equal([]);
  });

  it('a large snapshot waits for a quarter of its size in new records', async () => {
    const h = harness();
    h.counts.set('p.3', 400);
    await h.policy.look();
    h.writes.length = 0;
    h.state.stored.set(3, 99);
    await h.policy.look();
    expect(h.writes.filter((w) => w.startsWith('p.3'))).to.deep.equal([]);
    h.state.stored.set(3, 100);
    await h.policy.look();
    expect(h.writes.filter((w) => w.startsWith('p.3'))).to.have.length(1);
  });

  it('the node serving partition 0 writes the shared snapshot every sharedEntries entries; another node never does', async () => {
    const h = harness();
    await h.policy.look();
    expect(h.writes).to.include('shared@50');
    h.writes.length = 0;
    h.state.applied = 149;
    await h.policy.look();
    expect(h.writes).to.not.include('shared@149');
    h.state.applied = 150;
    await h.policy.look();
    expect(h.writes).to.include('shared@150');
    const other = harness();
    other.state.serving = [3];
    await other.policy.look();
    expect(other.writes.some((w) => w.startsWith('shared'))).to.equal(false);
    expect(other.trims).to.deep.equal([]);
  });

  it('trims below what every snapshot covers and every live node applied, and not before every partition has one', async () => {
    const h = harness();
    await h.policy.look();
    // Partitions 1 and 2 are served elsewhere and have no snapshot yet.
    expect(h.trims).to.deep.equal([]);
    h.objects.set('p.1', 45);
    h.objects.set('p.2', 48);
    await h.policy.look();
    // Covered through 45; live nodes applied 50 and 40: below 41.
    expect(h.trims).to.deep.equal([41]);
    h.state.live = [50, 49];
    await h.policy.look();
    expect(h.trims.at(-1)).to.equal(46);
  });
});
