/**
 * Joining a cluster: the engine connection, this node's part of the store (started from the shared snapshot when it has nothing yet), a node number no
 * live node has, and the secrets every node shares (the resume-token key, the verification
 * issuer's key seed, the settings placement depends on).
 */
import { randomBytes, randomInt } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Settings } from '../config';
import { newServerKeySeed } from '../chain/token';
import { Engine } from './engine';
import { HEARTBEATS_TO_EXPIRE, startingInfo } from './ownership';
import { EnginePositions } from './positions';
import { Replica } from './replica';
import { Snapshots } from './snapshots';

/** How long a node tries to make or read a shared secret before it gives up (exit 2). */
const SECRET_TRIES_MS = 10_000;

export interface Joined {
  engine: Engine;
  replica: Replica;
  /** The last ledger sequence the replica holds (replay goes on after it). */
  applied: number;
  positions: EnginePositions;
  snapshots: Snapshots;
  /** This node's number (its id is the number in base 36). */
  n: number;
}

/** Connects to the engine, opens this node's replica (not applying yet) and takes a node number. */
export async function joinCluster(settings: Settings, log: Logger): Promise<Joined> {
  const engine = await Engine.open({ url: settings.cluster!, name: settings.clusterName, replicas: settings.clusterReplicas, nodeTtlMs: settings.clusterHeartbeatMs * HEARTBEATS_TO_EXPIRE, log: log.child({ component: 'engine' }) });
  let positions: EnginePositions | undefined;
  const firstSeq = await engine.firstSeq();
  const { replica, applied } = await Replica.open({
    dir: join(settings.data, `cluster-${settings.clusterName}`),
    backend: settings.store,
    epoch: engine.epoch,
    firstSeq,
    positions: (local) => (positions = new EnginePositions(local.positions, engine.positions, log.child({ component: 'positions' }))),
  });
  const snapshots = new Snapshots(engine, settings.partitions, log.child({ component: 'snapshots' }));
  return { engine, replica, applied: await fromSnapshot(replica, applied, firstSeq, snapshots, log), positions: positions!, snapshots, n: await nodeNumber(engine) };
}

/**
 * A node with nothing of the ledger yet starts from the shared snapshot (every state and
 * membership) when there is one, and replays only what came after it, so its start does not grow
 * with the history; the records of its partitions come with their claims (stored-partitions.ts).
 * Refused when the ledger was trimmed and no snapshot covers what it no longer holds.
 */
async function fromSnapshot(replica: Replica, applied: number, firstSeq: number, snapshots: Snapshots, log: Logger): Promise<number> {
  if (applied > 0) return applied;
  const t0 = Date.now();
  const seq = await snapshots.loadShared(replica);
  if (seq === undefined) {
    if (firstSeq > 1) throw new Error(`the ledger starts at entry ${firstSeq} and there is no shared snapshot to start from`);
    return 0;
  }
  if (seq + 1 < firstSeq) throw new Error(`the shared snapshot covers the ledger through ${seq}, but it starts at ${firstSeq}`);
  replica.appliedThrough(seq);
  await replica.flush();
  log.info({ seq, ms: Date.now() - t0 }, 'started from the shared snapshot');
  return seq;
}

/**
 * A number no live node has: drawn at random and taken by creating its key in the nodes bucket
 * (create fails for a key that exists). The heartbeat keeps the key from then on.
 */
async function nodeNumber(engine: Engine): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const n = randomInt(1, 2 ** 20);
    try {
      await engine.nodes.create(`n.${n.toString(36)}`, startingInfo(n.toString(36)));
      return n;
    } catch (err) {
      if (attempt >= 5) throw err;
    }
  }
}

/** The cluster's shared secrets and settings, in its meta bucket: made once, by whichever node asks first. */
export class Secrets {
  constructor(private readonly engine: Engine, private readonly partitions: number) {}

  /** The resume-token key, the same on every node. */
  async resumeKey(): Promise<Buffer> {
    return Buffer.from(await this.secret('resume-key', () => randomBytes(32).toString('hex')), 'hex');
  }

  /** The server key's seed (verification tokens), the same on every node: one issuer for the cluster. */
  serverKeySeed(): Promise<string> { return this.secret('server-key-seed', newServerKeySeed); }

  /** Settings every node must share (placement depends on them): recorded by the first node; a node started with others does not join. */
  async checkShared(): Promise<void> {
    const mine = JSON.stringify({ partitions: this.partitions });
    const theirs = await this.secret('shared-settings', () => mine);
    if (theirs !== mine) throw new Error(`this cluster runs with ${theirs}, this node with ${mine}: start it with the cluster's settings`);
  }

  /**
   * A secret of the cluster (create fails for every node but the first). While JetStream elects a
   * leader (a NATS cluster starting, or one of its servers gone) the create and the read may both
   * fail for a moment: they are tried again, for up to SECRET_TRIES_MS, before the node gives up.
   */
  private async secret(name: string, make: () => string): Promise<string> {
    const until = Date.now() + SECRET_TRIES_MS;
    for (let attempt = 1; ; attempt++) {
      await this.engine.meta.create(name, make()).catch(() => undefined);
      const e = await this.engine.meta.get(name).catch(() => null);
      if (e && e.operation === 'PUT') return e.string();
      if (Date.now() >= until) throw new Error(`the cluster's ${name} cannot be read`);
      await new Promise((r) => setTimeout(r, Math.min(1000, 100 * attempt)));
    }
  }
}
