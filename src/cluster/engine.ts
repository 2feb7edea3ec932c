/**
 * The cluster's engine: one NATS connection with JetStream. It makes (or finds) the ledger stream,
 * the key-value buckets and the object store of snapshots of the cluster, and says whether the
 * engine is reachable. Everything durable in cluster mode lives here; a node keeps caches.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import type { Logger } from 'pino';
import { PUBLISH_TIMEOUT_MS } from './entry';
import { clusterNames, type ClusterNames } from './names';

export interface EngineOptions {
  url: string;
  name: string;
  /** Replicas of the stream and buckets (1 on a single nats-server; 3 on a NATS cluster of 3). */
  replicas: number;
  /** How long a node's heartbeat key lives: a node silent this long is gone. */
  nodeTtlMs: number;
  log: Logger;
}

export interface EngineHealth {
  /** Connected to NATS now. */
  connected: boolean;
  /** ms since the epoch of the last change of `connected`. */
  since: number;
  /** Times the connection was lost since start. */
  disconnects: number;
  server: string | null;
}

/** What NATS takes in one message when the server does not say. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** The largest message NATS carries on this connection (a ledger entry, a read's answer). */
export function maxPayload(nc: NatsConnection): number {
  return nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
}

/** How long start-up keeps trying to make or find the stream and buckets. */
const SETUP_MS = 30_000;

async function retrying<T>(fn: () => Promise<T>, withinMs: number, log: Logger): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (let wait = 200; ; wait = Math.min(2000, wait * 2)) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() + wait > deadline) throw err;
      log.warn({ err: (err as Error).message }, 'JetStream not ready yet; trying again');
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

export class Engine {
  readonly names: ClusterNames;
  private state: EngineHealth = { connected: true, since: Date.now(), disconnects: 0, server: null };
  private readonly listeners: Array<(h: EngineHealth) => void> = [];

  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    readonly nodes: KV,
    readonly owners: KV,
    readonly positions: KV,
    readonly meta: KV,
    /** The snapshots of partitions and of the shared state (snapshots.ts). */
    readonly objects: ObjectStore,
    /** The ledger's identity: the stream's creation time. A new stream is a new epoch. */
    readonly epoch: string,
    names: ClusterNames,
    private readonly log: Logger,
  ) {
    this.names = names;
    this.state.server = nc.getServer();
    void this.watchStatus();
  }

  static async open(opts: EngineOptions): Promise<Engine> {
    const names = clusterNames(opts.name);
    // Reconnects forever: a node cut off from NATS stops writing (its publishes fail) and comes back
    // when NATS does; it never serves writes from its caches alone.
    const nc = await connect({ servers: opts.url, name: `imgc-${opts.name}`, maxReconnectAttempts: -1, reconnectTimeWait: 250, pingInterval: 2000, maxPingOut: 2, noAsyncTraces: true });
    try {
      // A NATS cluster that has just started answers 503 until JetStream has elected its leader.
      return await retrying(async () => {
        const jsm = await jetstreamManager(nc);
        const info = await jsm.streams.info(names.stream).catch(async () => {
          // `deny_delete`: nothing removes ledger entries behind the nodes' backs.
          return jsm.streams.add({ name: names.stream, subjects: [names.ledgerAll], num_replicas: opts.replicas, deny_delete: true, duplicate_window: 120_000_000_000 });
        });
        const js = jetstream(nc, { timeout: PUBLISH_TIMEOUT_MS });
        const kvm = new Kvm(js);
        const bucket = (name: string, extra: Record<string, unknown> = {}): Promise<KV> => kvm.create(name, { replicas: opts.replicas, history: 1, ...extra });
        const [nodes, owners, positions, meta, objects] = await Promise.all([
          bucket(names.nodesBucket, { ttl: opts.nodeTtlMs }),
          bucket(names.ownersBucket),
          bucket(names.positionsBucket),
          bucket(names.metaBucket),
          new Objm(js).create(names.snapshotsBucket, { replicas: opts.replicas }),
        ]);
        return new Engine(nc, js, jsm, nodes, owners, positions, meta, objects, info.created, names, opts.log);
      }, SETUP_MS, opts.log);
    } catch (err) {
      await nc.close();
      throw err;
    }
  }

  health(): EngineHealth { return { ...this.state }; }

  onHealth(listener: (h: EngineHealth) => void): void { this.listeners.push(listener); }

  /** The ledger's oldest sequence still held (above 1 once it was trimmed below its snapshots). */
  async firstSeq(): Promise<number> {
    return (await this.jsm.streams.info(this.names.stream)).state.first_seq;
  }

  /** The ledger's newest sequence now (what a node must have applied to be current). */
  async lastSeq(): Promise<number> {
    return (await this.jsm.streams.info(this.names.stream)).state.last_seq;
  }

  private async watchStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      const connected = s.type === 'disconnect' ? false : s.type === 'reconnect' ? true : undefined;
      if (connected === undefined || connected === this.state.connected) continue;
      this.state = { ...this.state, connected, since: Date.now(), disconnects: this.state.disconnects + (connected ? 0 : 1), server: this.nc.getServer() };
      this.log[connected ? 'info' : 'warn']({ server: this.state.server }, connected ? 'NATS reconnected' : 'NATS connection lost: writes wait or fail until it returns');
      for (const l of this.listeners) l(this.health());
    }
  }

  async close(): Promise<void> {
    await this.nc.drain().catch(() => this.nc.close());
  }
}
