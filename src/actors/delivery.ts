/**
 * The delivery actor, on the thread that holds the sockets: it stores what the deciding actors
 * (group, direct, verifier) post, once, in its conversation's log, and has it written to the
 * sockets of the recipients that are online; it answers `history`, and keeps each account's
 * delivered and acknowledged offsets. This file is what is stored and the actor's entry points;
 * it composes the three parts that have a concern of their own:
 * - fan-out.ts: a stored record to the sockets;
 * - durable-gate.ts: output that waits until durable, and what a failed commit does to it;
 * - catch-up.ts: what an account missed, sent when it signs in.
 *
 * The `seq` of a frame is the offset of its record: one sequence for the whole store, so it
 * increases for every account, and `ack N` acknowledges every conversation through N at once.
 * Frames reach an account in offset order because this thread alone appends, and a connection
 * that is still reading its backlog holds live frames until the backlog has caught up.
 *
 * When output may leave:
 * - a live frame to an account that does not acknowledge: at once (it changes nothing anyone
 *   relies on; its record is written at the end of the turn);
 * - a sender's acknowledgement, a frame for an acknowledging account, a group actor's answer to a
 *   change: once the store says the records behind them are durable.
 */
import { LRUCache } from 'lru-cache';
import { logger } from '../log';
import { Code } from '../protocol/codes';
import { errorFrame, refusedAnswer, STORAGE_FULL_TEXT, type Request, type Template } from '../protocol/frames';
import { accountConv, type AccountPositions, type ConvId, type NewEntry, type Store } from '../store/ports';
import { deliveryLatencySeconds, now as clock, secondsSince } from '../status/instruments';
import { PositionBook } from './account-positions';
import { CatchUp, type CatchUpLimits } from './catch-up';
import { DurableGate } from './durable-gate';
import { postRecord, type Post, type StateOut } from './envelopes';
import { applyChange, changeAnswer, decideChange, type ChangeDecision, type ChangeMade } from './edits';
import { FanOut } from './fan-out';
import type { HistoryAnnotate, HistoryAnswer } from './history';
import { LocalReads, type LogReads } from './log-reads';
import type { Peer, Peers } from './peer';
import { Retention, type RetentionPolicy } from './retention';

export interface DeliveryLimits extends RetentionPolicy, CatchUpLimits {}

/**
 * Cluster mode: the ledger entry being applied. Its records take offsets from `next` on, counted
 * alike on every node (cluster/entry.ts), so every node knows every record's offset; a record is
 * stored only where `stores(conv)` says (this node keeps that conversation's partition), and
 * otherwise only written to this node's sockets.
 */
export interface EntryScope {
  next: number;
  stores(conv: ConvId): boolean;
}

export class Delivery {
  private readonly positions: PositionBook;
  private readonly retention: Retention;
  private readonly gate: DurableGate;
  private readonly catchUp: CatchUp;
  private readonly fanOut: FanOut;
  /** Direct conversations known to be in both accounts' membership lists. */
  private readonly knownConvs = new LRUCache<string, true>({ max: 100_000 });
  private lastOffset: number;
  private readonly log = logger({ part: 'delivery' });
  readonly counters = { appended: 0, duplicates: 0, pushed: 0, backlogFrames: 0, backlogRetries: 0, lostFull: 0 };
  /**
   * A store write failed for good (see durable-gate.ts): the output waiting on it never leaves.
   * The owner sets this and decides what stops; an actor never ends the process.
   */
  onFatal: (err: unknown) => void = (err) => this.log.error({ err }, 'fatal store error, and no owner was told (onFatal not set)');
  /**
   * The store is a replica of a ledger (cluster mode): a lost write would make it differ from the
   * others for good, so a full disk is fatal too (the node restarts and replays from its mark).
   */
  replica = false;
  /** Added keys of `history` answers (read positions). */
  annotateHistory: HistoryAnnotate | undefined;
  /** The ledger entry being applied (cluster mode), between `beginEntry` and `endEntry`. */
  private entry: EntryScope | undefined;
  /** The store keeps some conversations' records only (cluster mode): a conversation may have records it does not hold. */
  partial = false;
  /** Reads of this node's own store (a cluster node answers other nodes' reads of what it stores with them). */
  readonly localReads: LocalReads;
  private readonly reads: LogReads;

  /** `reads`: where backlogs and history are read (default: this store, `localReads`). */
  constructor(private readonly store: Store, private readonly peers: Peers, private readonly limits: DeliveryLimits, reads?: LogReads) {
    this.localReads = new LocalReads(store, () => this.annotateHistory);
    this.reads = reads ?? this.localReads;
    this.positions = new PositionBook(store.positions);
    this.retention = new Retention(store.log, limits);
    this.lastOffset = store.stats().lastOffset;
    this.gate = new DurableGate(store, { replica: () => this.replica, lost: () => this.lostFull(), fatal: (err) => this.onFatal(err) });
    this.catchUp = new CatchUp(store, this.reads, peers, this.positions, limits, () => this.lastOffset, this.counters);
    this.fanOut = new FanOut(peers, this.positions, this.catchUp, this.gate, this.counters);
  }

  /**
   * Starts the age sweep. With `ageTrims` (cluster mode) the sweep only proposes trims; they are
   * applied by `trimApplied`, in the ledger's order, on every replica.
   */
  start(ageTrims?: (conv: ConvId, upTo: number) => void): void {
    this.retention.ageTrims = ageTrims;
    this.retention.start();
  }

  trimApplied(conv: ConvId, upTo: number): void { this.retention.trimApplied(conv, upTo); }

  /** A ledger entry's operations follow (cluster mode): their records are numbered from `first` on. */
  beginEntry(first: number, stores: (conv: ConvId) => boolean): void {
    this.entry = { next: first, stores };
    this.lastOffset = Math.max(this.lastOffset, first - 1);
  }

  endEntry(): void { this.entry = undefined; }

  /**
   * Records through `last` were numbered on other nodes only (cluster/interest.ts: an entry with no
   * recipient here): a sign-in's backlog reads through them, and an `ack` may reach them.
   */
  passed(last: number): void { this.lastOffset = Math.max(this.lastOffset, last); }

  // ---- what the deciding actors post ----

  /** Stores a post in its log (once; a resend with the same `mid` is answered, not stored again) and pushes it. */
  post(p: Post, now: number): void {
    const arrived = p.ackTo ? clock() : 0;
    if (p.conv === 'own') this.postOwn(p, now);
    else this.postOnce(p.conv, p, now);
    // Only the node holding the sender's socket answers it (in a cluster every node applies the post).
    if (p.ackTo && this.peers.peer(p.ackTo.conn)) this.answerWhenDurable(p.ackTo.conn, p.ackTo.frame, () => deliveryLatencySeconds.observe(secondsSince(arrived)));
  }

  /** A notice to accounts: one record in each account's own log. */
  private postOwn(p: Post, now: number): void {
    for (const account of p.to) {
      const conv = accountConv(account);
      const kept = this.keeps(conv);
      this.fanOut.deliver(account, this.put(postRecord(conv, p, now), kept), p);
      if (kept) this.retention.appended(conv);
    }
  }

  /**
   * A post to a conversation, unless a resend of one stored already. In a cluster the node that
   * keeps the conversation's records found resends before the ledger (cluster/owned.ts): every node
   * then counts the record alike, whether it stores it or not.
   */
  private postOnce(conv: ConvId, p: Post, now: number): void {
    const dup = this.entry === undefined && p.mid !== undefined && p.from !== null ? this.store.log.findMid(conv, p.from, p.mid) : undefined;
    if (dup !== undefined) return void this.counters.duplicates++;
    if (conv.startsWith('d:')) this.ensureMembers(conv, [p.from!, ...p.to]);
    this.record(conv, p, now);
  }

  /**
   * Sends `frame` to connection `conn` once durable. Never a false acknowledgement: if the records
   * behind it were lost with a failed commit, the request is answered with 45007 instead.
   */
  private answerWhenDurable(conn: number, frame: string, sent?: () => void): void {
    this.afterDurable(() => {
      this.peers.peer(conn)?.send(frame);
      sent?.();
    }, () => this.peers.peer(conn)?.send(refusedAnswer(frame, Code.STORAGE_FULL, STORAGE_FULL_TEXT)));
  }

  /**
   * Appends `p` to `conv` (where this node keeps it: `kept`), pushes it to its recipients and to
   * the sender's other own-sync sockets; returns its offset.
   */
  private record(conv: ConvId, p: Post, now: number, kept = this.keeps(conv)): number {
    const offset = this.put(postRecord(conv, p, now), kept);
    for (const account of p.to) this.fanOut.deliver(account, offset, p);
    if (p.from !== null && !p.to.includes(p.from)) this.fanOut.echoOwn(p.from, conv, offset, p);
    if (kept) this.retention.appended(conv);
    return offset;
  }

  /**
   * `edit` and `delete` (edits.ts), decided against the conversation's log and the group's state:
   * where its records are, before the change is handed on (in a cluster, before the ledger).
   */
  decideChange(account: string, conn: number, r: Request): ChangeDecision {
    return decideChange(this.store, account, conn, r);
  }

  /**
   * Records a decided change (a new record in the conversation's log) and, where the records are
   * kept, rewrites its original in place; the requester (`conn`, wherever it is held) is answered
   * with the record's offset once durable.
   */
  changed(d: ChangeMade, conn: number, callback: string | undefined, now: number): void {
    const kept = this.keeps(d.conv);
    const offset = this.record(d.conv, d.post, now, kept);
    if (kept) applyChange(this.store.log, d, offset);
    this.answerWhenDurable(conn, changeAnswer(d, offset, callback));
  }

  /** The newest offset of `conv` (a read mark is bounded by it); where records are kept elsewhere, the newest applied. */
  newestOf(conv: ConvId): number {
    return this.store.log.top(conv)?.last ?? (this.partial ? this.lastOffset : 0);
  }

  /** An actor's new state, with who joined or left its conversation; written in the same turn as its posts. */
  state(s: StateOut): void {
    this.store.states.put(s.address, s.state);
    if (s.conv === undefined) return;
    // A member reads the group's log from the next record on: nothing from before it joined.
    const next = this.entry?.next ?? this.lastOffset + 1;
    for (const a of s.joined ?? []) this.store.positions.join(a, s.conv, next);
    for (const a of s.left ?? []) this.store.positions.leave(a, s.conv);
    // A group that is gone takes its log with it: nobody may read it any more.
    if (s.state === undefined) this.retention.drop(s.conv);
  }

  /**
   * Output that must wait until everything stored so far is durable. If the store was full and
   * the writes were lost instead, `lost` runs (when given) and `fn` never does.
   */
  afterDurable(fn: () => void, lost?: () => void): void {
    this.gate.after(fn, lost);
  }

  /** A turn's writes were lost to a full disk: the direct conversations it joined may be lost too. */
  private lostFull(): void {
    this.counters.lostFull++;
    this.knownConvs.clear();
  }

  /**
   * Stores a record where its conversation is `kept` (in a cluster at its entry's next offset, or
   * at `offset` when an import gives one); its offset. Asked once per record: the answer also
   * counts the partition's records (cluster/stored-partitions.ts).
   */
  private put(e: NewEntry, kept = this.keeps(e.conv), offset?: number): number {
    const scope = this.entry;
    if (scope === undefined) return this.appended(this.store.log.append(e, offset).offset);
    const at = offset ?? scope.next++;
    if (kept) this.store.log.append(e, at);
    return this.appended(at);
  }

  /** Whether this node keeps `conv`'s records (always, but for a cluster node applying an entry). */
  private keeps(conv: ConvId): boolean { return this.entry?.stores(conv) ?? true; }

  private appended(offset: number): number {
    this.lastOffset = Math.max(this.lastOffset, offset);
    this.counters.appended++;
    return offset;
  }

  /** Both accounts of a direct conversation find it in their lists from its first message on. */
  private ensureMembers(conv: ConvId, accounts: string[]): void {
    if (this.knownConvs.has(conv)) return;
    for (const a of accounts) if (this.store.positions.membership(a, conv) === undefined) this.store.positions.join(a, conv, 0);
    this.knownConvs.set(conv, true);
  }

  // ---- sign-in and requests of signed-in connections ----

  /** Sends the connection what its account missed, in offset order; live frames wait behind it (catch-up.ts). */
  sync(peer: Peer, positions?: Promise<AccountPositions | undefined>): void {
    this.catchUp.sync(peer, positions);
  }

  ack(account: string, upTo: number): void {
    this.positions.acked(account, Math.min(upTo, this.lastOffset));
  }

  /** A `history` page; one read on another node is sent when it comes, if the connection is still open. */
  history(peer: Peer, r: Request): void {
    const a = this.reads.history(peer.account!, r, this.limits.maxBuffered / 4);
    const send = (h: HistoryAnswer): void => { peer.send(h.ok ? h.frame : errorFrame(h.code, h.error, r)); };
    if (!(a instanceof Promise)) return send(a);
    a.then((h) => { if (this.peers.peer(peer.id) === peer) send(h); }, (err: unknown) => {
      this.log.error({ err, account: peer.account }, 'history not read');
      if (this.peers.peer(peer.id) === peer) peer.send(errorFrame(Code.INTERNAL, 'history could not be read, please retry', r));
    });
  }

  /** A record moved in from another store (cluster import): appended as it was (at `offset` if given), pushed to no one. */
  importRecord(e: NewEntry, offset?: number): number {
    return this.put(e, undefined, offset);
  }

  /** A notice or message from the first service's backup file, kept in the account's own log. */
  importOwn(account: string, tpl: Template, at: number): void {
    this.put(postRecord(accountConv(account), { t: 'post', conv: 'own', tpl, from: null, to: [account] }, at));
  }

  /** A connection closed: its backlog stops. */
  closed(peer: Peer): void {
    this.catchUp.closed(peer);
  }

  stats(): Record<string, unknown> {
    return { ...this.counters, accountsCached: this.positions.size, syncing: this.catchUp.size, ...this.retention.stats(), store: this.store.stats() };
  }

  /** Writes what is pending and waits until it is durable and released. */
  async settle(): Promise<void> {
    this.positions.write();
    await this.gate.settle();
  }

  async close(): Promise<void> {
    this.retention.stop();
    await this.settle();
  }
}
