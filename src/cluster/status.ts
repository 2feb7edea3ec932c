/** Cluster mode's section of /status: the nodes, the partitions each serves, the engine's health and every part's figures. */
import type { Engine } from './engine';
import type { Ledger } from './ledger';
import type { Links } from './links';
import type { NodeInfo, Ownership } from './ownership';
import type { EnginePositions } from './positions';
import type { PresenceSync } from './presence-sync';

export interface ClusterParts {
  name: string;
  nodeId: string;
  partitions: number;
  ready: boolean;
  engine: Engine;
  ownership: Ownership;
  ledger: Ledger;
  links: Links;
  positions: EnginePositions;
  presence: PresenceSync;
  waitingCalls: number;
  /** Partitions whose records this node keeps, and what filling them in and deciding before the ledger did. */
  keeps: number[];
  /** Partitions kept elsewhere whose records were dropped here, and how many records. */
  dropped: Record<string, number>;
  backfill: Record<string, number>;
  snapshots: Record<string, number>;
  owned: Record<string, number>;
  counters: { forwarded: number; refusedMoved: number; framesForwarded: number };
}

export function clusterStatus(c: ClusterParts): Record<string, unknown> {
  const nodes = c.ownership.liveNodes().map((n: NodeInfo) => ({ ...n, self: n.id === c.nodeId }));
  return {
    name: c.name,
    node: c.nodeId,
    epoch: c.engine.epoch,
    engine: c.engine.health(),
    ready: c.ready,
    serving: c.ownership.servingList(),
    settled: c.ownership.settled(),
    partitions: c.partitions,
    nodes,
    ledger: c.ledger.stats(),
    ownership: c.ownership.counters,
    links: c.links.counters,
    positions: c.positions.counters,
    presence: c.presence.stats(),
    waitingCalls: c.waitingCalls,
    keeps: c.keeps,
    dropped: c.dropped,
    backfill: c.backfill,
    snapshots: c.snapshots,
    owned: c.owned,
    ...c.counters,
  };
}
