/**
 * The store's ports: what the actors and the node use, and nothing about how it is kept. One
 * backend per folder implements `Store` (`lmdb/`, the default; `memory/`, for tests; later a
 * JetStream one for cluster mode), each checked against the same contract suite
 * (test/store-contract.test.ts). Actors are handed a store; they never open one.
 *
 * The model (as Centrifugo's history, a Matrix room timeline, a JetStream stream with one subject per
 * conversation): a message is stored once, in its conversation's log, at a position. Positions are
 * one sequence for the whole store (a stream sequence), so one number per account says how far it
 * has been delivered or acknowledged in every conversation. The store numbers its appends itself
 * (increasing in append order), or is handed the offset (a cluster's, from its ledger: see
 * `ConversationLog.append`).
 */

/**
 * Where a record sits: its offset (the store-wide sequence, > 0) and the epoch of the store that
 * gave it. A new epoch means the log was lost or recreated: offsets of another epoch mean nothing.
 */
export interface Position { offset: number; epoch: string }

/**
 * A conversation's id:
 * - `d:<a>:<b>`: the direct conversation of two accounts (the pair sorted, so both name it alike);
 * - `g:<GID>`: a group's log;
 * - `a:<account>`: the account's own small log of notices about it (created, added, removed, verified).
 */
export type ConvId = string;

/** A record to append: the frame it becomes, serialized once, minus its recipient and `seq`. */
export interface NewEntry {
  conv: ConvId;
  /** ms since the epoch, for retention by age. */
  at: number;
  /** The sending account (null for server notices). */
  from: string | null;
  /** The sender's client message id: a resend with the same (conv, from, mid) is found by `findMid`. */
  mid?: string;
  /** Frame template: a recipient gets `head + JSON(to) + tail + ,"seq":offset}`. */
  head: string;
  tail: string;
}

/** A stored record. */
export interface LogEntry extends NewEntry { offset: number }

/** What a conversation's log holds now (absent: nothing, ever or after trimming). */
export interface ConvTop {
  /** Offset of the oldest record still retained. */
  first: number;
  /** Offset of the newest record. */
  last: number;
  /** Records retained. */
  count: number;
}

/** A page of a log: records with offsets strictly between `after` and `before`, oldest first. */
export interface ReadQuery {
  conv: ConvId;
  /** Exclusive lower bound (default: from the start). */
  after?: number;
  /** Exclusive upper bound (default: to the end). */
  before?: number;
  /** At most this many records. */
  limit: number;
  /**
   * `forward`: the oldest `limit` records of the range; `backward`: the newest `limit` (still
   * returned oldest first).
   */
  direction: 'forward' | 'backward';
}

export interface ConversationLog {
  /**
   * Appends one record and returns it with its offset. Visible to reads at once; durable once a
   * later `Store.flush()` resolves.
   *
   * Without `offset` the store numbers it: the store's last offset + 1 (synchronously, so offsets
   * are given in call order).
   *
   * With `offset` (a positive safe integer below `Number.MAX_SAFE_INTEGER`) the record is stored
   * at that offset. A cluster passes it because every node must number a record alike without
   * having stored the ones before it: the offset is derived from the record's ledger entry, and a
   * node stores only its partitions' records. The caller keeps such offsets unique in the store;
   * they need NOT come in increasing order (a node that takes a partition over backfills its
   * older records after newer ones, of other conversations and even of the same one), so:
   * - reads still page in offset order, `top` is {first: the lowest, last: the highest, count};
   * - the store's last offset (`stats().lastOffset`, and what an append without `offset` goes
   *   on from) becomes the higher of itself and `offset`;
   * - appending at an offset the conversation already holds is a no-op that returns the stored
   *   record (as it is now, redacted if it was): a ledger entry applied again after a crash
   *   neither duplicates nor counts a record twice. (An offset trimmed away is not held: it is
   *   stored again.)
   */
  append(entry: NewEntry, offset?: number): LogEntry;
  read(q: ReadQuery): LogEntry[];
  top(conv: ConvId): ConvTop | undefined;
  /** Removes the records of `conv` with offset <= `upTo`; returns how many went. */
  trimThrough(conv: ConvId, upTo: number): number;
  /** The offset of the record a sender appended with `mid`, while it is retained. */
  findMid(conv: ConvId, from: string, mid: string): number | undefined;
  /** Every conversation with a retained record (for the retention sweep), in id order, after `afterConv`. */
  conversations(afterConv: ConvId | undefined, limit: number): ConvId[];
  /**
   * Overwrites the frame (head and tail) of the record at `offset` of `conv` in place, keeping its
   * offset, time, sender and mid: an edited message's latest version, or a deleted message's
   * tombstone, so its content is not readable through any read any more. Visible to reads at once.
   * False (and nothing written) if the record is not there (never was, or trimmed).
   */
  redact(conv: ConvId, offset: number, replacement: { head: string; tail: string }): boolean;
}

/** How far an account has got: one offset each, valid in every conversation (see Position). */
export interface AccountPositions {
  /** Highest offset written to one of its sockets. */
  delivered: number;
  /** Highest offset it acknowledged (ack mode). */
  acked: number;
  /** It acknowledges: what it has not acked is delivered again. */
  ackMode: boolean;
}

/** An account's membership in a conversation, and the offset from which it may read it. */
export interface Membership { conv: ConvId; since: number }

/** A membership with its account (what `Positions.allMemberships` pages through). */
export interface AccountMembership extends Membership { account: string }

export interface Positions {
  get(account: string): AccountPositions | undefined;
  set(account: string, p: AccountPositions): void;
  /** The account takes part in `conv` from offset `since` on (re-joining moves `since`). */
  join(account: string, conv: ConvId, since: number): void;
  leave(account: string, conv: ConvId): void;
  membership(account: string, conv: ConvId): Membership | undefined;
  /** Every conversation of the account, in id order. */
  memberships(account: string): Membership[];
  /**
   * Every membership of every account, in (account, conversation id) order, after `after` (the
   * last one of the page before; undefined: from the start), at most `limit`: how a cluster's
   * snapshot of the shared state (cluster/snapshots.ts) reads them all, a page at a time.
   */
  allMemberships(after: { account: string; conv: ConvId } | undefined, limit: number): AccountMembership[];
}

/**
 * What `ActorStates.get` answers for a state whose stored bytes fail their checksum (or do not
 * parse): never the bytes as if genuine, never a throw (a reader on the main thread must not end
 * the process). Plain data, so it crosses to a worker thread; it is no valid state of any actor
 * (a group reads it as broken and answers 41401; `isDamagedState` tells it apart). Writing a new
 * state over it replaces it.
 */
export interface DamagedState { readonly $damaged: true; readonly address: string }

export function damagedState(address: string): DamagedState {
  return { $damaged: true, address };
}

export function isDamagedState(x: unknown): x is DamagedState {
  return typeof x === 'object' && x !== null && (x as { $damaged?: unknown }).$damaged === true;
}

/** Actor state by address (`group:<id>`, `verify:book`): plain JSON, replaced whole. */
export interface ActorStates {
  /** The state, undefined if none, or a `DamagedState` if its stored bytes are damaged. */
  get(address: string): unknown;
  /** `undefined` deletes. */
  put(address: string, state: unknown): void;
  /** Addresses starting with `prefix`, in order, after `after`. */
  list(prefix: string, after: string | undefined, limit: number): string[];
}

export interface StoreStats {
  backend: string;
  epoch: string;
  /** The highest offset given or taken by an append (records trimmed since included). */
  lastOffset: number;
  appended: number;
  trimmed: number;
  /** Bytes of the database on disk (0 for memory). */
  bytes: number;
  /**
   * Stored records found damaged since the open (a checksum that does not hold; 0 for memory, which
   * keeps no bytes): log records are skipped by reads, damaged states read as `DamagedState`,
   * damaged positions and memberships as absent. Each is logged once with where it is.
   */
  damaged: number;
  /** The last damaged record found (database and place), or null. */
  damagedLast: string | null;
  [more: string]: unknown;
}

/**
 * Whether the store takes writes. A commit that fails because the disk (or the map) is full loses
 * that turn's writes and turns `writable` off; the store still serves reads and still tries the
 * writes it is given, but the callers should refuse new ones. `probe()` turns it back on once a
 * test write commits (and, on a file system, enough space is free again).
 */
export interface StoreHealth {
  writable: boolean;
  /** ms since the epoch of the last change of `writable` (the open, at first). */
  since: number;
  /** Why it is not writable (null while writable). */
  reason: string | null;
  /** Commits that failed for lack of space since the store was opened. */
  failedCommits: number;
}

export interface Store {
  readonly epoch: string;
  readonly log: ConversationLog;
  readonly positions: Positions;
  readonly states: ActorStates;
  /**
   * Resolves once everything written before the call is durable (per the fsync policy). Rejects
   * with 'full' when writes were lost to a full store since the previous flush was told.
   */
  flush(): Promise<void>;
  /** A consistent copy of everything, taken while writes go on, into the empty directory `dest`. */
  backup(dest: string): Promise<void>;
  stats(): StoreStats;
  /** Whether the store takes writes now (see StoreHealth). */
  health(): StoreHealth;
  /** `listener` runs whenever `writable` changes (after the failed commit, after the probe). */
  onHealth(listener: (h: StoreHealth) => void): void;
  /** While not writable: tries a small write; true (and writable again) if it committed. */
  probe(): boolean;
  close(): Promise<void>;
}

/**
 * The store failed in a way the caller cannot fix by retrying the same call (full disk, corrupt
 * file; 'damaged': a value the store cannot do without, such as its epoch, fails its checksum;
 * 'writer': the store's writer thread stopped under a commit, whose writes are lost as on a full
 * disk, `lostForNow`).
 */
export class StoreError extends Error {
  constructor(message: string, readonly code: 'full' | 'corrupt' | 'closed' | 'io' | 'damaged' | 'writer', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}

/**
 * A failure that loses one commit's writes and passes: a full disk, a writer thread that died (the
 * store refuses writes until its probe commits again). Every other failure leaves the store in doubt.
 */
export function lostForNow(e: unknown): boolean {
  return e instanceof StoreError && (e.code === 'full' || e.code === 'writer');
}

/** The id of the direct conversation of two accounts, the same whichever of them asks. */
export function directConv(a: string, b: string): ConvId {
  return a < b ? `d:${a}:${b}` : `d:${b}:${a}`;
}

export function groupConv(id: string): ConvId { return `g:${id}`; }

export function accountConv(account: string): ConvId { return `a:${account}`; }
