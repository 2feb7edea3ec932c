/**
 * The messages actors send each other across threads (main thread ↔ shards). A mailbox carries them in batches:
 * one postMessage per batch, never one per message. Everything here is plain data
 * (structured-cloneable) with a short tag `t`.
 */
import type { Request, Template } from '../protocol/frames';

/** The connection a request came from, so an answer (or an error) can find its way back. */
export interface Origin {
  conn: number;
  account: string;
  request: Request;
}

/** main → shard: a request for a group actor (address `group:<id>`). */
export interface GroupCall { t: 'group'; id: string; origin: Origin; now: number }

/** main → shard: control messages of the supervisor. */
export interface Control { t: 'control'; op: 'stats' | 'crash' | 'shutdown' }

/** main → shard: a group brought from elsewhere (the first service's backup file). */
export interface Import { t: 'import'; group: import('./group-state').GroupRecord }

/** A transfer as the chain watcher saw it; the amount is a decimal string of base units (bigint on the wire would not clone into JSON). */
export interface TransferData { from: string; to: string; amount: string; blockNumber: number; blockHash: string; eventIndex: number }

interface BookConfig { decimals: number; now: number }

/** main → shard: a call for the verification actor. */
export type VerifyCall = { t: 'verify' } & (
  | ({ op: 'reg'; conn: number; account: string; request: Request } & BookConfig)
  | ({ op: 'transfer'; transfer: TransferData } & BookConfig)
  | { op: 'sweep'; now: number }
  | { op: 'processed'; block: number }
  | { op: 'cursor' }
  | { op: 'proof'; conn: number; account: string; request: Request }
  | { op: 'import'; proof: import('../chain/registrations').Proof }
);

export type ToShard = GroupCall | Control | Import | VerifyCall;

/** shard → main: one frame for one connection. */
export interface Reply { t: 'reply'; conn: number; frame: string }

/** shard → main: a group actor's output for members, still to be sequenced by their inboxes. */
export interface Fanout {
  t: 'fanout';
  accounts: string[];
  tpl: Template;
  except?: number;
  /** The sender's answer, sent once every member's inbox holds the message durably. */
  ackTo?: { conn: number; frame: string };
  /** Sender and client message id: a resend with the same key is not delivered twice. */
  key?: string;
}

export interface ShardStats {
  t: 'stats';
  /** Resident group actors. */
  groups: number;
  /** Group actors evicted to cold storage. */
  coldGroups: number;
  processed: number;
  persistence: unknown;
}

/** shard → main: the verification actor's cursor, so the chain watcher resumes after it. */
export interface Cursor { t: 'cursor'; lastProcessed: number | null }

/** shard → main: an account's proof of payment (null: not verified), for a token. */
export interface ProofOut { t: 'proof'; conn: number; request: Request; proof: import('../chain/registrations').Proof | null }

export type FromShard = Reply | Fanout | ShardStats | Cursor | ProofOut;

/** A batch crossing a thread boundary, numbered so the supervisor knows what is still in flight. */
export interface Batch<T> { id: number; items: T[] }
