/**
 * The small storage interface a shard's actors are persisted behind (Orleans-style): record an
 * event, make what was recorded durable, restore, checkpoint. The shard never knows file formats.
 */
import type { GroupLimits } from './group';
import type { InboxLimits } from './inbox';
import type { VerifierConfig } from './verifier';

/** Where and how a set of partitions is persisted (one writer: a shard, or the inbox host). */
export interface PersistenceConfig {
  /** Names the writer in logs: a shard index, or -1 for the main thread's inbox host. */
  index: number;
  partitions: number;
  partitionsOwned: number[];
  dataDir: string;
  fsync: 'always' | 'grouped' | 'off';
  checkpointEvery: number;
  checkpointMs: number;
}

export interface ShardConfig extends PersistenceConfig {
  workers: number;
  limits: GroupLimits & InboxLimits;
  testFaults: boolean;
  logLevel: string;
  verify: VerifierConfig;
  groupsResident: number;
  groupIdleMs: number;
}

export interface Persistence {
  /** Actor states from the newest checkpoint of every owned partition, by address. */
  snapshotStates(): Record<string, unknown> | null;
  /** Journal records after that checkpoint, in order: [address, event]. */
  restored(): Iterable<[string, unknown]>;
  /** Appends one event of the actor at `address` (written now, durable after `flush`). */
  record(address: string, event: unknown): void;
  /** Resolves when everything recorded so far is durable under the fsync policy. */
  flush(): Promise<void>;
  /** Writes everything recorded so far (to the kernel: it survives a crash of the process) without waiting for the fsync. */
  write(): void;
  /** Writes a checkpoint of the given states and drops the journal it covers. */
  checkpoint(states: Record<string, unknown>): Promise<void>;
  /** Lets the store ask for the states when its own policy (count or time) says a checkpoint is due. */
  onCheckpointDue(snapshot: () => Record<string, unknown>): void;
  stats(): unknown;
  close(): Promise<void>;
}
