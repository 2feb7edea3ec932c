/**
 * What the status server needs of the node, and nothing more, with the shapes of the views it
 * reports (shard figures, limits), which the parts that produce them import from here. The node's
 * views (src/supervisor/status-views.ts) satisfy it; the optional members are reported when present
 * and left out otherwise (a stand-in node in the tests has only some).
 */

/** A shard's figures, as it answers a stats query (the group actors resident, the requests processed). */
export interface ShardStats {
  t: 'stats';
  /** Resident group actors. */
  groups: number;
  processed: number;
  /** Groups whose stored state or decision failed: they answer an error until retried. */
  brokenGroups?: number;
  /** Their ids (the first few). */
  broken?: string[];
}

/** The names under which limits are reported (`limits.<name>` in /status, `limit="<name>"` in /metrics). */
export type LimitName =
  | 'maxConnections'
  | 'maxConnectionsPerIp'
  | 'descriptors'
  | 'groupsPerHour'
  | 'groupsPerHourPerAddress'
  | 'strangerAddsPerHour'
  | 'minFreeMb'
  | 'maxGroups'
  | 'maxGroupSize'
  | 'maxBlocked'
  | 'detailBytes';

export interface LimitView { value: number; hits: number }
export type LimitsView = Record<LimitName, LimitView> & { groups: number };

/** One worker thread as its host shows it (ShardHost). */
export interface ShardView {
  readonly index: number;
  readonly up: boolean;
  readonly threadId: number | undefined;
  /** ms since the epoch when the current worker finished restoring; 0 while down or starting. */
  readonly startedAt: number;
  readonly mailbox: { readonly depth: number };
}

/** The store's health as the node reports it. */
export interface StoreHealthView {
  writable: boolean;
  /** ms since the epoch of the last change of `writable`. */
  since: number;
  reason: string | null;
  failedCommits: number;
  /** Requests refused with 45007 while not writable. */
  refused: number;
}

/** The chain watcher's state (ChainWatcher.state() in src/chain/watcher.ts). */
export interface ChainView {
  endpoint?: string;
  connected: boolean;
  lastFinalized: number | null;
  lastProcessed?: number | null;
  reconnects?: number;
  lastError?: string;
}

export interface SignInView {
  byMethod: Record<string, number>;
  failures: Record<string, number>;
  handshakeTimeouts: number;
  queue: { waiting: number; max: number; refusedFull: number };
  verifyWait: { checked: number; avgMs: number; maxMs: number };
  [more: string]: unknown;
}

export interface StatusSource {
  readonly startedAt: number;
  /** Restore finished and the endpoint listens. */
  readonly ready: boolean;
  /** Open sockets. */
  readonly connections: number;
  readonly registry: { readonly accountCount: number };
  readonly counters: {
    readonly framesIn: number;
    readonly framesOut: number;
    readonly restarts: number;
    /** Sockets dropped for not reading what they were sent (--max-buffered). */
    readonly droppedSlow?: number;
    /** Requests refused as poison (processed at two crashes of their worker in a row). */
    readonly poison?: number;
    /** Frames refused as malformed (not JSON, too large, bad spam, invalid fields, before sign-in). */
    readonly badFrames?: number;
    /** Frames refused by the per-connection rate limit. */
    readonly rateLimited?: number;
    /** Sign-ins (`active`) refused. */
    readonly signInsRefused?: number;
  };
  readonly shards: readonly ShardView[];
  readonly settings: {
    readonly data: string;
    readonly restartMax: number;
    readonly restartWindowMs: number;
  };
  /** Figures of every shard; never settles while a shard is stuck (the server puts a timeout on it). */
  shardStats(): Promise<ShardStats[]>;
  /**
   * Figures of one shard. When present the server asks each shard on its own, so one stuck shard
   * is named as unresponsive while the others still report.
   */
  shardStatsOf?(index: number): Promise<ShardStats>;
  /** Chain watcher state, when verification by payment runs. */
  chainState?(): ChainView | null | undefined;
  /** The backup root, how many backups are kept there (--backups-keep) and how many there are. */
  backupsState?(): { root: string; keep: number; kept: number };
  /** Ends every resume token of the account issued until now (durable when it resolves). */
  revokeAccount?(account: string): Promise<void>;
  /**
   * An online backup of the data directory into `dest` (undefined: a new directory under the backup
   * root); `dest` is where it went, `pruned` the older backups removed beyond the number kept.
   */
  backup(dest: string | undefined): Promise<{ files: number; bytes: number; dest?: string; pruned?: string[] }>;
  /** The delivery actor's figures and its store's. */
  deliveryState?(): Record<string, unknown> | null;
  /** Whether the store takes writes (Store.health()) and how many requests were refused while it did not. */
  storeHealth?(): StoreHealthView | null;
  /** Each limit's value and how often it was hit (Limits.view() in src/supervisor/limits.ts). */
  limitsState?(): LimitsView;
  /** Verification by payment (Verification.state() in src/supervisor/verification.ts), reported as is. */
  verificationState?(): unknown;
  /** Sign-in figures (Node.signInState()): by method, failures by reason, the verification queue, the handshake deadline. */
  signInState?(): SignInView | null;
  /** Cluster mode: the nodes, the partitions each serves, the engine's health (null: embedded). */
  clusterState?(): ClusterView | null;
}

/** What a cluster node reports (see cluster/status.ts). */
export interface ClusterView {
  /** Connected to the engine and its replica is current. */
  ready: boolean;
  engine: { connected: boolean };
  [more: string]: unknown;
}
