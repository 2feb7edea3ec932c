/**
 * The carrier: the one port through which the node hands on what it does not decide itself. It
 * says where decided output goes and how a call reaches the actor's owner. The node is handed one
 * implementation by the one place that picks it (supervisor/open-carrier.ts) and never asks which:
 * - embedded (carrier/embedded.ts): everything is on this node; output is applied at once;
 * - cluster (cluster/carrier.ts): output goes into the ledger on NATS JetStream and is applied as
 *   it is replayed; a call goes to the node that owns its partition.
 * Both are run through one shared suite (test/carrier-contract.test.ts).
 */
import type { AccountHashes } from '../account-hashes';
import type { ChangeDecision } from '../actors/edits';
import type { GroupCall, VerifyCall } from '../actors/envelopes';
import type { LocalReads, LogReads } from '../actors/log-reads';
import type { Request } from '../protocol/frames';
import type { AccountPositions, Store } from '../store/ports';
import type { EntryContext } from './applier';
import type { Decided, Op } from './ops';

/** An `edit` or `delete` asked on a connection: decided where the conversation's records are. */
export interface ChangeCall {
  account: string;
  conn: number;
  request: Request;
  at: number;
}

/** Who is online on this node, and where a change of the whole service's presence goes. */
export interface PresenceLocal {
  /** Whether the account has a socket on this node. */
  isOnline(account: string): boolean;
  /** Every account with a socket on this node. */
  accounts(): Iterable<string>;
  /** The account went online or offline in the whole service. */
  changed(account: string, online: boolean): void;
}

/** What the node hands its carrier: this node's own actors, sockets and applier. */
export interface Local {
  /** Applies operations to this node's store and sockets (carrier/applier.ts), then flushes the turn's frames. */
  apply(ops: readonly Op[], entry?: EntryContext): void;
  /** Decides an edit or delete against this node's store (the conversation's log, the group's state). */
  decideChange(call: ChangeCall): ChangeDecision;
  /** `fn` once what this node's store holds so far is durable; `lost` if those writes were lost (a full disk). */
  afterDurable(fn: () => void, lost?: () => void): void;
  /** A frame to a socket of this node (no-op for an id it does not hold). */
  send(conn: number, frame: string): void;
  /** A group call decided here, on the shard that hosts its actor. */
  decide(call: GroupCall): void;
  /** A call for the verification actor decided here. */
  verify(call: VerifyCall): void;
  /** The chain's decimals when this node watches the chain (a `reg` asked elsewhere needs them). */
  decimals(): number | undefined;
  presence: PresenceLocal;
  /** Ephemeral frames (typing, presence, receipts) of another node for the sockets of these accounts here. */
  ephemeralIn(frames: Array<[string, string]>): void;
  /** Partitions gained or lost: their resident actors go; resolves once what the shards had taken is decided. */
  evict(partitions: number[]): Promise<void>;
  /** This node serves `partition` now (true) or no longer (false). */
  leads(partition: number, on: boolean): void;
  /** Open sockets here. */
  connections(): number;
  /** Whether an account of `accounts` (account-hashes.ts) may be signed in here (false: certainly none is). */
  mayHold(accounts: AccountHashes): boolean;
  /** Records numbered through `last` were applied on other nodes only (nothing of them is here): offsets move past them. */
  passed(last: number): void;
  /** The node cannot go on (the service stops, with this reason logged). */
  fatal(err: Error): void;
  /** Reads of this node's store as its delivery actor answers them (with read positions), for other nodes' reads. */
  reads: LocalReads;
}

export interface Carrier {
  // ---- what it stands on ----
  /** The store this node's actors read and the applier writes (in a cluster: this node's part, kept from the ledger). */
  readonly store: Store;
  /** The store for actors that write their state directly (read receipts): in a cluster the write is also published. */
  readonly sharedStore: Store;
  /** The store applies what is decided elsewhere, in a fixed order: a lost write is fatal, never skipped. */
  readonly replica: boolean;
  /** Where the delivery actor reads backlogs and history; undefined: the store's own logs hold them all. */
  readonly reads: LogReads | undefined;
  /** The first connection id this node hands out (unique in a cluster). */
  readonly firstConnId: number | undefined;
  /** The resume-token key, and the verification issuer's key seed (undefined: the node's own key file). */
  resumeKey(): Promise<Buffer>;
  readonly serverKeySeed: (() => Promise<string>) | undefined;
  /** Takes the node's local side; resolves when this node can serve (a cluster node: replayed and joined). */
  start(local: Local): Promise<void>;
  stop(): Promise<void>;
  /** Undefined while writes can be taken; otherwise why not (answered 45003). */
  cutOff(): string | undefined;

  // ---- how calls and frames reach their owner ----
  group(call: GroupCall): void;
  verify(call: VerifyCall): void;
  /** A post decided beside the shards (a direct message): stored once (a resend by `mid` is not) where its conversation's records are. */
  post(op: Extract<Op, { t: 'post' }>): void;
  /** An edit or delete: decided and recorded where its conversation's records are; errors answer `call.conn`. */
  change(call: ChangeCall): void;
  /** A frame for any connection of the service. */
  sendTo(conn: number, frame: string): void;
  /** An ephemeral frame for the account's sockets on the other nodes. */
  ephemeral(account: string, frame: string): void;
  /** Whether the account has a socket anywhere; `localChanged` when its first socket here opened or its last closed. */
  isOnline(account: string): boolean;
  localChanged(account: string, online: boolean): void;

  // ---- where decided output goes ----
  /** One batch of a shard's output. */
  decided(items: readonly Decided[], now: number): void;
  /** The node's own operations (a direct message, an edit, a state written beside the shards). */
  submit(ops: Op[]): void;
  /** `fn` once everything handed on so far is durable; `lost` if it never will be. */
  afterDurable(fn: () => void, lost?: () => void): void;
  /** An actor's newest state, including one handed on and not applied yet. */
  stateOf(address: string): unknown;
  /** An age trim the retention sweep found; undefined: the sweep trims this node's store itself. */
  readonly ageTrim: ((conv: string, upTo: number) => void) | undefined;
  /** An account's positions where another node may have moved them; undefined: the store's are current. */
  positionsOf(account: string): Promise<AccountPositions | undefined> | undefined;

  /** For /status (null: nothing beyond this node). */
  status(): Record<string, unknown> | null;
}
