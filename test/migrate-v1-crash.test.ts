import { expect } from 'chai';
import { PartitionStore } from '../src/migrate/v1/partition';
import { scratchEachTest, type Captured } from './support/store-log';
import { startWriter } from './support/migrate-v1-child';

interface Rec { p: number; i: number }
interface State { n: number; sum: number }

/** Opens every partition and checks: each acknowledged lsn is there, records are whole and in order. */
async function verify(dir: string, partitions: number, acked: Map<number, number[]>): Promise<number> {
  let total = 0;
  for (let p = 0; p < partitions; p++) {
    const r = await PartitionStore.open({ dir, partition: p, fsync: 'off' });
    const state: State = { ...((r.snapshot as State | null) ?? { n: 0, sum: 0 }) };
    expect(state.n, `snapshot of p${p} covers its lsn`).to.equal(r.snapshotLsn);
    (r.records as Rec[]).forEach((rec, k) => {
      expect(rec.p).to.equal(p);
      expect(rec.i, `record ${k} of p${p}`).to.equal(r.snapshotLsn + 1 + k);
      state.n++;
      state.sum += rec.i;
    });
    // Snapshot + replay is the state the writer had: n records with i = 1..n.
    expect(state.n).to.equal(r.store.lsn);
    expect(state.sum).to.equal((state.n * (state.n + 1)) / 2);
    const mine = acked.get(p) ?? [];
    const maxAcked = mine.length > 0 ? mine[mine.length - 1]! : 0;
    expect(r.store.lsn, `p${p}: every acknowledged lsn (up to ${maxAcked}) survives`).to.be.at.least(maxAcked);
    total += mine.length;
    await r.store.close();
  }
  return total;
}

describe('migrate v1: crash safety (child process killed with SIGKILL)', function () {
  this.timeout(60_000);
  let dir: string;
  let logs: Captured;
  scratchEachTest('crash', (d, l) => { dir = d; logs = l; });

  for (const policy of ['always', 'grouped'] as const) {
    it(`fsync '${policy}': every lsn acknowledged before the kill is in the journal`, async () => {
      const w = startWriter(dir, policy, 1);
      await w.waitFor(300);
      await w.kill();
      const acked = w.acked.get(0)!;
      expect(acked.slice(0, 5)).to.deep.equal([1, 2, 3, 4, 5]);
      expect(await verify(dir, 1, w.acked)).to.equal(acked.length);
    });
  }

  it('kills a writer that checkpoints, twice, and restores snapshot + journal each time', async () => {
    for (let round = 0; round < 2; round++) {
      const w = startWriter(dir, 'grouped', 3, 50);
      await w.waitFor(600 + round * 100);
      await w.kill();
      await verify(dir, 3, w.acked);
    }
  });
});
