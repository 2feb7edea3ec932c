/**
 * Where a cluster keeps things in NATS: one stream (the ledger every node reads), a few
 * key-value buckets, an object store of snapshots, and the subjects nodes talk to each other on. Every name derives from the
 * cluster name, so several clusters share one NATS without seeing each other.
 */
import { CLUSTER_NAME } from '../config';

/** A cluster name: letters, digits, `_` and `-` (it becomes part of stream, bucket and subject names). */
export { CLUSTER_NAME };

export interface ClusterNames {
  /** The JetStream stream holding the ledger. */
  stream: string;
  /** Every subject of the ledger (the stream's filter). */
  ledgerAll: string;
  /** Entries of the group actors of partition `p`: written by its owner only, fenced by sequence. */
  partition(p: number): string;
  /** Entries of node `id` that no singleton decides (direct messages, edits, sign-in state). */
  node(id: string): string;
  /** Live nodes (a key per node, kept by heartbeats; the bucket's TTL drops a silent one). */
  nodesBucket: string;
  /** Who owns each partition (routing; the stream's sequence checks are what fence a writer). */
  ownersBucket: string;
  /** Account positions (delivered, acknowledged), one key per account. */
  positionsBucket: string;
  /** Cluster-wide settings made once (the resume-token key). */
  metaBucket: string;
  /** Object store of the snapshots the ledger is trimmed below (snapshots.ts): `shared`, and `p.<n>` per partition. */
  snapshotsBucket: string;
  /** Core NATS subject of a node's mailbox: group calls for the partitions it owns, frames for its sockets. */
  inbox(id: string): string;
  /** Core NATS subject of a node's reads: history and backlog pages of the conversations it stores, asked by other nodes. */
  reads(id: string): string;
  /** Core NATS subject every node listens on for ephemeral frames (typing, receipts, presence). */
  ephemeral: string;
}

export function clusterNames(name: string): ClusterNames {
  if (!CLUSTER_NAME.test(name)) throw new Error(`cluster name ${JSON.stringify(name)}: use 1 to 32 letters, digits, _ or -`);
  const root = `imgc.${name}`;
  return {
    stream: `IMGC_${name}`,
    ledgerAll: `${root}.ledger.>`,
    partition: (p) => `${root}.ledger.p.${p}`,
    node: (id) => `${root}.ledger.n.${id}`,
    nodesBucket: `imgc_${name}_nodes`,
    ownersBucket: `imgc_${name}_owners`,
    positionsBucket: `imgc_${name}_positions`,
    metaBucket: `imgc_${name}_meta`,
    snapshotsBucket: `imgc_${name}_snapshots`,
    inbox: (id) => `${root}.node.${id}`,
    reads: (id) => `${root}.reads.${id}`,
    ephemeral: `${root}.ephemeral`,
  };
}
