/**
 * The messages actors send each other across threads (main thread ↔ shards). A mailbox carries them in batches:
 * one postMessage per batch, never one per message. Everything here is plain data
 * (structured-cloneable) with a short tag `t`.
 */
import type { Request, Template } from '../protocol/frames';
import type { ConvId, NewEntry } from '../store/ports';
import type { ShardStats } from '../status/source';

/** The connection a request came from, so an answer (or an error) can find its way back. */
export interface Origin {
  conn: number;
  account: string;
  request: Request;
}

/** main → shard: a request for a group actor (address `group:<id>`). */
export interface GroupCall {
  t: 'group';
  id: string;
  origin: Origin;
  now: number;
  /** Accounts this request adds that must stay out (blocks.ts `screen`, decided on the main thread). */
  screened?: { blocked: string[]; overQuota: string[] };
  /** Crashes of its shard this call was in flight at (set by the supervisor when it replays it). */
  crashes?: number;
}

/** main → shard: control messages of the supervisor. */
export interface Control { t: 'control'; op: 'stats' | 'crash' | 'shutdown' }

/**
 * main → shard: an actor's stored state, asked for with `Load` (undefined: none), with the calls
 * that wait for it: they travel with the state, so they are in flight (and handed back if the
 * shard dies deciding them) until the shard has decided them.
 */
export interface Loaded { t: 'loaded'; address: string; state: unknown; calls: GroupCall[] }

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

/**
 * main → shard (cluster mode): the partitions whose ownership changed. Their resident actors go
 * (their next call loads them from the node's replica, current as of the claim), and the
 * verification actor, when its partition is among them, starts again from `verifierState`.
 */
export interface Evict { t: 'evict'; partitions: number[]; verifierState?: unknown }

export type ToShard = GroupCall | Control | Loaded | VerifyCall | Evict;

/** shard → main: one frame for one connection. */
export interface Reply {
  t: 'reply';
  conn: number;
  frame: string;
  /** The frame refuses a request for a limit (counted on the main thread under this name). */
  limit?: 'maxGroupSize' | 'maxBlocked' | 'detailBytes';
  /** The partition of the actor that decided it (set by the shard; cluster mode routes by it). */
  part?: number;
}

/**
 * An actor's message for a conversation: stored once, in its conversation's log, then written to the
 * sockets of whoever of `to` is online. `conv: 'own'` stores it in each recipient's own account log
 * instead (one record each): notices that change the recipient's membership, or are about it alone.
 */
export interface Post {
  t: 'post';
  conv: ConvId | 'own';
  tpl: Template;
  /** The sending account; null for notices of the server (they reach the sender's account too). */
  from: string | null;
  /** The sender's client message id: a resend with the same one is stored once. */
  mid?: string;
  to: string[];
  /** The requesting connection, which got its own answer. */
  except?: number;
  /** The sender's connection: its other sockets that asked for own-device sync get the record too (own.ts). */
  origin?: number;
  /** The sender's answer, sent once the record is durable. */
  ackTo?: { conn: number; frame: string };
  /** The partition of the actor that decided it (set by the shard; cluster mode routes by it). */
  part?: number;
}

/** The record a post becomes in `conv` (an account's own log, for a notice to accounts), stored at `at`. */
export function postRecord(conv: ConvId, p: Post, at: number): NewEntry {
  return { conv, at, from: p.from, ...(p.mid !== undefined ? { mid: p.mid } : {}), head: p.tpl.head, tail: p.tpl.tail };
}

/**
 * shard → main: an actor's new state (undefined: it is gone), stored with the posts of the same
 * decision in one write; for a group, who joined or left its conversation.
 */
export interface StateOut { t: 'state'; address: string; state: unknown; conv?: ConvId; joined?: string[]; left?: string[]; part?: number }

/** shard → main: an actor's state is wanted (it is not resident); answered with `Loaded`, carrying `calls` back. */
export interface Load { t: 'load'; address: string; calls: GroupCall[] }

/** shard → main: the shard's figures (the shape is the status server's, src/status/source.ts). */
export type { ShardStats };

/** shard → main: the verification actor's cursor, so the chain watcher resumes after it. */
export interface Cursor { t: 'cursor'; lastProcessed: number | null }

/** shard → main: an account's proof of payment (null: not verified), for a token. */
export interface ProofOut { t: 'proof'; conn: number; request: Request; proof: import('../chain/registrations').Proof | null }

export type FromShard = Reply | Post | StateOut | Load | ShardStats | Cursor | ProofOut;

/** A batch crossing a thread boundary, numbered so the supervisor knows what is still in flight. */
export interface Batch<T> { id: number; items: T[] }
