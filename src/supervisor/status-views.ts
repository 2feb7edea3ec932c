/**
 * What /status, /metrics and /readyz read of the node (status/source.ts), gathered from the parts
 * that keep each figure. The node hands over its parts; this file only assembles views.
 */
import type { Settings } from '../config';
import type { Logger } from '../log';
import type { Delivery } from '../actors/delivery';
import type { EphemeralOut } from '../actors/ephemeral-out';
import type { Presence } from '../actors/presence';
import type { Receipts } from '../actors/receipts';
import type { Typing } from '../actors/typing';
import type { Carrier } from '../carrier/port';
import type { ChainView, ClusterView, LimitsView, ShardStats, ShardView, SignInView, StatusSource, StoreHealthView } from '../status/source';
import { backupNow, backupsView } from './backups';
import type { Counters } from './counters';
import type { Limits } from './limits';
import type { Registry } from './registry';
import type { Shards } from './shards';
import type { ShardHost } from './shard-host';
import type { SignIn } from './sign-in';
import type { Verification } from './verification';

/** The node's parts, as they are once it started (the actors and the carrier are undefined before). */
export interface NodeParts {
  readonly settings: Settings;
  readonly startedAt: number;
  readonly ready: boolean;
  readonly counters: Counters;
  readonly registry: Registry;
  readonly shards: Shards<ShardHost>;
  readonly limits: Limits;
  readonly signing: SignIn;
  readonly verification: Verification;
  readonly ephemeralOut: EphemeralOut;
  readonly carrier: Carrier | undefined;
  readonly actors: { delivery: Delivery; presence: Presence; typing: Typing; receipts: Receipts } | undefined;
  /** Ends every resume token of the account issued until now (durable when it resolves). */
  revokeAccount(account: string): Promise<void>;
  readonly log: Logger;
}

export class StatusViews implements StatusSource {
  constructor(private readonly node: NodeParts) {}

  get startedAt(): number { return this.node.startedAt; }
  get ready(): boolean { return this.node.ready; }
  get connections(): number { return this.node.registry.connectionCount; }
  get registry(): { accountCount: number } { return this.node.registry; }
  get counters(): Counters { return this.node.counters; }
  get shards(): readonly ShardView[] { return this.node.shards.hosts; }
  get settings(): Settings { return this.node.settings; }

  shardStats(): Promise<ShardStats[]> { return this.node.shards.stats(); }
  shardStatsOf(index: number): Promise<ShardStats> { return this.node.shards.statsOf(index); }
  chainState(): ChainView | null { return this.node.verification.chainState(); }
  backupsState(): { root: string; keep: number; kept: number } { return backupsView(this.node.settings); }
  revokeAccount(account: string): Promise<void> { return this.node.revokeAccount(account); }
  limitsState(): LimitsView { return this.node.limits.view(); }
  verificationState(): Record<string, unknown> { return this.node.verification.state(); }
  signInState(): SignInView { return this.node.signing.view(); }

  backup(dest: string | undefined): ReturnType<typeof backupNow> {
    const carrier = this.node.carrier;
    if (!carrier) return Promise.reject(new Error('node not started'));
    return backupNow(this.node.settings, carrier.store, dest, this.node.log.child({ component: 'backup' }));
  }

  /** The delivery actor and the store, and the ephemeral actors beside it. */
  deliveryState(): Record<string, unknown> | null {
    const a = this.node.actors;
    if (!a) return null;
    return { ...a.delivery.stats(), ephemeralSent: this.node.ephemeralOut.sent, presence: a.presence.stats(), typing: a.typing.stats(), receipts: a.receipts.stats() };
  }

  /** Whether the store takes writes, and how often it refused. */
  storeHealth(): StoreHealthView | null {
    const store = this.node.carrier?.store;
    return store === undefined ? null : { ...store.health(), refused: this.node.counters.storeRefused };
  }

  /** The cluster (null when embedded). */
  clusterState(): ClusterView | null {
    return (this.node.carrier?.status() ?? null) as ClusterView | null;
  }
}
