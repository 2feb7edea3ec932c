/**
 * Child process of the crash and backup tests: appends records to every partition of a data dir,
 * forever, printing `<partition> <lsn>` once each append is acknowledged (flush resolved). It is
 * meant to be killed with SIGKILL.
 *
 *   node dist/test/support/migrate-v1-writer.js <dataDir> <always|grouped|off> <partitions> [checkpointEvery]
 *
 * Each record is {"p":<partition>,"i":<lsn>,"pad":"…"}; the partition state is {"n":<records
 * applied>,"sum":<sum of i>}, checkpointed every `checkpointEvery` records (0: never).
 */
import { PartitionStore, type FsyncPolicy } from '../../src/migrate/v1/partition';

interface State { n: number; sum: number }

async function main(): Promise<void> {
  const [dir, policy, parts, every] = process.argv.slice(2);
  if (dir === undefined || policy === undefined) throw new Error('usage: migrate-v1-writer DIR POLICY [PARTITIONS] [CHECKPOINT_EVERY]');
  const partitions = Number(parts ?? '1');
  const checkpointEvery = Number(every ?? '0');
  const stores: { store: PartitionStore; state: State }[] = [];
  for (let p = 0; p < partitions; p++) {
    const r = await PartitionStore.open({ dir, partition: p, fsync: policy as FsyncPolicy, partitions });
    const state = (r.snapshot as State | null) ?? { n: 0, sum: 0 };
    for (const rec of r.records as { i: number }[]) {
      state.n++;
      state.sum += rec.i;
    }
    stores.push({ store: r.store, state });
  }
  const pad = 'x'.repeat(100);
  for (;;) {
    for (let p = 0; p < partitions; p++) {
      const s = stores[p]!;
      const i = s.store.lsn + 1;
      const lsn = s.store.append([{ p, i, pad }]);
      s.state.n++;
      s.state.sum += i;
      if (checkpointEvery > 0 && lsn % checkpointEvery === 0) void s.store.checkpoint(s.state);
      await s.store.flush();
      process.stdout.write(`${p} ${lsn}\n`);
    }
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`migrate-v1-writer: ${String((e as Error).stack ?? e)}\n`);
  process.exit(1);
});
