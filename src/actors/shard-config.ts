import type { GroupLimits } from './group';
import type { VerifierConfig, VerifierState } from './verifier';

/** What a shard (a worker thread hosting group actors and the verifier) is started with. */
export interface ShardConfig {
  index: number;
  workers: number;
  partitions: number;
  limits: GroupLimits;
  testFaults: boolean;
  logLevel: string;
  verify: VerifierConfig;
  /** The verification actor's stored state, for the shard that hosts it. */
  verifierState: VerifierState | undefined;
  groupsResident: number;
  groupIdleMs: number;
}
