/**
 * The one place that picks the carrier (as store/open.ts picks a store backend): the cluster's
 * when `--cluster` names NATS, else the embedded one on the store in the data directory. An
 * operator's mistake (NATS unreachable, a store missing, damaged or that cannot be opened) is a StartupError: one line.
 */
import type { Settings } from '../config';
import type { Logger } from '../log';
import type { Carrier } from '../carrier/port';
import { EmbeddedCarrier } from '../carrier/embedded';
import { ClusterCarrier } from '../cluster/carrier';
import { migrateDataDir } from '../migrate/migrate';
import { openStore } from '../store/open';
import { checkStoreBeforeOpen, StartupError } from './startup';

export async function openCarrier(s: Settings, log: Logger): Promise<Carrier> {
  if (s.cluster !== undefined) {
    // Durable state is in JetStream; this node's store is a replica of it.
    return ClusterCarrier.open(s, log.child({ component: 'cluster' })).catch((err: unknown) => {
      throw new StartupError(`cluster ${s.clusterName} at ${s.cluster} cannot be joined: ${(err as Error).message}`);
    });
  }
  // LMDB is opened first where its crash on a damaged file cannot end this process.
  if (s.store === 'lmdb') await checkStoreBeforeOpen(s, log);
  const store = await openStore({ backend: s.store, dir: s.data, fsync: s.fsync, writer: s.storeWriter }).catch((err: unknown) => {
    throw new StartupError(`the store in ${s.data} cannot be opened: ${(err as Error).message}`);
  });
  // A directory written by the journal-and-checkpoint version moves into the store, once.
  await migrateDataDir(s.data, store);
  return new EmbeddedCarrier(store, s.data);
}
